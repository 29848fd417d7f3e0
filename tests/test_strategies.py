"""SPEC §3: the exact semantics and every worked case."""

from __future__ import annotations

import random

import numpy as np
import pytest

from framesift.collectors.config.schema import (
    ClassesBasedStrategy,
    CloseToThresholdStrategy,
    DetectionsNumberBasedStrategy,
    RandomStrategy,
)
from framesift.collectors.sampling.strategies import content_matches, matching_strategies
from framesift.predictions import (
    ClassificationPrediction,
    DetectionPrediction,
    StubPrediction,
    prediction_from_json,
)


def detections(*pairs: tuple[str, float]) -> DetectionPrediction:
    return DetectionPrediction.from_lists(
        "object-detection", "m/1", (100, 100), xyxy=[[0, 0, 10, 10]] * len(pairs),
        confidence=[c for _, c in pairs], class_name=[n for n, _ in pairs])


AB = detections(("a", 0.9), ("b", 0.7))


def close(threshold, epsilon, minimum=1, classes=None, probability=1.0, only_top=True):
    return CloseToThresholdStrategy(name="c", type="close_to_threshold", threshold=threshold, epsilon=epsilon,
                                    probability=probability, minimum_objects_close_to_threshold=minimum,
                                    selected_class_names=classes, only_top_classes=only_top)


def counting(more_than=None, less_than=None, classes=None):
    # model_construct: the worked case (2, 5, 1) is refused by validation, but its semantics are still defined
    return DetectionsNumberBasedStrategy.model_construct(
        name="n", type="detections_number_based", probability=1.0, more_than=more_than, less_than=less_than,
        selected_class_names=classes, tags=[], limits=[])


def test_worked_case_close_to_threshold_minimum():
    assert content_matches(close(0.6, 0.15, minimum=1), AB)
    assert not content_matches(close(0.6, 0.15, minimum=2), AB)


def test_worked_case_close_to_threshold_with_class_filter():
    # threshold .5 / epsilon 1.0 with classes {a, c} -> exactly 1 close object (a)
    assert content_matches(close(0.5, 1.0, minimum=1, classes=["a", "c"]), AB)
    assert not content_matches(close(0.5, 1.0, minimum=2, classes=["a", "c"]), AB)


def test_close_is_strict_and_epsilon_zero_never_matches():
    assert not content_matches(close(0.7, 0.0), AB)
    assert not content_matches(close(0.6, 0.1), detections(("a", 0.5)))  # |0.5-0.6| == 0.1, not < 0.1
    assert content_matches(close(0.6, 0.1001), detections(("a", 0.5)))


def test_class_filter_is_exact_and_case_sensitive():
    assert not content_matches(close(0.5, 1.0, classes=["A"]), AB)


@pytest.mark.parametrize("n,more_than,less_than", [(1, None, 2), (2, 1, 5), (5, 4, None), (1, None, None),
                                                   (0, None, None)])
def test_worked_counting_cases_that_match(n, more_than, less_than):
    assert content_matches(counting(more_than, less_than), detections(*[("a", 0.5)] * n))


@pytest.mark.parametrize("n,more_than,less_than", [(1, 2, None), (2, 5, 1), (5, None, 4)])
def test_worked_counting_cases_that_do_not_match(n, more_than, less_than):
    assert not content_matches(counting(more_than, less_than), detections(*[("a", 0.5)] * n))


def test_counting_only_counts_eligible_classes():
    assert content_matches(counting(less_than=2, classes=["b"]), detections(("a", .5), ("a", .5), ("b", .5)))


def classification(confidences: dict[str, float], multi_label=False, predicted=()):
    return ClassificationPrediction("cls/1", (10, 10), list(confidences),
                                    np.asarray(list(confidences.values()), dtype=np.float32),
                                    multi_label=multi_label, predicted_classes=list(predicted))


CAT_DOG = classification({"cat": 0.55, "dog": 0.45})


def test_single_label_close_to_threshold_with_only_top_classes():
    assert content_matches(close(0.5, 0.1), CAT_DOG)
    assert not content_matches(close(0.5, 0.1, classes=["dog"]), CAT_DOG)  # top class not eligible
    assert not content_matches(close(0.45, 0.01), CAT_DOG)  # dog is close but is not the top


def test_single_label_close_to_threshold_without_only_top_classes():
    assert content_matches(close(0.45, 0.01, only_top=False), CAT_DOG)
    assert content_matches(close(0.45, 0.01, classes=["dog"], only_top=False), CAT_DOG)
    assert not content_matches(close(0.45, 0.01, classes=["cat"], only_top=False), CAT_DOG)


def test_multi_label_close_to_threshold_considers_predicted_classes_only_with_only_top():
    p = classification({"cat": 0.97, "dog": 0.52, "car": 0.48}, multi_label=True, predicted=["cat", "dog"])
    assert content_matches(close(0.5, 0.05), p)  # dog, predicted and close
    assert not content_matches(close(0.48, 0.01), p)  # car is close but not predicted
    assert content_matches(close(0.48, 0.01, only_top=False), p)
    assert not content_matches(close(0.5, 0.05, classes=["cat", "car"]), p)


def test_minimum_objects_is_ignored_for_classification():
    assert content_matches(close(0.5, 0.1, minimum=5), CAT_DOG)


def test_classes_based():
    s = ClassesBasedStrategy(name="k", type="classes_based", selected_class_names=["dog"], probability=1.0)
    assert not content_matches(s, CAT_DOG)  # top is cat
    assert content_matches(s, classification({"cat": 0.1, "dog": 0.9}))
    multi = classification({"cat": 0.9, "dog": 0.8}, multi_label=True, predicted=["cat", "dog"])
    assert content_matches(s, multi)
    assert not content_matches(s, AB)  # classification only


def test_counting_is_false_for_classification_and_only_random_matches_a_stub():
    stub = StubPrediction("stub")
    assert not content_matches(counting(), CAT_DOG)
    assert not content_matches(counting(), stub)
    assert not content_matches(close(0.5, 1.0), stub)
    assert content_matches(RandomStrategy(name="r", type="random", traffic_percentage=0.0), stub)


def test_draw_thresholds_p_one_always_p_zero_never():
    rng = random.Random(1)
    always = RandomStrategy(name="a", type="random", traffic_percentage=1.0)
    never = RandomStrategy(name="n", type="random", traffic_percentage=0.0)
    results = [matching_strategies([always, never], AB, rng) for _ in range(1000)]
    assert all([s.name for s, _ in r] == ["a"] for r in results)


def test_each_strategy_draws_independently_and_only_after_its_content_rule():
    half = RandomStrategy(name="h", type="random", traffic_percentage=0.5)
    no_content = close(0.0, 0.0001, probability=0.5)  # never passes its content rule, so never draws
    seeded = [[s.name for s, _ in matching_strategies([no_content, half], AB, random.Random(7))] for _ in range(3)]
    reference = random.Random(7)
    expected = ["h"] if reference.random() < 0.5 else []
    assert seeded == [expected] * 3
    rate = np.mean([bool(matching_strategies([half], AB, random.Random(i))) for i in range(4000)])
    assert 0.45 < rate < 0.55


def test_seed_makes_every_draw_reproducible():
    strategies = [RandomStrategy(name=f"r{i}", type="random", traffic_percentage=0.3) for i in range(3)]
    runs = [[tuple(s.name for s, _ in matching_strategies(strategies, AB, rng)) for _ in range(200)]
            for rng in (random.Random(42), random.Random(42))]
    assert runs[0] == runs[1] and len(set(runs[0])) > 3


def test_strategies_accept_the_json_shape_too():
    as_json = prediction_from_json({
        "image": {"width": 100, "height": 100}, "model_id": "m/1", "task_type": "object-detection",
        "predictions": [{"x": 5, "y": 5, "width": 10, "height": 10, "confidence": 0.9, "class": "a", "class_id": 0},
                        {"x": 5, "y": 5, "width": 10, "height": 10, "confidence": 0.7, "class": "b", "class_id": 1}]})
    assert content_matches(close(0.6, 0.15, minimum=1), as_json)
    assert not content_matches(close(0.6, 0.15, minimum=2), as_json)
    single = prediction_from_json({"image": {"width": 1, "height": 1}, "top": "cat", "confidence": 0.55,
                                   "predictions": [{"class": "cat", "class_id": 0, "confidence": 0.55},
                                                   {"class": "dog", "class_id": 1, "confidence": 0.45}]})
    assert content_matches(close(0.5, 0.1), single)
    multi = prediction_from_json({"image": {"width": 1, "height": 1}, "predicted_classes": ["cat"],
                                  "predictions": {"cat": {"class_id": 0, "confidence": 0.97},
                                                  "dog": {"class_id": 1, "confidence": 0.5}}})
    assert not content_matches(close(0.5, 0.05), multi)
    assert content_matches(close(0.5, 0.05, only_top=False), multi)
    assert prediction_from_json({"is_stub": True, "model_id": "x", "task_type": "classification", "time": 1.0}) == \
        StubPrediction("x", "classification", 1.0)
