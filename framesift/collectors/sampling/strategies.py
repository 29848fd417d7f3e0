"""The sampling strategies, evaluated over one prediction: the four of SPEC §3, and framesift's own
`uncertainty` (on what the model computed before its threshold and NMS) and `new_objects` (a new track: it needs
the source's trackers, `trackers(strategy)`, for the frames that came before).

`matching_strategies(strategies, prediction, rng)` returns the strategies that match, in definition order, each
with what made it match (`{}` for the SPEC's, the figures for framesift's own: they go into the record). Each
strategy checks its content rule first and only then makes its own uniform draw `u` from `rng`, matching when
`u < p`. A seeded `random.Random` makes every draw reproducible.

Example:
    >>> import random
    >>> cfg = RandomStrategy(name="all", type="random", traffic_percentage=1.0)
    >>> [(s.name, why) for s, why in matching_strategies([cfg], StubPrediction("m/1"), random.Random(0))]
    [('all', {})]
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from framesift.collectors.config.schema import (
    ClassesBasedStrategy,
    CloseToThresholdStrategy,
    DetectionsNumberBasedStrategy,
    NewObjectsStrategy,
    RandomStrategy,
    StrategyConfig,
    UncertaintyStrategy,
)
from framesift.collectors.sampling.tracking import IouTracker
from framesift.predictions import ClassificationPrediction, DetectionPrediction, Prediction, StubPrediction

Match = tuple[StrategyConfig, dict[str, Any]]
Trackers = Callable[[NewObjectsStrategy], IouTracker]  # the tracker of a strategy, for the prediction's source


def matching_strategies(strategies: Sequence[StrategyConfig], prediction: Prediction, rng: random.Random,
                        trackers: Trackers | None = None) -> list[Match]:
    """Every strategy is evaluated (each with its own draw); those that match, in definition order, each with
    what made it match."""
    matched = []
    for strategy in strategies:
        why = evidence(strategy, prediction, trackers)
        if why is not None and rng.random() < _probability(strategy):
            matched.append((strategy, why))
    return matched


def decided_without_image(strategies: Sequence[StrategyConfig], stub_model: bool) -> bool:
    """Whether every strategy's decision is made without looking at the frame: each is `random`, or the model is
    the stub (whose predictions only a `random` strategy matches). Then a frame can be drawn before it is decoded
    (`Collector.draw_ahead`), with the same draws as `matching_strategies` on its prediction."""
    return stub_model or all(isinstance(strategy, RandomStrategy) for strategy in strategies)


def content_matches(strategy: StrategyConfig, prediction: Prediction) -> bool:
    """The strategy's content rule, before its random draw."""
    return evidence(strategy, prediction) is not None


def evidence(strategy: StrategyConfig, prediction: Prediction,
             trackers: Trackers | None = None) -> dict[str, Any] | None:
    """None when the content rule fails; else what made it match (the record's `selected_because`): `boxes`, the
    indexes of the detections that decided (those close to the threshold, those counted, those in the score band,
    the new tracks'), and what the strategy saw (`{}` for `random`)."""
    if not isinstance(prediction, (DetectionPrediction, ClassificationPrediction, StubPrediction)):
        raise TypeError("the strategies evaluate a DetectionPrediction, ClassificationPrediction or StubPrediction "
                        f"(as_prediction converts the rest), not {type(prediction).__qualname__}")
    if isinstance(strategy, RandomStrategy):
        return {}
    if isinstance(prediction, StubPrediction):
        return None
    if isinstance(strategy, UncertaintyStrategy):
        return _uncertain(strategy, prediction)
    if isinstance(strategy, NewObjectsStrategy):
        if trackers is None or not isinstance(prediction, DetectionPrediction):
            return None
        return _new_objects(strategy, prediction, trackers(strategy))
    if isinstance(strategy, CloseToThresholdStrategy):
        return _close_to_threshold(strategy, prediction)
    if isinstance(strategy, ClassesBasedStrategy):
        if not isinstance(prediction, ClassificationPrediction):
            return None
        return _classes_based(strategy, prediction)
    if isinstance(strategy, DetectionsNumberBasedStrategy):
        return _detections_number(strategy, prediction) if isinstance(prediction, DetectionPrediction) else None
    raise TypeError(f"unknown strategy {strategy!r}")


def _uncertain(strategy: UncertaintyStrategy,
               prediction: DetectionPrediction | ClassificationPrediction) -> dict[str, Any] | None:
    if isinstance(prediction, DetectionPrediction):
        if strategy.score_band is None:
            return None
        scores, names = prediction.candidate_score, prediction.candidate_class
        if scores is None or names is None:  # read from JSON: only what passed the threshold is known
            scores, names = prediction.confidence, prediction.class_name
        low, high = strategy.score_band
        hits = _eligible(strategy.selected_class_names, names) & (scores >= low) & (scores < high)
        found = int(hits.sum())
        if found < strategy.minimum_candidates:
            return None
        shown = _eligible(strategy.selected_class_names, prediction.class_name) & \
            (prediction.confidence >= low) & (prediction.confidence < high)  # those that passed the threshold
        return {"candidates_in_band": found, "scores": sorted((round(float(v), 4) for v in scores[hits]),
                                                              reverse=True)[:5],
                "band": [low, high], "boxes": np.flatnonzero(shown).tolist()}
    confidences = np.sort(prediction.confidences)[::-1]
    margin = float(confidences[0] - confidences[1]) if confidences.size > 1 else 1.0
    p = confidences[confidences > 0] / max(float(confidences.sum()), 1e-12)
    entropy = float(-(p * np.log(p)).sum() / math.log(confidences.size)) if confidences.size > 1 else 0.0
    if (strategy.max_margin is not None and margin < strategy.max_margin) or \
            (strategy.min_entropy is not None and entropy >= strategy.min_entropy):
        return {"margin": round(margin, 4), "entropy": round(entropy, 4)}
    return None


def _new_objects(strategy: NewObjectsStrategy, prediction: DetectionPrediction,
                 tracker: IouTracker) -> dict[str, Any] | None:
    eligible = _eligible(strategy.selected_class_names, prediction.class_name)
    names = [name for name, keep in zip(prediction.class_name, eligible, strict=True) if keep]
    new = tracker.update(prediction.xyxy[eligible], names)  # every frame: the tracks must see them all
    if not new:
        return None
    indexes = np.flatnonzero(eligible)
    return {"track_ids": new, "classes": [tracker.class_of(track) for track in new],
            "boxes": [int(indexes[tracker.detection_of[track]]) for track in new]}


def _probability(strategy: StrategyConfig) -> float:
    return strategy.traffic_percentage if isinstance(strategy, RandomStrategy) else strategy.probability


def _eligible(selected: Sequence[str] | None, names: Sequence[str]) -> np.ndarray:
    if selected is None:
        return np.ones(len(names), dtype=bool)
    chosen = set(selected)
    return np.fromiter((name in chosen for name in names), dtype=bool, count=len(names))


def _close_to_threshold(strategy: CloseToThresholdStrategy,
                        prediction: DetectionPrediction | ClassificationPrediction) -> dict[str, Any] | None:
    def close(confidences: np.ndarray) -> np.ndarray:
        return np.abs(confidences - strategy.threshold) < strategy.epsilon

    seen = {"threshold": strategy.threshold, "epsilon": strategy.epsilon}
    if isinstance(prediction, DetectionPrediction):
        hits = _eligible(strategy.selected_class_names, prediction.class_name) & close(prediction.confidence)
        if int(hits.sum()) < strategy.minimum_objects_close_to_threshold:
            return None
        return {**seen, "boxes": np.flatnonzero(hits).tolist()}
    names, confidences = prediction.class_names, prediction.confidences
    if strategy.only_top_classes and not prediction.multi_label:
        top = int(np.argmax(confidences))
        holds = bool(_eligible(strategy.selected_class_names, [names[top]])[0] and close(confidences[top:top + 1])[0])
        return {**seen, "classes": [names[top]]} if holds else None
    considered = _eligible(strategy.selected_class_names, names)
    if strategy.only_top_classes:  # multi-label: only the predicted classes count
        considered &= _eligible(prediction.predicted_classes, names)
    hits = considered & close(confidences)
    return {**seen, "classes": [names[i] for i in np.flatnonzero(hits)]} if hits.any() else None


def _classes_based(strategy: ClassesBasedStrategy, prediction: ClassificationPrediction) -> dict[str, Any] | None:
    selected = set(strategy.selected_class_names)
    chosen = prediction.predicted_classes if prediction.multi_label else [prediction.top]
    found = [name for name in chosen if name in selected]
    return {"classes": found} if found else None


def _detections_number(strategy: DetectionsNumberBasedStrategy,
                       prediction: DetectionPrediction) -> dict[str, Any] | None:
    counted = _eligible(strategy.selected_class_names, prediction.class_name)
    n = int(counted.sum())
    if strategy.more_than is not None and n <= strategy.more_than:
        return None
    if strategy.less_than is not None and n >= strategy.less_than:
        return None
    return {"objects": n, "boxes": np.flatnonzero(counted).tolist()}
