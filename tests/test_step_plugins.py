"""A workflow step kind of one's own (issue 25): registered from outside the package with `register_step`, validated
with the definition's own messages, and run by the engine beside framesift's kinds on real frames — a real video,
real ONNX models built by tests/model_builders.py, a real collector writing a dataset folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pytest

from framesift import ConfigError, Pipeline, SourceSpec, build_workflow, parse_workflow, read_records
from framesift.pipeline.sinks import PredictionsFile
from framesift.predictions import DetectionPrediction, Prediction
from framesift.workflows import Batch, Filtering, Step, register_step
from framesift.workflows.fields import Fraction
from tests.helpers import installed_plugin
from tests.model_builders import CONFIDENCES, build_model, scene, squares_video

WIDTH, HEIGHT, FRAMES = 320, 240, 6
TOLERANCE = 2.5  # pixels: H.264 blurs the squares' edges a little


@register_step
class MostConfident(Filtering):
    """Of each image's detections (a detection-like step's `predictions`), the most confident one at or above
    `at_least`: as `predictions` (detections, so crops and collectors read them as any step's), and its class as
    `best_class` (None when none is kept)."""

    type: Literal["MostConfident"]
    at_least: Fraction = 0.0

    OUTPUTS: ClassVar[tuple[str, ...]] = ("predictions", "parent_id", "best_class")

    def run(self, batch: Batch) -> None:
        for _, source, values in batch.each():
            floor = batch.workflow.parameter(self.at_least, source)
            kept = [_most_confident(p, floor) for p in values[self.predictions]]
            values[self.output("predictions")] = kept
            values[self.output("best_class")] = [p.class_name[0] if isinstance(p, DetectionPrediction) and len(p)
                                                 else None for p in kept]


def _most_confident(prediction: Prediction, floor: float) -> Prediction:
    if not isinstance(prediction, DetectionPrediction):
        return prediction
    best = np.arange(len(prediction)) == (np.argmax(prediction.confidence) if len(prediction) else -1)
    return prediction.subset(best & (prediction.confidence >= floor))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {"det": build_model(folder / "det.onnx", "detect", size=160),
            "cls": build_model(folder / "cls.onnx", "classify", size=64, dynamic_batch=True)}


def definition(models: dict[str, Path]) -> dict[str, Any]:
    """The detector, its most confident detection (at least `floor`), that detection cut out and classified, the
    frames collected with it."""
    return {
        "version": "1.0",
        "inputs": [{"type": "InferenceImage", "name": "image"},
                   {"type": "InferenceParameter", "name": "floor", "default_value": 0.5}],
        "steps": [
            {"type": "ObjectDetectionModel", "name": "det", "image": "$inputs.image", "model_id": str(models["det"]),
             "confidence": 0.3},
            {"type": "MostConfident", "name": "best", "predictions": "$steps.det.predictions",
             "at_least": "$inputs.floor"},
            {"type": "Crop", "name": "crop", "image": "$inputs.image", "predictions": "$steps.best.predictions"},
            {"type": "ClassificationModel", "name": "cls", "image": "$steps.crop.crops",
             "model_id": str(models["cls"])},
            {"type": "ActiveLearningDataCollector", "name": "al", "image": "$inputs.image",
             "predictions": "$steps.best.predictions", "target_dataset": "best",
             "active_learning_configuration": {
                 "enabled": True, "persist_predictions": True,
                 "sampling_strategies": [{"name": "all", "type": "random", "traffic_percentage": 1.0}],
                 "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}}],
        "outputs": [{"type": "JsonField", "name": "best", "selector": "$steps.best.*"},
                    {"type": "JsonField", "name": "crops", "selector": "$steps.crop.crops"},
                    {"type": "JsonField", "name": "classes", "selector": "$steps.cls.top"}]}


def test_a_step_of_ones_own_runs_on_a_video_between_framesifts_steps(models, tmp_path):
    clip = squares_video(tmp_path / "squares.mp4", WIDTH, HEIGHT, FRAMES)
    boxes = scene(WIDTH, HEIGHT)[1]
    best = max(CONFIDENCES, key=CONFIDENCES.__getitem__)
    workflow = build_workflow(parse_workflow(definition(models)), target=str(tmp_path / "datasets"))
    with Pipeline([SourceSpec(str(clip), "cam")], workflow, sinks=[PredictionsFile(tmp_path / "p.jsonl")]) as run:
        run.run()
    lines = [json.loads(line)["outputs"] for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(lines) == FRAMES
    for outputs in lines:
        [detection] = outputs["best"]["predictions"]["predictions"]  # one, the most confident, as JSON
        assert outputs["best"]["best_class"] == detection["class"] == best
        assert outputs["best"]["parent_id"] == [detection["detection_id"]]
        [crop] = outputs["crops"]
        assert crop["detection_id"] == detection["detection_id"]  # the crop names the detection it was cut from
        assert np.allclose(crop["box"], boxes[best], atol=TOLERANCE) and outputs["classes"] == [best]
    records = list(read_records(tmp_path / "datasets" / "best"))
    assert sorted(r["frame_id"] for r in records) == list(range(FRAMES))
    for record in records:
        prediction = json.loads((tmp_path / "datasets" / "best" / record["prediction"]).read_text())
        assert [p["class"] for p in prediction["predictions"]] == [best]


def test_its_parameter_takes_the_runs_value(models, tmp_path):
    frame = scene(WIDTH, HEIGHT)[0]
    with build_workflow(parse_workflow(definition(models)), target=str(tmp_path / "datasets"),
                        parameters={"floor": 0.95}) as workflow:  # above every square's confidence
        outputs = workflow.on_image(frame).outputs
    assert outputs["best"]["best_class"] is None and outputs["crops"] == [] and outputs["classes"] == []


def _changed(models: dict[str, Path], step: int, **fields: Any) -> dict[str, Any]:
    changed = definition(models)
    changed["steps"][step].update(fields)
    return changed


@pytest.mark.parametrize(("change", "problem"), [
    ({"type": "MostConfidnt"}, "steps[1]: unknown step type 'MostConfidnt' (expected one of ObjectDetectionModel, "),
    ({"at_leest": 0.5}, "steps[1].at_leest: unknown field (did you mean 'at_least'?)"),
    ({"at_least": 1.5}, "steps[1].at_least: must be a number from 0 to 1 or a parameter ($inputs.<name>)"),
    ({"at_least": "$inputs.flor"}, "steps[1].at_least: $inputs.flor names no input (expected a parameter input"),
    ({"predictions": "$steps.cls.top"}, "steps[1].predictions: $steps.cls.top is not the predictions of a "
                                        "detection-like step ("),
])
def test_its_fields_are_refused_with_the_definitions_own_messages(models, change, problem):
    with pytest.raises(ConfigError) as raised:
        parse_workflow(_changed(models, 1, **change))
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


@pytest.mark.parametrize(("part", "index", "field", "selector", "problem"), [
    ("outputs", 0, "selector", "$steps.best.worst", "outputs[0].selector: $steps.best.worst is not an output of a "
                                                    "step"),
    ("steps", 4, "predictions", "$steps.best.best_class", "steps[4].predictions: $steps.best.best_class is not the "
                                                          "predictions of a detection-like step, the top of a "),
    ("steps", 2, "predictions", "$steps.cls.top",  # it joins the list of detection-like steps
     "steps[2].predictions: $steps.cls.top is not the predictions of a detection-like step (DetectionFilter, "
     "DetectionsConsensus, InstanceSegmentationModel, KeypointsDetectionModel, MostConfident, ObjectDetectionModel"),
])
def test_what_it_offers_is_what_other_steps_and_outputs_may_name(models, part, index, field, selector, problem):
    changed = definition(models)
    changed[part][index][field] = selector
    with pytest.raises(ConfigError) as raised:
        parse_workflow(changed)
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


def test_registering_refuses_what_is_no_step_kind_and_a_type_taken():
    class Untyped(Step):
        type: str

        def run(self, batch: Batch) -> None: ...

    class Lazy(Step):
        type: Literal["Lazy"]

    class Cropper(Step):
        type: Literal["Crop"]

        def run(self, batch: Batch) -> None: ...

    refused = [(int, TypeError, "is no step kind"), (Untyped, TypeError, "Untyped.type must be a Literal"),
               (Lazy, TypeError, "Lazy does not say how it runs"),
               (Cropper, ValueError, "step type 'Crop' is registered already, by CropStep")]
    for kind, error, message in refused:
        with pytest.raises(error, match=message):
            register_step(kind)  # type: ignore[arg-type]
    assert register_step(MostConfident) is MostConfident  # the same kind again: nothing changes


PLUGIN = '''
from typing import ClassVar, Literal

from framesift.workflows import Batch, Filtering, Step, register_step


@register_step
class Area(Step):
    """Each image's area in pixels."""

    type: Literal["Area"]
    image: str

    OUTPUTS: ClassVar[tuple[str, ...]] = ("pixels",)

    def run(self, batch: Batch) -> None:
        for values in batch.values:
            values[self.output("pixels")] = [width * height for width, height in (i.size for i in values[self.image])]
'''


def test_a_packages_entry_point_brings_its_step_to_the_command_line(models, tmp_path):
    clip = squares_video(tmp_path / "squares.mp4", WIDTH, HEIGHT, FRAMES)
    env = installed_plugin(tmp_path / "site", "framesift.workflow_steps", "areas", "my_steps", PLUGIN)
    workflow = {"inputs": [{"type": "InferenceImage", "name": "image"}], "steps": [
        {"type": "ObjectDetectionModel", "name": "det", "image": "$inputs.image", "model_id": str(models["det"]),
         "confidence": 0.3},
        {"type": "Crop", "name": "crop", "image": "$inputs.image", "predictions": "$steps.det.predictions"},
        {"type": "Area", "name": "area", "image": "$steps.crop.crops"}],
        "outputs": [{"type": "JsonField", "name": "areas", "selector": "$steps.area.pixels"}]}
    (tmp_path / "wf.json").write_text(json.dumps(workflow))
    assert framesift("validate", "wf.json", cwd=tmp_path, env=env).stdout == "valid workflow (3 steps, 0 collectors)\n"
    result = framesift("run", str(clip), "--workflow", "wf.json", "--predictions", "p.jsonl", "--no-progress",
                       cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    areas = [(x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in scene(WIDTH, HEIGHT)[1].values()]
    lines = [json.loads(line)["outputs"] for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(lines) == FRAMES
    assert all(line["areas"] == pytest.approx(areas, rel=0.15) for line in lines)  # the three squares, cut out


def test_a_plug_in_that_cannot_be_loaded_is_one_sentence(tmp_path):
    env = installed_plugin(tmp_path / "site", "framesift.workflow_steps", "areas", "missing_steps", None)
    (tmp_path / "wf.json").write_text(json.dumps({"inputs": [{"type": "InferenceImage", "name": "image"}],
                                                  "steps": [], "outputs": []}))
    result = framesift("validate", "wf.json", cwd=tmp_path, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == "framesift: the workflow step plug-in areas (missing_steps) cannot be loaded: " \
                            "ModuleNotFoundError: No module named 'missing_steps'\n"


def framesift(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framesift.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env=env)
