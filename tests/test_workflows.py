"""Workflows (issue 12): a detector, a crop of each detection, a classifier on each crop, and collectors of the
frames and of the crops — with test-built ONNX models that find (and classify) pure-colour squares, on real video,
through the CLI and the Python API; every validation rule refused by its path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from framesift import (
    ConfigError,
    LocalDataset,
    Pipeline,
    SourceSpec,
    Workflow,
    build_workflow,
    load_model,
    parse_workflow,
    read_records,
)
from framesift.collectors import Collector
from framesift.pipeline.sinks import PredictionsFile
from tests.helpers import CONFIGS, as_on_a_gpu, collect_all_config, wait_until
from tests.model_builders import build_model, scene, squares_video

WIDTH, HEIGHT, FRAMES = 320, 240, 12
TOLERANCE = 2.5  # pixels: H.264 blurs the squares' edges a little


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {"det": build_model(folder / "det.onnx", "detect", size=160),
            "cls": build_model(folder / "cls.onnx", "classify", size=64, dynamic_batch=True)}


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> tuple[Path, dict[str, tuple[int, int, int, int]]]:
    """A clip of the three squares, and where they are."""
    path = squares_video(tmp_path_factory.mktemp("video") / "squares.mp4", WIDTH, HEIGHT, FRAMES)
    return path, scene(WIDTH, HEIGHT)[1]


def config(strategy: dict, persist: bool = True) -> dict:
    return {"enabled": True, "persist_predictions": persist, "sampling_strategies": [{"name": "s", **strategy}],
            "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}


def two_stage(models: dict[str, Path], crops_strategy: dict | None = None) -> dict:
    """Frames with the detector's boxes into `frames`; crops with the classifier's class into `crops`."""
    return {"version": "1.0",
            "inputs": [{"type": "InferenceImage", "name": "image"},
                       {"type": "InferenceParameter", "name": "al_off", "default_value": False}],
            "steps": [
                {"type": "ObjectDetectionModel", "name": "det", "image": "$inputs.image",
                 "model_id": str(models["det"]), "confidence": 0.3, "disable_active_learning": True},
                {"type": "Crop", "name": "crop", "image": "$inputs.image", "predictions": "$steps.det.predictions"},
                {"type": "ClassificationModel", "name": "cls", "image": "$steps.crop.crops",
                 "model_id": str(models["cls"])},
                {"type": "ActiveLearningDataCollector", "name": "al_frames", "image": "$inputs.image",
                 "predictions": "$steps.det.predictions", "target_dataset": "frames",
                 "disable_active_learning": "$inputs.al_off",
                 "active_learning_configuration": config({"type": "random", "traffic_percentage": 1.0})},
                {"type": "ActiveLearningDataCollector", "name": "al_crops", "images": "$steps.crop.crops",
                 "predictions": "$steps.cls.top", "prediction_type": "$steps.cls.prediction_type",
                 "target_dataset": "crops", "disable_active_learning": "$inputs.al_off",
                 "active_learning_configuration": config(crops_strategy or {
                     "type": "classes_based", "selected_class_names": ["red", "blue"], "probability": 1.0})}],
            "outputs": [{"type": "JsonField", "name": "boxes", "selector": "$steps.det.predictions"},
                        {"type": "JsonField", "name": "classes", "selector": "$steps.cls.top"}]}


def framesift(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framesift.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def assert_box(actual: list[float], expected: tuple[int, int, int, int]) -> None:
    assert np.allclose(actual, expected, atol=TOLERANCE), (actual, expected)


# -- end to end ---------------------------------------------------------------------------------------------------
def test_a_two_stage_workflow_collects_the_frames_and_the_crops(models, squares, tmp_path):
    clip, boxes = squares
    (tmp_path / "wf.json").write_text(json.dumps(two_stage(models)))
    result = framesift("run", str(clip), "--workflow", "wf.json", "--target", "datasets", "--summary", "s.json",
                       "--predictions", "p.jsonl", "--seed", "1", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frames = list(read_records(tmp_path / "datasets" / "frames"))
    assert sorted(r["frame_id"] for r in frames) == list(range(FRAMES))  # random 1.0: every frame
    for record in frames:
        prediction = json.loads((tmp_path / "datasets" / "frames" / record["prediction"]).read_text())
        found = {p["class"]: p for p in prediction["predictions"]}
        assert set(found) == set(boxes)
        for name, p in found.items():
            assert_box([p["x"] - p["width"] / 2, p["y"] - p["height"] / 2, p["x"] + p["width"] / 2,
                        p["y"] + p["height"] / 2], boxes[name])
    crops = list(read_records(tmp_path / "datasets" / "crops"))
    assert sorted(r["crop"]["class"] for r in crops) == ["blue"] * FRAMES + ["red"] * FRAMES  # classes_based
    for record in crops:
        crop = record["crop"]
        assert_box(crop["box"], boxes[crop["class"]])
        assert record["source"] == str(clip) and 0 <= record["frame_id"] < FRAMES
        prediction = json.loads((tmp_path / "datasets" / "crops" / record["prediction"]).read_text())
        assert prediction["top"] == crop["class"] and prediction["task_type"] == "classification"
        x1, y1, x2, y2 = crop["box"]
        assert prediction["image"] == {"width": x2 - x1, "height": y2 - y1} == \
            {"width": record["width"], "height": record["height"]}
        parent = next(r for r in frames if r["frame_id"] == record["frame_id"])
        detections = json.loads((tmp_path / "datasets" / "frames" / parent["prediction"]).read_text())
        assert crop["detection_id"] in {p["detection_id"] for p in detections["predictions"]}  # cut from there
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["datapoints_registered"] == 3 * FRAMES
    assert summary["collectors"]["al_frames"]["datapoints_registered"] == FRAMES
    assert summary["collectors"]["al_crops"]["datapoints_sampled"] == 2 * FRAMES
    outputs = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])["outputs"]
    assert sorted(outputs["classes"]) == ["blue", "green", "red"] and len(outputs["boxes"]["predictions"]) == 3


def test_a_parameter_switches_collection_off_for_one_source(models, squares, tmp_path):
    clip, _ = squares
    (tmp_path / "wf.json").write_text(json.dumps(two_stage(models)))
    result = framesift("run", str(clip), str(clip), "--source-name", "cam1", "--source-name", "cam2", "--workflow",
                       "wf.json", "--param", "cam2:al_off=true", "--target", "datasets", "--no-progress",
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for dataset, per_frame in (("frames", 1), ("crops", 2)):
        records = list(read_records(tmp_path / "datasets" / dataset))
        assert len(records) == per_frame * FRAMES  # cam1's only: cam2 collects nothing
    off_for_all = framesift("run", str(clip), "--workflow", "wf.json", "--param", "al_off=true", "--target",
                            "nothing", "--no-progress", cwd=tmp_path)
    assert off_for_all.returncode == 0 and not list(read_records(tmp_path / "nothing" / "frames"))


def test_an_rtsp_camera_feeds_both_datasets(models, tmp_path, rtsp_server_factory):
    camera = rtsp_server_factory(pattern="red", size=(320, 240, 15))  # every pixel red: one box, the whole frame
    workflow = build_workflow(parse_workflow(two_stage(models)), target=str(tmp_path / "datasets"))
    with Pipeline([SourceSpec(camera.url, "cam")], workflow) as pipeline:
        pipeline.start()
        assert wait_until(lambda: len(list(read_records(tmp_path / "datasets" / "crops"))) >= 3, timeout=30)
    frames = list(read_records(tmp_path / "datasets" / "frames"))
    crops = list(read_records(tmp_path / "datasets" / "crops"))
    assert frames and all(r["source"] == camera.url for r in frames)
    assert all(r["crop"]["class"] == "red" and r["width"] >= 310 for r in crops)  # the whole frame, nearly


# -- the Python API -------------------------------------------------------------------------------------------------
class Counting:
    """A model that counts how many images each call gets."""

    def __init__(self, model):
        self.model, self.calls = model, []
        self.task_type, self.model_id, self.class_names = model.task_type, model.model_id, model.class_names
        self.input_size, self.max_batch, self.prepare = model.input_size, model.max_batch, model.prepare

    def infer(self, inputs):
        self.calls.append(len(inputs))
        return self.model.infer(inputs)


def test_the_crops_of_a_batch_are_classified_in_one_call(models, squares, tmp_path):
    definition = parse_workflow(two_stage(models))
    det, cls = load_model(str(models["det"]), confidence=0.3), Counting(load_model(str(models["cls"])))
    with Pipeline([SourceSpec(str(squares[0]), "a"), SourceSpec(str(squares[0]), "b")],
                  Workflow(definition, {"det": det, "cls": cls})) as pipeline:
        pipeline.run()
    assert cls.calls == [3] * (2 * FRAMES)  # the detector takes one frame a call: its three crops go together


def test_on_a_gpu_the_frames_and_the_crops_go_in_runs_of_one_size(models, squares, tmp_path):
    """Issue 21: a model on a GPU takes every run at one batch size (the number of sources), and a variable count
    of crops is cut into runs of that size, the last filled with blank images that no crop, output or collector
    ever sees. Real sessions on the CPU, told to batch as on a GPU."""
    definition = parse_workflow(two_stage(models))
    det = load_model(str(build_model(tmp_path / "det.onnx", "detect", size=160, dynamic_batch=True)),
                     confidence=0.3)
    cls = load_model(str(models["cls"]))
    runs = {"det": as_on_a_gpu(det), "cls": as_on_a_gpu(cls)}
    collector = Collector(collect_all_config(), LocalDataset(tmp_path / "crops"))
    sink = PredictionsFile(tmp_path / "p.jsonl")
    with Pipeline([SourceSpec(str(squares[0]), "a"), SourceSpec(str(squares[0]), "b")],
                  Workflow(definition, {"det": det, "cls": cls}, {"al_crops": collector}), sinks=[sink]) as pipeline:
        pipeline.run()
    assert set(runs["det"].batches) == set(runs["cls"].batches) == {2}  # 3 crops a frame: runs of 2, the last filled
    lines = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * FRAMES and all(sorted(line["outputs"]["classes"]) == ["blue", "green", "red"]
                                            for line in lines)
    records = list(read_records(tmp_path / "crops"))
    assert sorted(r["crop"]["class"] for r in records) == sorted(["blue", "green", "red"] * 2 * FRAMES)


def test_a_workflow_on_one_image(models, tmp_path):
    frame, boxes = scene(WIDTH, HEIGHT)
    collector = Collector(collect_all_config(), LocalDataset(tmp_path / "crops"))
    definition = parse_workflow(two_stage(models))
    det, cls = load_model(str(models["det"]), confidence=0.3), load_model(str(models["cls"]))
    with Workflow(definition, {"det": det, "cls": cls}, {"al_crops": collector}) as workflow:
        result = workflow.on_image(frame)
    assert {p.class_name[0] for p in [result.prediction.subset(result.prediction.confidence > 0)]} <= set(boxes)
    assert sorted(result.outputs["classes"]) == ["blue", "green", "red"]
    records = list(read_records(tmp_path / "crops"))
    assert sorted(r["crop"]["class"] for r in records) == ["blue", "green", "red"]
    for record in records:
        assert_box(record["crop"]["box"], boxes[record["crop"]["class"]])


def test_a_model_on_crops_keeps_its_square_while_the_frames_go_at_their_own_rectangle(models, tmp_path):
    """Issue 24: a dynamic-size export on the frames is fed each frame's aspect ratio; one on crops keeps its
    square, so the crops of a batch (every aspect ratio) still go in one run."""
    det = load_model(str(build_model(tmp_path / "det.onnx", "detect", size=160, dynamic_batch=True,
                                     dynamic_size=True)), confidence=0.3)
    cls = load_model(str(build_model(tmp_path / "cls.onnx", "classify", size=64, dynamic_batch=True,
                                     dynamic_size=True)))
    wide = np.zeros((40, 120, 3), np.uint8)
    assert cls.prepare(wide).tensor.shape == (3, 32, 64)  # on its own, it would take a crop at its rectangle too
    frame, _ = scene(WIDTH, HEIGHT)
    with Workflow(parse_workflow(two_stage(models)), {"det": det, "cls": cls}) as workflow:
        assert cls.prepare(wide).tensor.shape == (3, 64, 64)
        assert det.prepare(frame).tensor.shape == (3, 128, 160)  # 320 x 240 in a 160 export: 160 x 120, then 128
        assert sorted(workflow.on_image(frame).outputs["classes"]) == ["blue", "green", "red"]


def test_filters_static_crops_and_class_filters(models, tmp_path):
    frame, boxes = scene(WIDTH, HEIGHT)
    definition = parse_workflow({
        "version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"},
                                     {"type": "WorkflowParameter", "name": "min", "default_value": 0.5}],
        "steps": [
            {"type": "RoboflowObjectDetectionModel", "name": "det", "image": "$inputs.image",
             "model_id": str(models["det"]), "confidence": 0.3, "class_filter": ["red", "green"]},
            {"type": "DetectionFilter", "name": "sure", "predictions": "$steps.det.predictions",
             "filter_definition": {"type": "CompoundDetectionFilterDefinition", "operator": "and",
                                   "left": {"type": "DetectionFilterDefinition", "field_name": "confidence",
                                            "operator": "greater_or_equal_than", "reference_value": "$inputs.min"},
                                   "right": {"type": "DetectionFilterDefinition", "field_name": "width",
                                             "operator": "greater_than", "reference_value": 10}}},
            {"type": "Crop", "name": "crop", "image": "$inputs.image", "predictions": "$steps.sure.predictions",
             "padding": 5},
            {"type": "RelativeStaticCrop", "name": "left_half", "image": "$inputs.image", "x_center": 0.25,
             "y_center": 0.5, "width": 0.5, "height": 1.0},
            {"type": "AbsoluteStaticCrop", "name": "corner", "image": "$steps.left_half.crops", "x_center": 10,
             "y_center": 10, "width": 20, "height": 20}],
        "outputs": [{"type": "JsonField", "name": "kept", "selector": "$steps.sure.predictions"},
                    {"type": "JsonField", "name": "crops", "selector": "$steps.crop.crops"},
                    {"type": "JsonField", "name": "half", "selector": "$steps.left_half.*"},
                    {"type": "JsonField", "name": "corner", "selector": "$steps.corner.crops"}]})
    workflow = Workflow(definition, {"det": load_model(str(models["det"]), confidence=0.3)})
    outputs = workflow.on_image(frame).outputs
    assert [p["class"] for p in outputs["kept"]["predictions"]] == ["red", "green"]  # blue: class_filter
    assert [c["class"] for c in outputs["crops"]] == ["red", "green"]
    x1, y1, x2, y2 = boxes["red"]
    assert_box(outputs["crops"][0]["box"], (x1 - 5, y1 - 5, x2 + 5, y2 + 5))
    assert outputs["half"] == [{"crops": {"box": [0, 0, 160, 240], "detection_id": None, "class": None,
                                          "confidence": None}, "parent_id": None}]
    assert outputs["corner"] == [{"box": [0, 0, 20, 20], "detection_id": None, "class": None, "confidence": None}]
    only_sure = Workflow(definition, {"det": load_model(str(models["det"]), confidence=0.3)}, parameters={"min": 0.7})
    assert [p["class"] for p in only_sure.on_image(frame).outputs["kept"]["predictions"]] == ["red"]


# -- every validation rule, by its path, through validate and run ------------------------------------------------
def broken(models: dict[str, Path], change) -> dict:
    definition = two_stage(models)
    change(definition)
    return definition


def _set(path: str, value):
    def change(definition: dict) -> None:
        *where, last = path.split("/")
        node = definition
        for part in where:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
    return change


BROKEN = [
    ("an unknown step type", lambda d: d["steps"].append({"type": "OpticalFlow", "name": "x"}),
     "steps[5]: unknown step type 'OpticalFlow'"),
    ("an unknown field", _set("steps/0/colour", "red"), "steps[0].colour: unknown field"),
    ("a selector naming no step", _set("steps/2/image", "$steps.cropper.crops"),
     "steps[2].image: $steps.cropper.crops names no step"),
    ("a selector naming no input", _set("steps/0/image", "$inputs.picture"),
     "steps[0].image: $inputs.picture names no input"),
    ("a selector of the wrong kind", _set("steps/1/predictions", "$steps.cls.top"),
     "steps[1].predictions: $steps.cls.top is not the predictions of a detection-like step"),
    ("not a selector", _set("steps/4/predictions", "cls.top"), "steps[4].predictions: 'cls.top' is not a selector"),
    ("collector image and predictions on different images", _set("steps/4/images", "$inputs.image"),
     "steps[4].image: ActiveLearningDataCollector 'al_crops' collects $inputs.image, but its predictions come from "
     "'cls', which ran on $steps.crop.crops"),
    ("a duplicate name", _set("steps/2/name", "det"), "steps[2].name: 'det' is the name of steps[0] too"),
    ("a cycle", _set("steps/1/image", "$steps.crop.crops"), "steps: crop -> crop form a cycle"),
    ("an invalid inline configuration", _set("steps/3/active_learning_configuration/sampling_strategies/0/"
                                             "traffic_percentage", 2),
     "steps[3].active_learning_configuration.sampling_strategies[0].traffic_percentage: must be <= 1.0"),
    ("a parameter that is no parameter", _set("steps/3/disable_active_learning", "$inputs.image"),
     "steps[3].disable_active_learning: $inputs.image is not a parameter input"),
    ("a threshold out of range", _set("steps/0/confidence", 1.5),
     "steps[0].confidence: must be a number from 0 to 1 or a parameter"),
    ("two image inputs", lambda d: d["inputs"].append({"type": "InferenceImage", "name": "other"}),
     "inputs: framesift feeds each frame to one image input; this workflow declares 2"),
    ("an output of nothing", _set("outputs/0/selector", "$steps.det.mask"),
     "outputs[0].selector: $steps.det.mask is not an output of a step"),
    # a dataset name becomes a folder inside --target: these wrote outside it (`..`: into its parent)
    ("a dataset that climbs out", _set("steps/3/target_dataset", "../../escaped"),
     "steps[3].target_dataset: '../../escaped' is no dataset name: it holds a path separator (/ or \\)"),
    ("the parent as a dataset", _set("steps/3/target_dataset", ".."),
     "steps[3].target_dataset: '..' is no dataset name: it names no folder of its own"),
    ("the target itself as a dataset", _set("steps/3/target_dataset", "."),
     "steps[3].target_dataset: '.' is no dataset name: it names no folder of its own"),
    ("a NUL in a dataset", _set("steps/3/target_dataset", "a\u0000b"),
     "steps[3].target_dataset: 'a\\x00b' is no dataset name: it holds a control character"),
    ("a parameter whose default is no dataset", lambda d: (
        d["inputs"].append({"type": "InferenceParameter", "name": "ds", "default_value": "../up"}),
        _set("steps/3/target_dataset", "$inputs.ds")(d)),
     "steps[3].target_dataset: the default of $inputs.ds: '../up' is no dataset name"),
    # `$` matched before a final newline: these validated, then the run died of a KeyError
    ("a selector ending in a newline", _set("steps/3/predictions", "$steps.det.predictions\n"),
     "steps[3].predictions: '$steps.det.predictions\\n' is not a selector"),
    ("a parameter ending in a newline", _set("steps/3/disable_active_learning", "$inputs.al_off\n"),
     "steps[3].disable_active_learning: '$inputs.al_off\\n' is not a selector"),
    # names are matched whole too (pydantic's patterns run in Rust's regex, whose $ is the end of the text)
    ("a name ending in a newline", _set("steps/0/name", "det\n"),
     "steps[0].name: must be 1 or more characters from A-Z a-z 0-9 _ -"),
]


@pytest.mark.parametrize(("case", "change", "problem"), BROKEN, ids=[case for case, _, _ in BROKEN])
def test_every_rule_is_refused_by_its_path(models, squares, tmp_path, case, change, problem):
    (tmp_path / "wf.json").write_text(json.dumps(broken(models, change)))
    with pytest.raises(ConfigError) as raised:
        parse_workflow(json.loads((tmp_path / "wf.json").read_text()))
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems
    for command in (["validate", "wf.json"], ["run", str(squares[0]), "--workflow", "wf.json", "--no-progress"]):
        result = framesift(*command, cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr and problem in result.stderr, result.stderr
        assert not (tmp_path / "framesift-data").exists()  # refused before anything was read or written


def test_the_bundled_example_workflow_is_valid_and_the_reference_shape_too():
    example = CONFIGS / "workflow_two_stage.json"
    assert framesift("validate", str(example)).stdout.startswith("valid workflow (5 steps, 2 collectors)")
    reference = {"specification": two_stage({"det": Path("det.onnx"), "cls": Path("cls.onnx")})}
    assert len(parse_workflow(reference).order) == 5  # the `specification` wrapper of the old format


def test_a_collection_switch_that_is_not_true_or_false_is_refused_before_the_run(models, squares, tmp_path):
    (tmp_path / "wf.json").write_text(json.dumps(two_stage(models)))
    for param in ("al_off=maybe", "cam:al_off=1"):
        result = framesift("run", str(squares[0]), "--source-name", "cam", "--workflow", "wf.json", "--param", param,
                           "--no-progress", cwd=tmp_path)
        assert result.returncode == 2 and "switches collection off: it is true or false" in result.stderr


def with_dataset_parameter(models: dict[str, Path]) -> dict:
    """The two-stage workflow whose frames go to the dataset its parameter `ds` names."""
    definition = two_stage(models)
    definition["inputs"].append({"type": "InferenceParameter", "name": "ds", "default_value": "frames"})
    definition["steps"][3]["target_dataset"] = "$inputs.ds"
    return definition


RULE = "framesift: step 'al_frames': target_dataset ($inputs.ds): {} (a dataset name is one folder's name)\n"


@pytest.mark.parametrize(("value", "problem"), [
    ("..", RULE.format("'..' is no dataset name: it names no folder of its own")),
    ("../../escaped", RULE.format("'../../escaped' is no dataset name: it holds a path separator (/ or \\)")),
    ('"a\\u0000b"', RULE.format("'a\\x00b' is no dataset name: it holds a control character")),
    ("7", "framesift: parameter 'ds' sets target_dataset of step 'al_frames': must be a text, not 7 (for the run)\n"),
])
def test_a_dataset_given_as_a_parameter_is_held_to_the_same_rule_at_run(models, squares, tmp_path, value, problem):
    (tmp_path / "target").mkdir()
    (tmp_path / "wf.json").write_text(json.dumps(with_dataset_parameter(models)))
    result = framesift("run", str(squares[0]), "--workflow", "wf.json", "--param", f"ds={value}", "--target",
                       "target", "--no-progress", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == problem
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["target", "wf.json"]  # nothing written, anywhere


def test_an_absolute_dataset_is_refused_and_nothing_is_written_there(models, squares, tmp_path):
    definition = two_stage(models)
    definition["steps"][3]["target_dataset"] = str(tmp_path / "elsewhere")
    (tmp_path / "wf.json").write_text(json.dumps(definition))
    for command in (["validate", "wf.json"], ["run", str(squares[0]), "--workflow", "wf.json", "--no-progress"]):
        result = framesift(*command, cwd=tmp_path)
        assert result.returncode == 2 and "is no dataset name: it holds a path separator" in result.stderr
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "framesift-data").exists()


def filters(models: dict[str, Path], count: int, chained: bool) -> dict:
    """The detector, `count` DetectionFilter steps keeping every detection — each reading the detector, or each the
    one before it (a chain) — and a collector of the last one's predictions."""
    keep_all = {"type": "DetectionFilterDefinition", "field_name": "confidence", "operator": "greater_or_equal_than",
                "reference_value": 0}
    steps = [{"type": "ObjectDetectionModel", "name": "det", "image": "$inputs.image", "model_id": str(models["det"]),
              "confidence": 0.3}]
    steps += [{"type": "DetectionFilter", "name": f"f{i}", "filter_definition": keep_all,
               "predictions": f"$steps.{f'f{i - 1}' if chained and i else 'det'}.predictions"} for i in range(count)]
    steps.append({"type": "ActiveLearningDataCollector", "name": "al", "image": "$inputs.image",
                  "predictions": f"$steps.f{count - 1}.predictions", "target_dataset": "kept",
                  "active_learning_configuration": config({"type": "random", "traffic_percentage": 1.0})})
    return {"version": "1.0", "inputs": [{"type": "InferenceImage", "name": "image"}], "steps": steps, "outputs": []}


def test_twenty_thousand_filters_of_one_detector_validate(models, tmp_path):
    """Ordering compared pydantic models, O(n²): 10 000 such steps took 40 s and more; linear now (no speed is
    asserted: the subprocess's bound is generous)."""
    (tmp_path / "wide.json").write_text(json.dumps(filters(models, 20_000, chained=False)))
    result = framesift("validate", "wide.json", cwd=tmp_path, timeout=120)
    assert result.returncode == 0 and result.stdout == "valid workflow (20002 steps, 1 collectors)\n"


def test_a_chain_of_a_thousand_filters_validates_and_runs(models, squares, tmp_path):
    """It raised RecursionError (exit 1) at validate, and at run."""
    (tmp_path / "chain.json").write_text(json.dumps(filters(models, 1000, chained=True)))
    assert framesift("validate", "chain.json", cwd=tmp_path).stdout == "valid workflow (1002 steps, 1 collectors)\n"
    result = framesift("run", str(squares[0]), "--workflow", "chain.json", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = list(read_records(tmp_path / "framesift-data" / "kept"))
    assert len(records) == FRAMES
    prediction = json.loads((tmp_path / "framesift-data" / "kept" / records[0]["prediction"]).read_text())
    assert sorted(p["class"] for p in prediction["predictions"]) == ["blue", "green", "red"]  # all kept, all through
