"""Bring your own predictions (issue 23): `supervision.Detections` and `Classifications` — what every supervision or
Ultralytics user holds — go through `Collector.submit`, a workflow and a `Pipeline`'s callbacks, converted once;
anything else is a `TypeError` naming what is accepted. The README's example runs here as it is written."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from framesift import (
    ClassificationPrediction,
    Collector,
    DetectionPrediction,
    LocalDataset,
    Pipeline,
    SourceSpec,
    Workflow,
    load_model,
    parse_config,
    parse_workflow,
    read_records,
)
from tests.helpers import collect_all_config
from tests.model_builders import build_model, scene, squares_video

ROOT = Path(__file__).resolve().parents[1]
CLOSE_TO_HALF = {"enabled": True, "persist_predictions": True,
                 "sampling_strategies": [{"name": "unsure", "type": "close_to_threshold", "threshold": 0.5,
                                          "epsilon": 0.2, "probability": 1.0}],
                 "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}


def persisted(folder: Path) -> list[dict]:
    return [json.loads((folder / record["prediction"]).read_text()) for record in read_records(folder)]


def test_submit_takes_supervision_detections_with_their_names_masks_and_tracker_ids(tmp_path):
    """It failed with a bare AssertionError from the strategies (none under `python -O`)."""
    frame = np.zeros((120, 200, 3), np.uint8)
    mask = np.zeros((2, 120, 200), bool)
    mask[0, 20:60, 30:90] = mask[1, 50:100, 100:180] = True
    detections = sv.Detections(xyxy=np.array([[30, 20, 90, 60], [100, 50, 180, 100]], np.float32),
                               confidence=np.array([0.45, 0.9], np.float32), class_id=np.array([3, 7]),
                               mask=mask, tracker_id=np.array([11, 12]),
                               data={"class_name": np.array(["person", "forklift"])})
    with Collector(parse_config(CLOSE_TO_HALF), LocalDataset(tmp_path / "ds")) as collector:
        assert collector.submit(frame, detections, model_id="yolo11n-seg")  # 0.45 is close to 0.5
    [prediction] = persisted(tmp_path / "ds")
    assert prediction["model_id"] == "yolo11n-seg" and prediction["task_type"] == "instance-segmentation"
    first, second = prediction["predictions"]
    assert (first["class"], first["class_id"], first["tracker_id"], first["confidence"]) == ("person", 3, 11,
                                                                                            pytest.approx(0.45))
    assert (first["x"], first["y"], first["width"], first["height"]) == (60, 40, 60, 40)
    assert (second["class"], second["tracker_id"]) == ("forklift", 12)
    points = np.array([[p["x"], p["y"]] for p in first["points"]])
    assert np.allclose([points.min(axis=0), points.max(axis=0)], [[30, 20], [89, 59]], atol=1)  # the mask's edge


def test_detections_without_names_take_the_names_given_or_their_ids():
    detections = sv.Detections(xyxy=np.array([[0, 0, 10, 10], [5, 5, 20, 20]], np.float32),
                               class_id=np.array([1, 0]))
    named = DetectionPrediction.from_detections(detections, (64, 48), class_names=["cat", "dog"], model_id="pets/2")
    assert named.class_name == ["dog", "cat"] and named.model_id == "pets/2" and named.image_size == (64, 48)
    assert list(named.confidence) == [1.0, 1.0]  # no confidences: certain
    assert DetectionPrediction.from_detections(detections, (64, 48), class_names={0: "a", 1: "b"}).class_name == \
        ["b", "a"]
    assert DetectionPrediction.from_detections(detections, (64, 48)).class_name == ["1", "0"]
    with pytest.raises(ValueError, match="class id 1 has no name among the 1 class names given"):
        DetectionPrediction.from_detections(detections, (64, 48), class_names=["cat"])
    empty = DetectionPrediction.from_detections(sv.Detections.empty(), (64, 48))
    assert len(empty) == 0 and empty.to_json()["predictions"] == []
    roundtrip = DetectionPrediction.from_detections(named.to_detections(), (64, 48))
    assert roundtrip.class_name == named.class_name and np.array_equal(roundtrip.xyxy, named.xyxy)


def test_submit_takes_supervision_classifications(tmp_path):
    config = parse_config({**CLOSE_TO_HALF, "sampling_strategies": [
        {"name": "cats", "type": "classes_based", "selected_class_names": ["cat"], "probability": 1.0}]})
    scores = sv.Classifications(class_id=np.array([0, 1, 2]), confidence=np.array([0.2, 0.7, 0.1]))
    as_ours = ClassificationPrediction.from_classifications(scores, (32, 32), class_names=["dog", "cat", "cow"])
    assert as_ours.top == "cat" and as_ours.top_confidence == pytest.approx(0.7)
    top_two = ClassificationPrediction.from_classifications(sv.Classifications(class_id=np.array([1]),
                                                                               confidence=np.array([0.7])),
                                                            (32, 32), class_names=["dog", "cat", "cow"])
    assert top_two.class_names == ["dog", "cat", "cow"] and list(top_two.confidences) == pytest.approx([0, 0.7, 0])
    with Collector(config, LocalDataset(tmp_path / "ds")) as collector:
        assert collector.submit(np.zeros((32, 32, 3), np.uint8), scores, class_names=["dog", "cat", "cow"])
        assert not collector.submit(np.zeros((32, 32, 3), np.uint8), scores)  # named by their ids: no "cat"
    [prediction] = persisted(tmp_path / "ds")
    assert prediction["top"] == "cat" and [p["class"] for p in prediction["predictions"]] == ["cat", "dog", "cow"]


@pytest.mark.parametrize("wrong", [[[10, 10, 20, 20]], np.zeros((1, 4)), "person", None])
def test_anything_else_is_a_type_error_naming_what_is_accepted(tmp_path, wrong):
    with Collector(collect_all_config(), LocalDataset(tmp_path / "ds")) as collector:
        with pytest.raises(TypeError, match="^a prediction is a DetectionPrediction, ClassificationPrediction or "
                                            "StubPrediction, a supervision Detections or Classifications, or the "
                                            "JSON of a Roboflow Inference response \\(a mapping\\), not "):
            collector.submit(np.zeros((8, 8, 3), np.uint8), wrong)
    assert list(read_records(tmp_path / "ds")) == []


class OwnDetector:
    """A model of one's own that answers in supervision's types: the test-built detector's boxes as
    `sv.Detections` with class ids only (the names are the model's `class_names`)."""

    task_type, model_id, class_names = "object-detection", "own/1", ["apple", "banana", "cherry"]

    def __init__(self, path: Path):
        self._inner = load_model(str(path), confidence=0.3)
        self.input_size, self.max_batch = self._inner.input_size, self._inner.max_batch

    def prepare(self, frame):
        return self._inner.prepare(frame)

    def infer(self, inputs):
        return [sv.Detections(xyxy=p.xyxy, confidence=p.confidence, class_id=p.class_id)
                for p in self._inner.infer(inputs)]


def test_a_model_of_ones_own_answering_in_supervision_types_runs_in_a_pipeline(tmp_path):
    clip = squares_video(tmp_path / "squares.mp4", 320, 240, frames=3)
    model = OwnDetector(build_model(tmp_path / "det.onnx"))
    seen = []
    with Pipeline([SourceSpec(str(clip), "cam")], model, Collector(collect_all_config(), LocalDataset(tmp_path / "ds")),
                  on_prediction=[lambda frame, prediction: seen.append(prediction)]) as pipeline:
        pipeline.run()
    assert len(seen) == 3 and all(isinstance(p, DetectionPrediction) for p in seen)
    truth = scene(320, 240)[1]
    for prediction in seen:
        assert prediction.model_id == "own/1" and prediction.image_size == (320, 240)
        assert prediction.class_name == ["apple", "banana", "cherry"]
        assert np.allclose(prediction.xyxy, [truth[c] for c in ("red", "green", "blue")], atol=2.5)
    assert [p["model_id"] for p in persisted(tmp_path / "ds")] == ["own/1"] * 3


def test_a_model_of_ones_own_in_a_workflow_on_crops(tmp_path):
    """Its crops' sizes name the detections' image."""
    definition = parse_workflow({
        "version": "1.0", "inputs": [{"type": "InferenceImage", "name": "image"}],
        "steps": [{"type": "ObjectDetectionModel", "name": "det", "image": "$inputs.image", "model_id": "own/1"},
                  {"type": "RelativeStaticCrop", "name": "half", "image": "$inputs.image", "x_center": 0.15,
                   "y_center": 0.5, "width": 0.3, "height": 1.0},
                  {"type": "ObjectDetectionModel", "name": "inner", "image": "$steps.half.crops",
                   "model_id": "own/1"},
                  {"type": "ActiveLearningDataCollector", "name": "crops", "image": "$steps.half.crops",
                   "predictions": "$steps.inner.predictions", "target_dataset": "crops",
                   "active_learning_configuration": {**CLOSE_TO_HALF, "sampling_strategies": [
                       {"name": "all", "type": "random", "traffic_percentage": 1.0}]}}],
        "outputs": [{"type": "JsonField", "name": "inner", "selector": "$steps.inner.predictions"}]})
    model = OwnDetector(build_model(tmp_path / "det.onnx"))
    frame, truth = scene(320, 240)
    with Workflow(definition, {"det": model, "inner": model},
                  {"crops": Collector(collect_all_config(), LocalDataset(tmp_path / "crops"))}) as workflow:
        result = workflow.on_image(frame)
    assert isinstance(result.prediction, DetectionPrediction) and result.prediction.class_name == \
        ["apple", "banana", "cherry"]
    [inner] = result.outputs["inner"]
    assert inner["image"] == {"width": 96, "height": 240} and [p["class"] for p in inner["predictions"]] == ["apple"]
    [crop] = persisted(tmp_path / "crops")
    assert crop["model_id"] == "own/1" and crop["predictions"][0]["class"] == "apple"


def test_the_docs_bring_your_own_model_example_runs_as_written(tmp_path, monkeypatch):
    page = (ROOT / "docs" / "python.md").read_text()
    section = page[page.index("## Bring your own model"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    os.symlink(ROOT / "configs", tmp_path / "configs")
    exec(compile(code, "docs/python.md", "exec"), {})
    [prediction] = persisted(tmp_path / "framesift-data")
    assert prediction["model_id"] == "yolo11n" and prediction["predictions"][0]["class"] == "person"
