"""The four sampling strategies of SPEC §3, evaluated over one prediction.

`matching_strategies(strategies, prediction, rng)` returns the strategies that match, in definition order.
Each strategy checks its content rule first and only then makes its own uniform draw `u` from `rng`,
matching when `u < p`. A seeded `random.Random` makes every draw reproducible.

Example:
    >>> import random
    >>> cfg = RandomStrategy(name="all", type="random", traffic_percentage=1.0)
    >>> [s.name for s in matching_strategies([cfg], StubPrediction("m/1"), random.Random(0))]
    ['all']
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from framesift.collectors.config import (
    ClassesBasedStrategy,
    CloseToThresholdStrategy,
    DetectionsNumberBasedStrategy,
    RandomStrategy,
    StrategyConfig,
)
from framesift.predictions import ClassificationPrediction, DetectionPrediction, Prediction, StubPrediction


def matching_strategies(
    strategies: Sequence[StrategyConfig], prediction: Prediction, rng: random.Random
) -> list[StrategyConfig]:
    """Every strategy is evaluated (each with its own draw); those that match, in definition order."""
    return [s for s in strategies if content_matches(s, prediction) and rng.random() < _probability(s)]


def content_matches(strategy: StrategyConfig, prediction: Prediction) -> bool:
    """The strategy's content rule, before its random draw."""
    if isinstance(strategy, RandomStrategy):
        return True
    if isinstance(prediction, StubPrediction):
        return False
    if isinstance(strategy, CloseToThresholdStrategy):
        return _close_to_threshold(strategy, prediction)
    if isinstance(strategy, ClassesBasedStrategy):
        return isinstance(prediction, ClassificationPrediction) and _classes_based(strategy, prediction)
    if isinstance(strategy, DetectionsNumberBasedStrategy):
        return isinstance(prediction, DetectionPrediction) and _detections_number(strategy, prediction)
    raise TypeError(f"unknown strategy {strategy!r}")


def _probability(strategy: StrategyConfig) -> float:
    return strategy.traffic_percentage if isinstance(strategy, RandomStrategy) else strategy.probability


def _eligible(selected: Sequence[str] | None, names: Sequence[str]) -> np.ndarray:
    if selected is None:
        return np.ones(len(names), dtype=bool)
    chosen = set(selected)
    return np.fromiter((name in chosen for name in names), dtype=bool, count=len(names))


def _close_to_threshold(strategy: CloseToThresholdStrategy, prediction: Prediction) -> bool:
    def close(confidences: np.ndarray) -> np.ndarray:
        return np.abs(confidences - strategy.threshold) < strategy.epsilon

    if isinstance(prediction, DetectionPrediction):
        hits = _eligible(strategy.selected_class_names, prediction.class_name) & close(prediction.confidence)
        return int(hits.sum()) >= strategy.minimum_objects_close_to_threshold
    assert isinstance(prediction, ClassificationPrediction)
    names, confidences = prediction.class_names, prediction.confidences
    if strategy.only_top_classes and not prediction.multi_label:
        top = int(np.argmax(confidences))
        return bool(_eligible(strategy.selected_class_names, [names[top]])[0] and close(confidences[top:top + 1])[0])
    considered = _eligible(strategy.selected_class_names, names)
    if strategy.only_top_classes:  # multi-label: only the predicted classes count
        considered &= _eligible(prediction.predicted_classes, names)
    return bool((considered & close(confidences)).any())


def _classes_based(strategy: ClassesBasedStrategy, prediction: ClassificationPrediction) -> bool:
    selected = set(strategy.selected_class_names)
    if prediction.multi_label:
        return any(name in selected for name in prediction.predicted_classes)
    return prediction.top in selected


def _detections_number(strategy: DetectionsNumberBasedStrategy, prediction: DetectionPrediction) -> bool:
    n = int(_eligible(strategy.selected_class_names, prediction.class_name).sum())
    return (strategy.more_than is None or n > strategy.more_than) and (
        strategy.less_than is None or n < strategy.less_than
    )
