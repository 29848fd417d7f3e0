"""The sampling strategies, evaluated over one prediction: the four of SPEC §3 and framesift's own `uncertainty`
(on what the model computed before its threshold and NMS) and `new_objects` (a new track), one file each, all in
one registry (`registry`) that a configuration's `sampling_strategies` are validated against. A strategy of yours
is one `Strategy` subclass registered with `@register` (docs/plugins/strategy.md).

`matching_strategies(strategies, prediction, rng, states)` returns the strategies that match, in definition
order, each with what made it match (`{}` for the SPEC's, the figures for framesift's own: they go into the
record). Each strategy checks its rule first and only then makes its own uniform draw `u` from `rng`, matching
when `u < chance()`. A seeded `random.Random` makes every draw reproducible. `states(strategy)` gives a strategy's
state for the prediction's source (`new_objects`' tracker of the frames that came before).

Example:
    >>> import random
    >>> cfg = RandomStrategy(name="all", type="random", traffic_percentage=1.0)
    >>> [(s.name, why) for s, why in matching_strategies([cfg], StubPrediction("m/1"), random.Random(0))]
    [('all', {})]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from random import Random  # the package's own `random` is the strategy's module
from typing import Any

from framesift.collectors.sampling.strategies.base import Limit, Probability, Strategy, StrictModel, Tag, eligible
from framesift.collectors.sampling.strategies.registry import register, registered, strategy_types, unregister

# importing them registers them: SPEC §3's four, then framesift's own (the order messages list them in)
# isort: off
from framesift.collectors.sampling.strategies.random import RandomStrategy
from framesift.collectors.sampling.strategies.close_to_threshold import CloseToThresholdStrategy
from framesift.collectors.sampling.strategies.classes_based import ClassesBasedStrategy
from framesift.collectors.sampling.strategies.detections_number_based import DetectionsNumberBasedStrategy
from framesift.collectors.sampling.strategies.uncertainty import UncertaintyStrategy
from framesift.collectors.sampling.strategies.new_objects import NewObjectsStrategy
# isort: on
from framesift.predictions import ClassificationPrediction, DetectionPrediction, Prediction, StubPrediction

__all__ = ["ClassesBasedStrategy", "CloseToThresholdStrategy", "DetectionsNumberBasedStrategy", "Limit", "Match",
           "NewObjectsStrategy", "Probability", "RandomStrategy", "SourceStates", "States", "Strategy",
           "StrictModel", "Tag", "UncertaintyStrategy", "content_matches", "decided_without_image", "eligible",
           "evidence", "matching_strategies", "register", "registered", "strategy_types", "unregister"]

Match = tuple[Strategy, dict[str, Any]]
States = Callable[[Strategy], Any]  # a strategy's state (its `new_state()`) for the prediction's source


class SourceStates:
    """What the strategies keep per source (`new_objects`' trackers): one state per source, strategy name and type,
    made on the source's first frame; it outlives a reconfiguration that keeps the strategy."""

    def __init__(self) -> None:
        self._states: dict[str, dict[tuple[str, str], Any]] = {}

    def of(self, source: str) -> States:
        """The states of one source's strategies."""
        by_strategy = self._states.setdefault(source, {})

        def state(strategy: Strategy) -> Any:
            key = (strategy.name, strategy.type)
            if key not in by_strategy:
                by_strategy[key] = strategy.new_state()
            return by_strategy[key]

        return state


def matching_strategies(strategies: Sequence[Strategy], prediction: Prediction, rng: Random,
                        states: States | None = None) -> list[Match]:
    """Every strategy is evaluated (each with its own draw); those that match, in definition order, each with
    what made it match."""
    matched = []
    for strategy in strategies:
        why = evidence(strategy, prediction, states)
        if why is not None and rng.random() < strategy.chance():
            matched.append((strategy, why))
    return matched


def decided_without_image(strategies: Sequence[Strategy], stub_model: bool) -> bool:
    """Whether every strategy's decision is made without looking at the frame: none `needs_image` (`random`), or
    the model is the stub (whose predictions only those match). Then a frame can be drawn before it is decoded
    (`Collector.draw_ahead`), with the same draws as `matching_strategies` on its prediction. A strategy that
    keeps state per source and decides without the image is never drawn ahead: its state is its source's."""
    if any(strategy.keeps_state() and not strategy.needs_image for strategy in strategies):
        return False
    return stub_model or not any(strategy.needs_image for strategy in strategies)


def content_matches(strategy: Strategy, prediction: Prediction) -> bool:
    """The strategy's content rule, before its random draw."""
    return evidence(strategy, prediction) is not None


def evidence(strategy: Strategy, prediction: Prediction, states: States | None = None) -> dict[str, Any] | None:
    """None when the content rule fails; else what made it match (the record's `selected_because`): `boxes`, the
    indexes of the detections that decided (those close to the threshold, those counted, those in the score band,
    the new tracks'), and what the strategy saw (`{}` for `random`)."""
    if not isinstance(prediction, (DetectionPrediction, ClassificationPrediction, StubPrediction)):
        raise TypeError("the strategies evaluate a DetectionPrediction, ClassificationPrediction or StubPrediction "
                        f"(as_prediction converts the rest), not {type(prediction).__qualname__}")
    if strategy.needs_image and isinstance(prediction, StubPrediction):
        return None
    return strategy.evidence(prediction, None if states is None else states(strategy))
