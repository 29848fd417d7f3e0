"""The collector's sampling, on the caller's thread: the configuration in force (`Policy`), the draws, what the
strategies keep per source (`new_objects`' trackers), and what a sampled frame carries to the collector's thread
(`Sampled`).

`Sampler.sample` evaluates the strategies where it is called (microseconds, no I/O, no waiting). A frame known
by a name (a recording's frame) is drawn with its own generator, seeded by the seed and that name; a frame's draws
may also be made before it is decoded (`draw_ahead`) and handed back to `sample` with the frame. A new
configuration swaps in between two frames: one attribute assignment, read once per frame.

Example:
    >>> from framesift.collectors.config.schema import parse_config
    >>> config = parse_config({"enabled": True, "persist_predictions": False,
    ...     "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "daily"},
    ...     "sampling_strategies": [{"name": "all", "type": "random", "traffic_percentage": 1.0}]})
    >>> sampler = Sampler(config, environ={}, seed=0)
    >>> [strategy.name for strategy in sampler.sample(np.zeros((2, 2, 3), np.uint8), StubPrediction("m")).matched]
    ['all']
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from framesift.collectors.budgets.limits import Candidate
from framesift.collectors.config.schema import ActiveLearningConfig, StrategyConfig, active_learning_disabled_by_env
from framesift.collectors.sampling.strategies import Match, SourceStates, decided_without_image, matching_strategies
from framesift.frames import Drawn
from framesift.predictions import Prediction, StubPrediction


class LazyFrame(Protocol):
    """A frame that makes its BGR array on demand (the stream's `Frame`): converted on the collector's thread,
    only when the frame is sampled, never on the caller's."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    def bgr(self) -> np.ndarray: ...


FrameSource = np.ndarray | LazyFrame


@dataclass(frozen=True)
class Policy:
    """One configuration in force, with what sampling and the budgets derive from it."""

    config: ActiveLearningConfig
    enabled: bool
    strategies: tuple[StrategyConfig, ...]
    candidates: dict[str, Candidate]
    version: int | None = None  # the store's version, when the configuration came from a store
    sha: str | None = None

    @classmethod
    def of(cls, config: ActiveLearningConfig, environ: Mapping[str, str], version: int | None = None,
           sha: str | None = None) -> Policy:
        strategies = tuple(config.sampling_strategies)
        candidates = {s.name: Candidate(s.name, tuple((limit.window_seconds, limit.value) for limit in s.limits))
                      for s in strategies}
        return cls(config, config.enabled and not active_learning_disabled_by_env(environ), strategies, candidates,
                   version, sha)


@dataclass(frozen=True)
class Draw:
    """A frame's draws, made before it was decoded (`Collector.draw_ahead`), under the configuration then in
    force; `submit` uses them instead of drawing again. False when nothing was sampled. The stream carries it as a
    `framesift.frames.Drawn`: the thread that decodes knows no collector."""

    policy: Policy
    found: list[Match]

    def __bool__(self) -> bool:
        return bool(self.found)


STUB_PREDICTION = StubPrediction("draw-ahead")  # what a draw made before decoding evaluates the strategies on


@dataclass(frozen=True)
class Sampled:
    """A sampled frame, on its way from the caller's thread to the collector's (`framesift.collectors.registration`)."""

    frame: FrameSource
    nbytes: int
    prediction: Prediction
    matched: tuple[StrategyConfig, ...]
    source: str
    frame_id: int
    captured_at: datetime
    policy: Policy
    evidence: dict[str, dict[str, Any]]  # strategy name -> what made it match (`random`: nothing to say)
    extra: Mapping[str, Any] | None = None
    recorded: bool = False  # captured_at is on a recording's clock: budgets and the batch follow it
    still_ours: Callable[[], bool] | None = None  # a fleet's frame: written only while its box holds its recording


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Sampler:
    """The configuration in force and the draws made under it. `seed` makes every draw reproducible."""

    def __init__(self, config: ActiveLearningConfig, environ: Mapping[str, str], seed: int | None = None,
                 clock: Callable[[], datetime] = utc_now):
        self.environ = environ
        self.policy = Policy.of(config, environ)  # replaced whole by `reconfigure`: read once per frame
        self._states = SourceStates()  # what strategies keep per source (new_objects' trackers)
        self._rng = random.Random(seed)
        self._seed = random.getrandbits(64) if seed is None else seed  # a replayed frame's own generator's base
        self._rng_lock = threading.Lock()  # sources drawing ahead share the generator with `submit`
        self._clock = clock

    def reconfigure(self, config: ActiveLearningConfig, version: int | None = None,
                    sha: str | None = None) -> Policy:
        """Put `config` in force from the next frame on; returns its policy."""
        self.policy = Policy.of(config, self.environ, version, sha)
        return self.policy

    def sample(self, frame: FrameSource, prediction: Prediction, *, source: str = "source0", frame_id: int = 0,
               captured_at: datetime | None = None, extra: Mapping[str, Any] | None = None, recorded: bool = False,
               drawn: Drawn | None = None, known_as: str | None = None,
               still_ours: Callable[[], bool] | None = None) -> Sampled | None:
        """The frame with the strategies it matched, or None when none did (see `Collector.submit`)."""
        policy = self.policy  # read once: a new configuration swaps in between two datapoints
        if drawn is None and not policy.enabled:
            return None
        if drawn is not None:
            if not isinstance(drawn, Draw):
                raise TypeError(f"drawn is what Collector.draw_ahead returned, not a {type(drawn).__qualname__}")
            policy, found = drawn.policy, drawn.found
        elif known_as is not None:
            found = matching_strategies(policy.strategies, prediction, self._own_generator(known_as),
                                        self._states.of(source))
        else:
            with self._rng_lock:
                found = matching_strategies(policy.strategies, prediction, self._rng, self._states.of(source))
        if not found:
            return None
        matched = tuple(strategy for strategy, _ in found)
        nbytes = frame.nbytes if isinstance(frame, np.ndarray) else frame.width * frame.height * 3
        return Sampled(frame, nbytes, prediction, matched, source, frame_id, captured_at or self._clock(), policy,
                       {name: why for (strategy, why) in found if why for name in [strategy.name]}, extra,
                       recorded and captured_at is not None, still_ours)

    def draw_ahead(self, stub_model: bool, frame: str | None = None) -> Draw | None:
        """A frame's draws before it is decoded (see `Collector.draw_ahead`)."""
        policy = self.policy
        if not policy.enabled:
            return Draw(policy, [])
        if not decided_without_image(policy.strategies, stub_model):
            return None
        if frame is not None:
            return Draw(policy, matching_strategies(policy.strategies, STUB_PREDICTION, self._own_generator(frame)))
        with self._rng_lock:
            return Draw(policy, matching_strategies(policy.strategies, STUB_PREDICTION, self._rng))

    def _own_generator(self, frame: str) -> random.Random:
        """The generator of one frame's draws: seeded by the seed and what the frame is known by."""
        return random.Random(f"{self._seed}\0{frame}")
