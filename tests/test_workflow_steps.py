"""Issue 23, items 4-6: the block's prediction sources (`DetectionsConsensus`, `YoloWorld`,
`MultiLabelClassificationModel`), the fields Roboflow's model steps carry, `target_dataset_api_key` as a parameter,
and `validate` counting every collector — with test-built ONNX models on real video, through the CLI and the
Python API."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from framesift import ConfigError, LocalDataset, Workflow, load_model, parse_workflow, read_records
from framesift.collectors import Collector
from framesift.predictions import DetectionPrediction
from framesift.workflows.consensus import Rules, consensus
from tests.helpers import ROBOFLOW_KEY, collect_all_config, wait_until
from tests.model_builders import BGR, build_model, build_multilabel_model, scene, squares_video

WIDTH, HEIGHT, FRAMES = 320, 240, 6
TOLERANCE = 2.5  # pixels: H.264 blurs the squares' edges a little


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> tuple[Path, dict[str, tuple[int, int, int, int]]]:
    path = squares_video(tmp_path_factory.mktemp("video") / "squares.mp4", WIDTH, HEIGHT, FRAMES)
    return path, scene(WIDTH, HEIGHT)[1]


def framesift(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framesift.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env=env)


def config(strategy: dict) -> dict:
    return {"enabled": True, "persist_predictions": True, "sampling_strategies": [{"name": "s", **strategy}],
            "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}


def box_of(p: dict) -> list[float]:
    return [p["x"] - p["width"] / 2, p["y"] - p["height"] / 2, p["x"] + p["width"] / 2, p["y"] + p["height"] / 2]


# -- a definition in Roboflow's shape, run unchanged -----------------------------------------------------------------
def roboflow_definition() -> dict:
    """Every new step and field, as Roboflow's old format wrote them (model ids as Roboflow writes them)."""
    return {"specification": {
        "version": "1.0",
        "inputs": [{"type": "InferenceImage", "name": "image"},
                   {"type": "InferenceParameter", "name": "al_off", "default_value": False}],
        "steps": [
            {"type": "ObjectDetectionModel", "name": "det", "image": "$inputs.image", "model_id": "squares/2",
             "confidence": 0.3, "iou_threshold": 0.5, "class_agnostic_nms": False, "max_candidates": 3000,
             "max_detections": 100, "disable_active_learning": True, "active_learning_target_dataset": "other"},
            {"type": "YoloWorld", "name": "world", "image": "$inputs.image", "class_names": ["red", "green", "blue"],
             "version": "s", "confidence": 0.5},
            {"type": "DetectionsConsensus", "name": "votes",
             "predictions": ["$steps.det.predictions", "$steps.world.predictions"], "required_votes": 2,
             "class_aware": True, "iou_threshold": 0.3, "confidence": 0.0, "required_objects": {"red": 1, "green": 1},
             "presence_confidence_aggregation": "max", "detections_merge_confidence_aggregation": "max",
             "detections_merge_coordinates_aggregation": "average"},
            {"type": "Crop", "name": "crop", "image": "$inputs.image", "detections": "$steps.votes.predictions"},
            {"type": "MultiLabelClassificationModel", "name": "labels", "image": "$steps.crop.crops",
             "model_id": "square-labels/1", "confidence": 0.5, "disable_active_learning": True},
            {"type": "KeypointsDetectionModel", "name": "pose", "image": "$inputs.image", "model_id": "corners/1",
             "keypoint_confidence": 0.95},
            {"type": "InstanceSegmentationModel", "name": "seg", "image": "$inputs.image", "model_id": "masks/1",
             "mask_decode_mode": "fast", "tradeoff_factor": 0.5},
            {"type": "ActiveLearningDataCollector", "name": "al_votes", "image": "$inputs.image",
             "predictions": "$steps.votes.predictions", "target_dataset": "votes", "target_dataset_api_key": None,
             "disable_active_learning": "$inputs.al_off",
             "active_learning_configuration": config({"type": "random", "traffic_percentage": 1.0})},
            {"type": "ActiveLearningDataCollector", "name": "al_labels", "image": "$steps.crop.crops",
             "predictions": "$steps.labels.predictions", "target_dataset": "labels",
             "active_learning_configuration": config({"type": "close_to_threshold", "threshold": 0.6,
                                                      "epsilon": 0.05, "probability": 1.0})}],
        "outputs": [{"type": "JsonField", "name": "votes", "selector": "$steps.votes.*"},
                    {"type": "JsonField", "name": "labels", "selector": "$steps.labels.predicted_classes"},
                    {"type": "JsonField", "name": "pose", "selector": "$steps.pose.predictions"},
                    {"type": "JsonField", "name": "seg", "selector": "$steps.seg.predictions"}]}}


MODELS = ("--models", "models")  # the models folder models_at_their_ids fills, relative to the run's folder


def models_at_their_ids(folder: Path) -> None:
    """The models in the models folder `folder/models` (`--models models`), each at the file its Roboflow-style id
    names there (`<project>/<version>.onnx`)."""
    models = folder / "models"
    for model_id, task in (("squares/2", "detect"), ("yolo_world/s", "detect"), ("corners/1", "pose"),
                           ("masks/1", "segment")):
        (models / model_id).parent.mkdir(parents=True, exist_ok=True)
        build_model(models / f"{model_id}.onnx", task, size=160)
    (models / "square-labels").mkdir()
    build_multilabel_model(models / "square-labels" / "1.onnx", size=64)


def test_a_roboflow_definition_with_the_new_steps_validates_and_runs_unchanged(squares, tmp_path):
    clip, boxes = squares
    models_at_their_ids(tmp_path)
    (tmp_path / "wf.json").write_text(json.dumps(roboflow_definition()))
    valid = framesift("validate", "wf.json", *MODELS, cwd=tmp_path)
    assert valid.returncode == 0 and valid.stdout.startswith("valid workflow (9 steps, 2 collectors)"), valid.stderr
    assert "det models/squares/2.onnx" in valid.stdout, valid.stdout
    result = framesift("run", str(clip), "--workflow", "wf.json", *MODELS, "--target", "datasets",
                       "--predictions", "p.jsonl", "--seed", "1", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    votes = list(read_records(tmp_path / "datasets" / "votes"))
    assert len(votes) == FRAMES
    for record in votes:  # blue: the detector alone (YOLO-World's threshold drops it), one vote of the two needed
        prediction = json.loads((tmp_path / "datasets" / "votes" / record["prediction"]).read_text())
        found = {p["class"]: p for p in prediction["predictions"]}
        assert set(found) == {"red", "green"}
        for name, p in found.items():
            assert np.allclose(box_of(p), boxes[name], atol=TOLERANCE), (box_of(p), boxes[name])
        assert abs(found["red"]["confidence"] - 0.9) < 1e-3 and abs(found["green"]["confidence"] - 0.6) < 1e-3
    labels = list(read_records(tmp_path / "datasets" / "labels"))  # only green scores close to 0.6
    assert sorted(r["crop"]["class"] for r in labels) == ["green"] * FRAMES
    for record in labels:
        prediction = json.loads((tmp_path / "datasets" / "labels" / record["prediction"]).read_text())
        assert prediction["predicted_classes"] == ["green"] and set(prediction["predictions"]) == set(BGR)
    outputs = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])["outputs"]
    assert outputs["votes"]["object_present"] is True
    assert {k: round(v, 3) for k, v in outputs["votes"]["presence_confidence"].items()} == {"red": 0.9, "green": 0.6}
    assert sorted(map(tuple, outputs["labels"])) == [("green",), ("red",)]  # one list of classes per crop
    assert [p["keypoints"] for p in outputs["pose"]["predictions"]] == [[], [], []]  # all 0.9: below 0.95
    assert len(outputs["seg"]["predictions"]) == 3 and all(p["points"] for p in outputs["seg"]["predictions"])


def test_yolo_world_class_names_are_checked_against_the_model(squares, tmp_path):
    models_at_their_ids(tmp_path)
    definition = roboflow_definition()
    definition["specification"]["steps"][1]["class_names"] = ["red", "green", "person"]
    (tmp_path / "wf.json").write_text(json.dumps(definition))
    result = framesift("run", str(squares[0]), "--workflow", "wf.json", *MODELS, "--no-progress",
                       cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "step 'world' detects ['green', 'person', 'red'], but yolo_world/s was exported for ['blue', 'green', " \
           "'red']" in result.stderr


# -- DetectionsConsensus: Roboflow's documented semantics ------------------------------------------------------------
def detections(*items: tuple[str, float, list[float]]) -> DetectionPrediction:
    return DetectionPrediction.from_lists("object-detection", "m", (100, 100), xyxy=[i[2] for i in items],
                                          confidence=[i[1] for i in items], class_name=[i[0] for i in items])


A = detections(("car", 0.9, [0, 0, 10, 10]), ("dog", 0.5, [50, 50, 60, 60]))
B = detections(("car", 0.6, [0, 0, 10, 12]), ("cat", 0.7, [50, 50, 60, 61]))
C = detections(("car", 0.3, [1, 0, 10, 10]))


CAR = ("car", 0.6, [1 / 3, 0, 10, 32 / 3])  # the three cars (IoU 0.75 to 0.9): mean confidence, mean box


@pytest.mark.parametrize(("rules", "merged", "present", "presence"), [
    (Rules(required_votes=2), [CAR], True, {"car": 0.6}),  # every source that overlaps votes, not just enough
    (Rules(required_votes=4), [], False, {}),
    (Rules(required_votes=2, class_aware=False, detections_merge_confidence_aggregation="max"),
     [("car", 0.9, CAR[2]), ("cat", 0.7, [50, 50, 60, 60.5])], True, {"any_object": 0.9}),
    (Rules(required_votes=2, class_aware=False, detections_merge_confidence_aggregation="min",
           detections_merge_coordinates_aggregation="max", presence_confidence_aggregation="min"),
     [("car", 0.3, [0, 0, 10, 12]), ("dog", 0.5, [50, 50, 60, 61])], True, {"any_object": 0.3}),
    (Rules(required_votes=2, detections_merge_coordinates_aggregation="min"), [("car", 0.6, [1, 0, 10, 10])],
     True, {"car": 0.6}),
    (Rules(required_votes=2, confidence=0.8), [], False, {}),
    (Rules(required_votes=2, iou_threshold=0.95), [], False, {}),
    (Rules(required_votes=1), [CAR, ("dog", 0.5, [50, 50, 60, 60]), ("cat", 0.7, [50, 50, 60, 61])], True,
     {"car": 0.6, "dog": 0.5, "cat": 0.7}),
    (Rules(required_votes=1, classes_to_consider=["dog"]), [("dog", 0.5, [50, 50, 60, 60])], True, {"dog": 0.5}),
    (Rules(required_votes=2, required_objects=2), [CAR], False, {}),
    (Rules(required_votes=2, required_objects={"car": 1, "dog": 1}), [CAR], False, {}),
    (Rules(required_votes=2, class_aware=False, required_objects={"car": 1, "dog": 1}),
     [CAR, ("dog", 0.6, [50, 50, 60, 60.5])], True, {"any_object": 0.6}),  # a tie of classes: the first
], ids=["two votes", "four votes", "class-agnostic max", "min and the largest box", "the smallest box",
        "merged confidence too low", "iou too low", "one vote each", "classes to consider", "too few objects",
        "a required class missing", "required classes summed when class-agnostic"])
def test_consensus_merges_as_roboflow_documented(rules, merged, present, presence):
    result = consensus([A, B, C], rules, "votes", (100, 100))
    got = [(name, round(float(score), 4), [round(float(v), 4) for v in box])
           for name, score, box in zip(result.prediction.class_name, result.prediction.confidence,
                                       result.prediction.xyxy, strict=True)]
    assert got == [(name, round(score, 4), [round(v, 4) for v in box]) for name, score, box in merged]
    assert result.object_present is present
    assert {k: round(v, 4) for k, v in result.presence_confidence.items()} == presence
    assert len(set(result.prediction.detection_id or [])) == len(merged)  # each merged one has an id of its own


def test_a_consensus_whose_sources_saw_different_images_is_refused(tmp_path):
    definition = roboflow_definition()
    steps = definition["specification"]["steps"]
    steps[1]["image"] = "$steps.crop.crops"
    with pytest.raises(ConfigError) as raised:
        parse_workflow(definition)
    assert any(p.startswith("steps: ") and "cycle" in p for p in raised.value.problems), raised.value.problems
    steps[3]["detections"] = "$steps.det.predictions"
    with pytest.raises(ConfigError) as raised:
        parse_workflow(definition)
    assert any(p.startswith("steps[2].predictions: DetectionsConsensus 'votes' merges predictions made on one "
                            "image; these were made on different ones") for p in raised.value.problems)
    steps[2]["predictions"] = ["$steps.labels.predictions"]
    with pytest.raises(ConfigError) as raised:
        parse_workflow(definition)
    assert any(p.startswith("steps[2].predictions[0]: $steps.labels.predictions is not the predictions of a "
                            "detection-like step") for p in raised.value.problems), raised.value.problems


# -- Roboflow's model-step fields ------------------------------------------------------------------------------------
def nested_squares() -> np.ndarray:
    """A red square framed by a green border: the two boxes overlap (IoU 0.85)."""
    frame = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    cv2.rectangle(frame, (50, 50), (99, 99), BGR["green"], -1)
    cv2.rectangle(frame, (52, 52), (97, 97), BGR["red"], -1)
    return frame


def one_step(step: dict) -> dict:
    return {"inputs": [{"type": "InferenceImage", "name": "image"}],
            "steps": [{"name": "m", "image": "$inputs.image", **step}],
            "outputs": [{"type": "JsonField", "name": "p", "selector": "$steps.m.predictions"}]}


def run_one_step(path: Path, step: dict, frame: np.ndarray) -> dict:
    from framesift import build_workflow

    with build_workflow(parse_workflow(one_step({"model_id": str(path), **step}))) as workflow:
        return dict(workflow.on_image(frame).outputs["p"])


@pytest.mark.parametrize(("fields", "classes"), [
    ({}, ["red", "green"]),
    ({"class_agnostic_nms": True}, ["red"]),  # the green box overlaps the more confident red one
    ({"max_candidates": 1}, ["red"]),  # only the most confident box enters NMS
])
def test_class_agnostic_nms_and_max_candidates_are_honoured(tmp_path, fields, classes):
    path = build_model(tmp_path / "det.onnx", "detect", size=160)
    outputs = run_one_step(path, {"type": "ObjectDetectionModel", "confidence": 0.3, **fields}, nested_squares())
    assert [p["class"] for p in outputs["predictions"]] == classes


def test_keypoint_confidence_leaves_out_the_keypoints_below_it(tmp_path):
    path = build_model(tmp_path / "pose.onnx", "pose", size=160)
    frame, _ = scene(WIDTH, HEIGHT)
    for threshold, count in ((0.5, 2), (0.95, 0)):  # every keypoint of the model: 0.9
        outputs = run_one_step(path, {"type": "KeypointsDetectionModel", "keypoint_confidence": threshold}, frame)
        assert [len(p["keypoints"]) for p in outputs["predictions"]] == [count] * 3


@pytest.mark.parametrize(("step", "problem"), [
    ({"type": "ObjectDetectionModel", "class_agnostic_nm": True}, "steps[0].class_agnostic_nm: unknown field"),
    ({"type": "ObjectDetectionModel", "keypoint_confidence": 0.5},
     "steps[0]: ObjectDetectionModel has no field 'keypoint_confidence'"),
    ({"type": "ClassificationModel", "mask_decode_mode": "fast"},
     "steps[0]: ClassificationModel has no field 'mask_decode_mode'"),
    ({"type": "InstanceSegmentationModel", "mask_decode_mode": "sloppy"},
     "steps[0].mask_decode_mode: must be accurate, tradeoff or fast or a parameter"),
    ({"type": "YoloWorld", "class_names": ["a"], "version": "xl"}, "steps[0].version: must be one of s, m, l, x,"),
    ({"type": "MultiLabelClassificationModel", "iou_threshold": 0.5},
     "steps[0]: MultiLabelClassificationModel has no field 'iou_threshold'"),
])
def test_a_misspelt_or_foreign_field_is_still_refused(step, problem):
    with pytest.raises(ConfigError) as raised:
        parse_workflow(one_step({"model_id": "stub", **step}))
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


def test_a_collector_reads_a_multi_label_classifier_and_a_step_named_top(tmp_path):
    """The multi-label strategies' semantics through a workflow; a classifier step named `top` (its `.top` once
    taken for the output name)."""
    path = build_multilabel_model(tmp_path / "labels.onnx")
    frame, _ = scene(WIDTH, HEIGHT)
    definition = parse_workflow({
        "inputs": [{"type": "InferenceImage", "name": "image"}],
        "steps": [{"type": "MultiLabelClassificationModel", "name": "top", "image": "$inputs.image",
                   "model_id": str(path), "confidence": 0.5},
                  {"type": "ActiveLearningDataCollector", "name": "al", "image": "$inputs.image",
                   "predictions": "$steps.top.predicted_classes", "target_dataset": "d"}]})
    model = load_model(str(path), multi_label=True, confidence=0.5)
    for selected, expected in ((["green"], 1), (["blue"], 0)):  # blue is seen (0.35) but not predicted
        strategy = {"type": "classes_based", "selected_class_names": selected, "probability": 1.0}
        dataset = tmp_path / selected[0]
        collector = Collector(collect_all_config(sampling_strategies=[{"name": "s", **strategy}]),
                              LocalDataset(dataset))
        with Workflow(definition, {"top": model}, {"al": collector}) as workflow:
            workflow.on_image(frame)
        records = list(read_records(dataset))
        assert [r["strategy"] for r in records] == ["s"] * expected


def test_a_label_studio_project_of_a_multi_label_classifier_takes_several_classes(tmp_path):
    from framesift.dataset.labelstudio_tasks import Labels, labeling_config

    path = build_multilabel_model(tmp_path / "labels.onnx")
    assert 'choice="multiple"' in labeling_config(Labels.of(load_model(str(path), multi_label=True)))
    assert 'choice="single"' in labeling_config(Labels.of(load_model(str(path))))


# -- target_dataset_api_key as a parameter ---------------------------------------------------------------------------
def keyed(definition: dict, key: object) -> dict:
    definition["specification"]["inputs"].append({"type": "InferenceParameter", "name": "key"})
    for step in definition["specification"]["steps"]:
        if step["type"] == "ActiveLearningDataCollector":
            step["target_dataset_api_key"] = key
    return definition


def test_the_api_key_parameter_is_resolved_and_never_shown(squares, tmp_path, roboflow):
    models_at_their_ids(tmp_path)
    (tmp_path / "wf.json").write_text(json.dumps(keyed(roboflow_definition(), "$inputs.key")))
    env = {**os.environ, "ROBOFLOW_API_URL": roboflow.url, "ROBOFLOW_API_KEY": "not-the-key"}
    result = framesift("-v", "run", str(squares[0]), "--workflow", "wf.json", *MODELS, "--param", f"key={ROBOFLOW_KEY}",
                       "--target", "roboflow:", "--outbox", "outbox", "--predictions", "p.jsonl", "--summary",
                       "s.json", "--no-progress", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert wait_until(lambda: len(roboflow.names()) == 2 * FRAMES)  # every vote frame and every green crop
    assert ROBOFLOW_KEY not in result.stdout + result.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "wf.json":
            assert ROBOFLOW_KEY.encode() not in path.read_bytes(), path
    wrong = framesift("run", str(squares[0]), "--workflow", "wf.json", *MODELS, "--param", "key=[1]",
                      "--target", "roboflow:", "--no-progress", cwd=tmp_path, env=env)
    assert wrong.returncode == 2 and "parameter 'key' is a collector's target_dataset_api_key: give it an API key " \
                                     "(a text), not a list" in wrong.stderr


@pytest.mark.parametrize(("change", "problem"), [
    (lambda d: keyed(d, "$inputs.image"),
     "steps[7].target_dataset_api_key: $inputs.image is not a parameter input ($inputs.<name>) (it names an input)"),
    (lambda d: keyed(d, "$inputs.nothing"), "steps[7].target_dataset_api_key: $inputs.nothing names no input"),
    (lambda d: keyed(d, "$inputs.key")["specification"]["outputs"].append(
        {"type": "JsonField", "name": "k", "selector": "$inputs.key"}) or d,
     "outputs[4].selector: $inputs.key is a collector's target_dataset_api_key, a secret: never an output"),
])
def test_an_api_key_parameter_naming_what_it_must_not_is_refused_at_validate(tmp_path, change, problem):
    (tmp_path / "wf.json").write_text(json.dumps(change(roboflow_definition())))
    result = framesift("validate", "wf.json", cwd=tmp_path)
    assert result.returncode == 2 and problem in result.stderr, result.stderr


def test_validate_counts_every_collector_and_names_those_the_store_configures(tmp_path):
    definition = roboflow_definition()
    del definition["specification"]["steps"][8]["active_learning_configuration"]
    (tmp_path / "wf.json").write_text(json.dumps(definition))
    result = framesift("validate", "wf.json", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == "valid workflow (9 steps, 2 collectors; configured by the store named by " \
                                    "--al-config: al_labels)"


@pytest.mark.parametrize(("param", "problem"), [
    ("votes=0", "parameter 'votes' sets required_votes of step 'votes': must be a whole number above 0, not 0 (for "
                "the run)"),
    # (a collector's literal target_dataset "votes", the parameter's name, was once taken for the parameter)
    ("cam:votes=\"two\"", "parameter 'votes' sets required_votes of step 'votes': must be a whole number above 0, "
                          "not 'two' (for cam)"),
    ("version=\"xl\"", "parameter 'version' sets version of step 'world': must be one of s, m, l, x, v2-s, v2-m, "
                       "v2-l, v2-x, not 'xl' (for the run)"),
])
def test_a_parameter_value_a_field_would_refuse_is_refused_before_the_run(squares, tmp_path, param, problem):
    models_at_their_ids(tmp_path)
    definition = roboflow_definition()
    definition["specification"]["inputs"] += [{"type": "InferenceParameter", "name": "votes", "default_value": 2},
                                              {"type": "InferenceParameter", "name": "version"}]
    definition["specification"]["steps"][2]["required_votes"] = "$inputs.votes"
    definition["specification"]["steps"][1]["version"] = "$inputs.version"  # unset (null): the default, s
    (tmp_path / "wf.json").write_text(json.dumps(definition))
    result = framesift("run", str(squares[0]), "--source-name", "cam", "--workflow", "wf.json", *MODELS,
                       "--param", param, "--no-progress", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr and problem in result.stderr, result.stderr


def test_a_relative_static_crop_of_several_crops_takes_each_its_own_fraction(tmp_path):
    """Each crop's left half: the fractions were turned into pixels of the first crop, then of the second crop
    once more (the first crop's pixels times the second's size), and so on."""
    frame, boxes = scene(WIDTH, HEIGHT)
    definition = parse_workflow({
        "version": "1.0", "inputs": [{"type": "InferenceImage", "name": "image"}],
        "steps": [{"type": "ObjectDetectionModel", "name": "det", "image": "$inputs.image",
                   "model_id": "det", "confidence": 0.3},
                  {"type": "Crop", "name": "crop", "image": "$inputs.image", "predictions": "$steps.det.predictions"},
                  {"type": "RelativeStaticCrop", "name": "half", "image": "$steps.crop.crops", "x_center": 0.25,
                   "y_center": 0.5, "width": 0.5, "height": 1.0}],
        "outputs": [{"type": "JsonField", "name": "crops", "selector": "$steps.crop.crops"},
                    {"type": "JsonField", "name": "halves", "selector": "$steps.half.crops"}]})
    detector = load_model(str(build_model(tmp_path / "det.onnx", "detect", size=160)), confidence=0.3)
    with Workflow(definition, {"det": detector}) as workflow:
        outputs = workflow.on_image(frame).outputs
    assert sorted(c["class"] for c in outputs["crops"]) == sorted(boxes) and len(outputs["halves"]) == 3
    for crop, half in zip(outputs["crops"], outputs["halves"], strict=True):
        x1, y1, x2, y2 = crop["box"]
        assert half["box"] == [x1, y1, x1 + math.ceil((x2 - x1) / 2), y2]
