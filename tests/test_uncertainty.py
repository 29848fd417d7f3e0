"""framesift's own `uncertainty` strategy (issue 14, part 3): it sees what the model computed before its threshold
and NMS — the objects it almost missed — and the classifier's margin and entropy. Test-built models whose scores are
known: the detector scores a red square 0.9, a green one 0.6, a blue one 0.35."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest

from framesift import Collector, ConfigError, LocalDataset, StubPrediction, load_model, parse_config, read_records
from framesift.collectors.sampling.strategies import evidence, matching_strategies
from framesift.predictions import prediction_from_json
from tests.model_builders import BGR, build_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return (load_model(str(build_model(folder / "det.onnx", "detect", size=160)), confidence=0.5),
            load_model(str(build_model(folder / "cls.onnx", "classify", size=64))))


def squares(*colours: str) -> np.ndarray:
    frame = np.full((240, 320, 3), 90, np.uint8)
    for k, colour in enumerate(colours):
        cv2.rectangle(frame, (20 + 90 * k, 40), (80 + 90 * k, 100), BGR[colour], -1)
    return frame


def uncertainty(**fields) -> object:
    data = {"enabled": True, "persist_predictions": True, "sampling_strategies": [
        {"name": "unsure", "type": "uncertainty", "probability": 1.0, **fields}],
        "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}
    return parse_config(data)


def test_a_candidate_below_the_threshold_is_seen_in_the_band(models):
    detector, _ = models
    strategy = uncertainty(score_band=[0.3, 0.4]).sampling_strategies[0]
    with_blue, without = detector.predict([squares("red", "blue"), squares("red", "green")])
    assert with_blue.class_name == ["red"]  # blue (0.35) is below the 0.5 threshold: no detection...
    assert evidence(strategy, with_blue) == {"candidates_in_band": 1, "scores": [0.35], "band": [0.3, 0.4],
                                             "boxes": []}  # ...but a candidate, with no box to show
    assert evidence(strategy, without) is None
    assert evidence(uncertainty(score_band=[0.3, 0.4], selected_class_names=["green"]).sampling_strategies[0],
                    with_blue) is None
    assert evidence(uncertainty(score_band=[0.5, 0.95], minimum_candidates=2).sampling_strategies[0],
                    without) == {"candidates_in_band": 2, "scores": [0.9, 0.6], "band": [0.5, 0.95],
                                 "boxes": [0, 1]}  # both detections: the boxes that decided
    assert evidence(strategy, StubPrediction("stub")) is None
    # a prediction read from JSON knows only what passed the threshold: that is all the band can see
    assert evidence(strategy, prediction_from_json(with_blue.to_json())) is None


def test_a_small_margin_or_a_high_entropy_of_the_classifier(models):
    _, classifier = models
    half = np.zeros((64, 64, 3), np.uint8)
    half[:, :32], half[:, 32:] = BGR["red"], BGR["green"]
    torn, sure = classifier.predict([half, np.full((64, 64, 3), BGR["red"], np.uint8)])
    margin = uncertainty(max_margin=0.1).sampling_strategies[0]
    found = evidence(margin, torn)
    assert found is not None and found["margin"] < 0.1 and 0.6 < found["entropy"] < 0.65  # ln 2 / ln 3
    assert evidence(margin, sure) is None
    assert evidence(uncertainty(min_entropy=0.6).sampling_strategies[0], torn) is not None
    assert evidence(uncertainty(min_entropy=0.6).sampling_strategies[0], sure) is None


def test_the_record_says_what_made_it_match(models, tmp_path):
    detector, _ = models
    config = uncertainty(score_band=[0.3, 0.4])
    frames = [squares("red", "blue"), squares("red"), squares("blue")]
    with Collector(config, LocalDataset(tmp_path / "ds"), seed=1) as collector:
        for i, (frame, prediction) in enumerate(zip(frames, detector.predict(frames), strict=True)):
            collector.submit(frame, prediction, frame_id=i)
    records = list(read_records(tmp_path / "ds"))
    assert [r["frame_id"] for r in records] == [0, 2]
    assert all(r["selected_because"] == {"candidates_in_band": 1, "scores": [0.35], "band": [0.3, 0.4], "boxes": []}
               for r in records)
    assert [s.name for s, _ in matching_strategies(config.sampling_strategies, detector.predict(frames[:1])[0],
                                                   random.Random(0))] == ["unsure"]


@pytest.mark.parametrize(("fields", "problem"), [
    ({}, "sampling_strategies[0]: give score_band (detection), max_margin or min_entropy (classification)"),
    ({"score_band": [0.4, 0.3]}, "sampling_strategies[0]: score_band is [low, high] with low < high"),
    ({"score_band": [0.1]}, "sampling_strategies[0].score_band: must have at least 2 item(s)"),
    ({"max_margin": 1.5}, "sampling_strategies[0].max_margin: must be <= 1.0"),
])
def test_the_strategy_is_validated_as_strictly_as_the_rest(fields, problem):
    with pytest.raises(ConfigError) as raised:
        uncertainty(**fields)
    assert problem in raised.value.problems
