"""The collector: the sampler on the caller's thread, everything slow on its own thread (SPEC §4, §9).

`submit(frame, prediction)` evaluates the strategies where it is called (microseconds) and hands a matching
datapoint to a bounded queue without ever waiting; when the queue is full (by count or by bytes) the datapoint
is dropped and counted. The collector's thread makes the atomic limit/batch decision, prepares the image and
registers the datapoint with the target. `close()` drains the queue within a timeout.

A new configuration (`reconfigure`, or a store the collector `follow`s) swaps in between two datapoints: one
attribute assignment, read once per `submit`, so no frame waits for it. A datapoint already queued is registered
under the configuration that sampled it (its record says which: `config_version`, `config_sha`), budgets of
strategies that kept their name carry over (the limiter keys them by dataset and strategy name), and the counters
of every strategy, old or new, stay in the snapshot.

If the collector's thread dies of an unexpected exception, the next `submit()` raises `WorkerFailed` (so a
pipeline ends loudly instead of streaming into a collector that no longer collects), and `close()` counts what was
still queued as dropped (`collector_failed`), closes the target and the limiter, and raises it too.

Example:
    >>> collector = Collector(load_config("configs/random.json"), LocalDataset("data"))  # doctest: +SKIP
    >>> collector.submit(frame_bgr, prediction, source="cam1", frame_id=7)                # doctest: +SKIP
    >>> collector.close()                                                                  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

from framesift.collectors.batches import batch_name
from framesift.collectors.budgets.limits import BatchCap, Candidate, Limiter, MemoryLimiter, Outcome
from framesift.collectors.config.follower import ConfigCache, ConfigFollower
from framesift.collectors.config.schema import (
    ActiveLearningConfig,
    NearDuplicates,
    StrategyConfig,
    active_learning_disabled_by_env,
)
from framesift.collectors.config.store import ConfigStore, StoredConfig
from framesift.collectors.images import prepare_image
from framesift.collectors.sampling import signatures
from framesift.collectors.sampling.near_duplicates import RecentSignatures
from framesift.collectors.sampling.strategies import Match, SourceStates, decided_without_image, matching_strategies
from framesift.collectors.tags import datapoint_tags
from framesift.collectors.targets import Target
from framesift.collectors.targets.datapoint import Datapoint, NotOurs, iso_utc
from framesift.collectors.targets.local import LocalDataset
from framesift.errors import OutboxFull, WorkerFailed
from framesift.predictions import ClassNames, Prediction, PredictionLike, StubPrediction, as_prediction
from framesift.redaction import redact
from framesift.resources import Resource
from framesift.stats import CollectorStats, StrategyStats
from framesift.workers import Worker

log = logging.getLogger(__name__)

LATEST_KEPT = 8  # registered datapoints a collector keeps a reference to, for the live page
FILL_EVERY_S = 1.0  # the limits' fill is read from the limiter at most this often


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
class _Policy:
    """One configuration in force, with what `submit` derives from it."""

    config: ActiveLearningConfig
    enabled: bool
    strategies: tuple[StrategyConfig, ...]
    candidates: dict[str, Candidate]
    version: int | None = None  # the store's version, when the configuration came from a store
    sha: str | None = None

    @classmethod
    def of(cls, config: ActiveLearningConfig, environ: Mapping[str, str], version: int | None = None,
           sha: str | None = None) -> _Policy:
        strategies = tuple(config.sampling_strategies)
        candidates = {s.name: Candidate(s.name, tuple((limit.window_seconds, limit.value) for limit in s.limits))
                      for s in strategies}
        return cls(config, config.enabled and not active_learning_disabled_by_env(environ), strategies, candidates,
                   version, sha)


@dataclass(frozen=True)
class Draw:
    """A frame's draws, made before it was decoded (`Collector.draw_ahead`), under the configuration then in
    force; `submit` uses them instead of drawing again. False when nothing was sampled."""

    policy: _Policy
    found: list[Match]

    def __bool__(self) -> bool:
        return bool(self.found)


STUB_PREDICTION = StubPrediction("draw-ahead")  # what a draw made before decoding evaluates the strategies on


@dataclass(frozen=True)
class _Pending:
    frame: FrameSource
    nbytes: int
    prediction: Prediction
    matched: tuple[StrategyConfig, ...]
    source: str
    frame_id: int
    captured_at: datetime
    policy: _Policy
    evidence: dict[str, dict[str, Any]]  # strategy name -> what made it match (`random`: nothing to say)
    extra: Mapping[str, Any] | None = None
    recorded: bool = False  # captured_at is on a recording's clock: budgets and the batch follow it
    still_ours: Callable[[], bool] | None = None  # a fleet's frame: written only while its box holds its recording


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Collector(Resource):
    """Samples datapoints and registers the accepted ones with a target. Owns (and closes) its target, and its
    limiter unless `owns_limiter` is false (a limit store shared by several collectors)."""

    def __init__(
        self,
        config: ActiveLearningConfig,
        target: Target,
        limiter: Limiter | None = None,
        *,
        seed: int | None = None,
        max_queue_items: int = 64,
        max_queue_bytes: int = 256 * 1024 * 1024,
        clock: Callable[[], datetime] = utc_now,
        environ: Mapping[str, str] = os.environ,
        owns_limiter: bool = True,
    ):
        self.target = target
        self.limiter = limiter or MemoryLimiter()
        self._owns_limiter = owns_limiter or limiter is None
        self._environ = environ
        self._policy = _Policy.of(config, environ)
        self._follower: ConfigFollower | None = None
        self._recent = RecentSignatures()  # the near-duplicate gate's memory, on the collector's thread
        self._states = SourceStates()  # what strategies keep per source (new_objects' trackers)
        self._rng = random.Random(seed)
        self._seed = random.getrandbits(64) if seed is None else seed  # a replayed frame's own generator's base
        self._rng_lock = threading.Lock()  # sources drawing ahead share the generator with `submit`
        self._clock = clock
        self._max_items = max_queue_items
        self._max_bytes = max_queue_bytes
        self._queue: deque[_Pending | Callable[[], None]] = deque()  # datapoints, and `when_written` callbacks
        self._queued = 0  # datapoints in the queue
        self._queued_bytes = 0
        self._closing = False
        self._closed = False
        self._cond = threading.Condition()
        self._stats = CollectorStats(strategies={s.name: StrategyStats() for s in self._policy.strategies})
        if isinstance(self.limiter, MemoryLimiter) and isinstance(target, LocalDataset):  # budgets without Redis
            self.limiter.resume(target.name, str(target.root.resolve()), target.admissions)
        self._latest: deque[Datapoint] = deque(maxlen=LATEST_KEPT)  # for the live page: references, no copy
        self._fill_lock = threading.Lock()
        self._fill: list[dict[str, Any]] = []
        self._fill_read_at = -FILL_EVERY_S
        self._decided_at: float | None = None  # the last decision's time on a recording's clock (None: now)
        self._thread = Worker("collector", self._run)
        self._thread.start()

    # -- the caller's side: cheap, never waits for I/O ------------------------------------------------------
    def submit(
        self,
        frame: FrameSource,
        prediction: PredictionLike,
        *,
        source: str = "source0",
        frame_id: int = 0,
        captured_at: datetime | None = None,
        extra: Mapping[str, Any] | None = None,
        recorded: bool = False,
        drawn: Draw | None = None,
        class_names: ClassNames | None = None,
        model_id: str = "",
        known_as: str | None = None,
        still_ours: Callable[[], bool] | None = None,
    ) -> bool:
        """Offer one datapoint. Returns True when it was sampled and queued, False otherwise. It never waits, but
        for a `recorded` frame when the queue is full: a replay waits for the collector as it waits for the model.

        `frame` is a BGR array, kept as it is (not copied: do not modify it afterwards), or a `LazyFrame`, whose
        `bgr()` is called on the collector's thread only when a strategy matches. A prediction given as JSON is kept
        as it is too; `supervision.Detections` and `Classifications` are converted (`as_prediction`), their classes
        named by their `data["class_name"]`, else by `class_names`, and recorded with `model_id`; anything else
        is a `TypeError`. `extra` goes into the record as it is (a crop says where it was cut from). `recorded` says
        that `captured_at` is when a replayed recording was made: the budgets and the batch go by it instead of the
        wall clock, so a recording replayed fast is sampled as it would have been live. `drawn` are the frame's
        draws made before it was decoded (`draw_ahead`): they are used instead of drawing again; else a frame
        `known_as` something (a recording's frame) is drawn with its own generator (`draw_ahead`). `still_ours`
        (a frame of a fleet's recording) is asked just before the datapoint is written: when false (the box lost
        its lease on the recording, another box replays it), the datapoint is dropped ("lease_lost"). Raises
        `WorkerFailed` when a thread of the collector has died (see `check`).
        """
        self.check()
        size = (frame.shape[1], frame.shape[0]) if isinstance(frame, np.ndarray) else (frame.width, frame.height)
        prediction = as_prediction(prediction, size, class_names=class_names, model_id=model_id)
        policy = self._policy  # read once: a new configuration swaps in between two datapoints
        if drawn is None and not policy.enabled:
            return False
        if drawn is not None:
            policy, found = drawn.policy, drawn.found
        elif known_as is not None:
            found = matching_strategies(policy.strategies, prediction, self._own_generator(known_as),
                                        self._states.of(source))
        else:
            with self._rng_lock:
                found = matching_strategies(policy.strategies, prediction, self._rng, self._states.of(source))
        if not found:
            return False
        matched = tuple(strategy for strategy, _ in found)
        nbytes = frame.nbytes if isinstance(frame, np.ndarray) else frame.width * frame.height * 3
        pending = _Pending(frame, nbytes, prediction, matched, source, frame_id, captured_at or self._clock(),
                           policy, {name: why for (strategy, why) in found if why for name in [strategy.name]},
                           extra, recorded and captured_at is not None, still_ours)
        with self._cond:
            self._stats.datapoints_sampled += 1
            for strategy in matched:
                self._stats.strategies[strategy.name].sampled += 1
            while pending.recorded and self._queue and self._full(nbytes) and not self._closing \
                    and self._thread.is_alive():
                self._cond.wait(0.5)  # a replay waits for the collector, as it waits for the model
            if self._closing:
                self._drop("closed")
                return False
            if self._full(nbytes):
                self._drop("queue_full")
                return False
            self._queue.append(pending)
            self._queued += 1
            self._queued_bytes += nbytes
            self._cond.notify_all()
        return True

    def when_written(self, callback: Callable[[], None]) -> None:
        """Call `callback` on the collector's thread once every datapoint submitted before has been written to
        the target (durably: a local dataset's record, a remote target's outbox) or refused; never when they are
        not (the collector closed first: a drain timeout, a thread that died)."""
        with self._cond:
            if not self._closing:
                self._queue.append(callback)
                self._cond.notify_all()

    def draw_ahead(self, stub_model: bool, frame: str | None = None) -> Draw | None:
        """A frame's draws, before it is decoded, as `submit` would make them on its prediction; None when the
        configuration in force decides from the image (then frames must be decoded and submitted). `stub_model`
        says the predictions will be the stub's. A `frame` named (a recording's identity and the frame's index
        there) is drawn with its own generator, seeded by the seed and that name: the same draws whichever box of
        a fleet replays it, and whatever was replayed before; else the collector's generator draws the next."""
        policy = self._policy
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

    def check(self) -> None:
        """Raise `WorkerFailed` when a thread of this collector has died: its own, the follower of its
        configuration, its target's (an outbox sender). A few attribute reads: cheap enough for every frame."""
        self._thread.check()
        if self._follower is not None:
            self._follower.check()
        self.target.check()

    def _full(self, nbytes: int) -> bool:
        return self._queued >= self._max_items or self._queued_bytes + nbytes > self._max_bytes

    @property
    def config(self) -> ActiveLearningConfig:
        """The configuration in force."""
        return self._policy.config

    @property
    def enabled(self) -> bool:
        return self._policy.enabled

    def reconfigure(self, config: ActiveLearningConfig, version: int | None = None, sha: str | None = None) -> None:
        """Put `config` in force from the next datapoint on (what is queued keeps the configuration that sampled
        it); `version` and `sha` say where it came from, in the records and the statistics."""
        policy = _Policy.of(config, self._environ, version, sha)
        with self._cond:
            for strategy in policy.strategies:
                self._stats.strategies.setdefault(strategy.name, StrategyStats())
            self._policy = policy

    def follow(self, store: ConfigStore, first: StoredConfig, *, poll: float = 1.0,
               cache: ConfigCache | None = None) -> None:
        """Put `first` in force and follow the dataset's configuration in `store` from now on (a thread checks it
        every `poll` seconds, and at once when the store announces a change); closed with the collector."""
        self.reconfigure(first.config, first.version, first.sha)
        self._follower = ConfigFollower(store, self.target.name, first, self._reconfigured, poll=poll, cache=cache)
        self._follower.start()

    def _reconfigured(self, stored: StoredConfig) -> None:
        self.reconfigure(stored.config, stored.version, stored.sha)

    def snapshot(self) -> CollectorStats:
        """A copy of the counters, with the queue depth, the limit store's health and a remote target's outbox."""
        with self._cond:
            stats = dataclasses.replace(
                self._stats, queue_depth=self._queued, dropped_by_reason=dict(self._stats.dropped_by_reason),
                strategies={name: dataclasses.replace(c) for name, c in self._stats.strategies.items()})
        health = self.limiter.health()
        stats.limit_store_available = health.available
        stats.limit_store_unavailable_decisions = health.unavailable_decisions
        stats.limit_store_error = health.last_error
        stats.target = self.target.stats()
        stats.config_version, stats.config_sha = self._policy.version, self._policy.sha
        stats.limits = self._limit_fill()
        stats.rejected_by_reason = {"limits": stats.datapoints_rejected_by_limits,
                                    "batch_cap": stats.datapoints_rejected_by_batch_cap,
                                    "store_unavailable": stats.datapoints_rejected_store_unavailable,
                                    "near_duplicate": stats.datapoints_rejected_near_duplicate}
        if self._follower is not None:
            stats.config_reloads, stats.config_reloads_refused, stats.config_store_error = self._follower.counts()
        return stats

    def _limit_fill(self) -> list[dict[str, Any]]:
        """Each limit's fill, read from the limiter at most once a second (a snapshot may be taken more often), at
        the time of the last decision on a recording's clock, else now."""
        with self._fill_lock:
            now = time.monotonic()
            if now - self._fill_read_at >= FILL_EVERY_S:
                self._fill_read_at, policy = now, self._policy
                candidates = [policy.candidates[s.name] for s in policy.strategies if s.limits]
                try:
                    self._fill = [dataclasses.asdict(f) for f in self.limiter.fill(self.target.name, candidates,
                                                                                   self._decided_at)]
                except Exception as error:  # a store that fails here fails the next decision too, which counts it
                    log.debug("cannot read the limits' fill: %s", error)
            return list(self._fill)

    def latest(self) -> list[Datapoint]:
        """The datapoints registered last, oldest first (at most `LATEST_KEPT`): what the live page shows."""
        with self._cond:
            return list(self._latest)

    def close(self, timeout: float = 10.0) -> None:
        """Stop accepting, write what is queued within `timeout` seconds, drop (and count) the rest; a remote target
        gets what is left of the time to deliver its outbox (what it cannot stays there for the next run). Closing
        again does nothing. Raises `WorkerFailed` (after closing the target and the limiter) when the collector's
        thread, its follower or its target's thread had died."""
        if self._closed:
            return
        self._closed = True
        if self._follower is not None:
            self._follower.close()
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive() or self._thread.error is not None:
            reason = "drain_timeout" if self._thread.is_alive() else "collector_failed"
            with self._cond:
                for _ in range(self._queued):
                    self._drop(reason)
                self._queue.clear()  # with the callbacks of `when_written`: what they wait for was not written
                self._queued = self._queued_bytes = 0
            self._thread.join(5.0)  # the datapoint being written when time ran out
        if self._thread.is_alive():
            log.error("the collector is still writing a datapoint after the drain timeout; leaving it")
            return
        try:
            self.target.close(max(0.0, deadline - time.monotonic()))
        finally:
            if self._owns_limiter:
                self.limiter.close()
        self.check()

    def _drop(self, reason: str) -> None:
        self._stats.datapoints_dropped += 1
        self._stats.dropped_by_reason[reason] = self._stats.dropped_by_reason.get(reason, 0) + 1

    # -- the collector's thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                pending = self._queue.popleft()
                if isinstance(pending, _Pending):
                    self._queued -= 1
                    self._queued_bytes -= pending.nbytes
                    self._cond.notify_all()  # a replay waiting for room
            if not isinstance(pending, _Pending):
                pending()  # every datapoint submitted before it was written
                continue
            if pending.still_ours is not None and not pending.still_ours():
                with self._cond:
                    self._drop("lease_lost")  # another box of the fleet replays its recording now
                continue
            try:
                self._register(pending)
            except NotOurs:  # lost while it was written: nothing of it was left behind
                with self._cond:
                    self._drop("lease_lost")
            except OutboxFull:  # a remote target's outbox is at its bound: refused, counted, the stream goes on
                with self._cond:
                    self._drop("outbox_full")
            except WorkerFailed:  # the outbox's sender died: nothing would deliver what we register
                with self._cond:
                    self._drop("collector_failed")
                raise
            except Exception as error:  # a full disk, a broken frame: count it, keep going
                with self._cond:
                    self._stats.datapoints_failed += 1
                    self._stats.last_failure = str(error)
                    failed = self._stats.datapoints_failed
                if failed <= 10 or failed % 100 == 0:  # a full disk fails every datapoint: do not flood the log
                    log.error("could not register a datapoint from %s frame %d (%d failed so far): %s",
                              _redacted(pending.source), pending.frame_id, failed, error)

    def _register(self, pending: _Pending) -> None:
        policy = pending.policy
        gate, signed, matched = policy.config.near_duplicates, None, pending.matched
        if gate is not None:
            signed, matched = self._near_duplicate(pending, gate)
            if not matched:
                return
        settings = policy.config.batching_strategy
        assert settings is not None  # enabled configurations always have one
        at = pending.captured_at if pending.recorded else self._clock()
        batch = batch_name(settings.batches_name_prefix, settings.recreation_interval, at)
        cap = BatchCap(batch, settings.max_batch_images, self.target.batch_count(batch))
        self._decided_at = at.timestamp() if pending.recorded else None
        decision = self.limiter.decide(self.target.name, [policy.candidates[s.name] for s in matched], cap,
                                       self._decided_at)
        if not decision.accepted:
            with self._cond:
                if decision.outcome is Outcome.BATCH_FULL:
                    self._stats.datapoints_rejected_by_batch_cap += 1
                elif decision.outcome is Outcome.STORE_UNAVAILABLE:
                    self._stats.datapoints_rejected_store_unavailable += 1
                else:
                    self._stats.datapoints_rejected_by_limits += 1
            return
        assert decision.strategy is not None  # an accepted decision names its strategy
        datapoint = self._datapoint(pending, batch, decision.strategy, signed, None if pending.recorded else at)
        self.target.register(datapoint)
        if gate is not None and signed is not None:
            self._recent.remember(pending.source, int(signed["signature"], 16), pending.captured_at.timestamp(),
                                  gate.memory)
        with self._cond:
            self._latest.append(datapoint)
            self._stats.datapoints_registered += 1
            self._stats.strategies[decision.strategy].registered += 1
            if policy.version is not None:
                version = str(policy.version)
                self._stats.registered_by_config_version[version] = \
                    self._stats.registered_by_config_version.get(version, 0) + 1

    def _near_duplicate(self, pending: _Pending,
                        gate: NearDuplicates) -> tuple[dict[str, Any], tuple[StrategyConfig, ...]]:
        """The frame's signature and the distance to the nearest one collected lately from its source (for its
        record), and the matched strategies that may still collect it: all when it is no near-duplicate, else only
        those that `passes_near_duplicates` (`new_objects`: a new track is itself the proof that it is no copy, a
        car entering a wide view changes few bits). The others are counted as rejected; the datapoint too when none
        is left."""
        signature = signatures.signature(pending.frame)
        nearest = self._recent.nearest(pending.source, signature, pending.captured_at.timestamp(),
                                       gate.within_s)
        signed = {"signature": f"{signature:016x}", "nearest_distance": nearest}
        if nearest is None or nearest > gate.max_distance:
            return signed, pending.matched
        kept = tuple(s for s in pending.matched if s.passes_near_duplicates)
        with self._cond:
            self._stats.datapoints_rejected_near_duplicate += not kept
            for strategy in pending.matched:
                if strategy not in kept:
                    self._stats.strategies[strategy.name].rejected_near_duplicate += 1
        return signed, kept

    def _datapoint(self, pending: _Pending, batch: str, strategy_name: str, signed: dict[str, Any] | None = None,
                   admitted_at: datetime | None = None) -> Datapoint:
        strategy = next(s for s in pending.matched if s.name == strategy_name)
        prediction = pending.prediction
        config = pending.policy.config
        persisted = config.persist_predictions and not isinstance(prediction, StubPrediction)
        frame = pending.frame if isinstance(pending.frame, np.ndarray) else pending.frame.bgr()
        image = prepare_image(frame, config.max_image_size, config.jpeg_compression_level)
        height, width = frame.shape[:2]
        extra = {**{k: getattr(config, k) for k in ("target_workspace", "target_project")
                    if getattr(config, k) is not None}, **(pending.extra or {})}
        if pending.policy.version is not None:
            extra.update(config_version=pending.policy.version, config_sha=pending.policy.sha)
        if signed is not None:
            extra["near_duplicates"] = signed
        if strategy.name in pending.evidence:
            extra["selected_because"] = pending.evidence[strategy.name]
        if admitted_at is not None:  # a live frame's: when the budgets admitted it (a recording's: captured_at)
            extra["admitted_at"] = iso_utc(admitted_at)
        return Datapoint(
            id=uuid.uuid4().hex,
            batch=batch,
            jpeg=image.jpeg,
            width=image.width,
            height=image.height,
            original_width=width,
            original_height=height,
            prediction=prediction.to_json(image.scale_x, image.scale_y) if persisted else None,
            tags=datapoint_tags(config.tags, strategy.tags, prediction.model_id if persisted else None,
                                self._environ),
            strategy=strategy.name,
            source=_redacted(pending.source),
            frame_id=pending.frame_id,
            captured_at=pending.captured_at,
            model_id=prediction.model_id,
            task_type=prediction.task_type,
            extra=extra or None,
            still_ours=pending.still_ours,
        )


@lru_cache(maxsize=256)
def _redacted(source: str) -> str:
    return redact(source)
