"""The collector: the sampler on the caller's thread, everything slow on its own thread (SPEC §4, §9).

`submit(frame, prediction)` evaluates the strategies where it is called (microseconds) and hands a matching
datapoint to a bounded queue without ever waiting; when the queue is full (by count or by bytes) the datapoint
is dropped and counted. The collector's thread makes the atomic limit/batch decision, prepares the image and
registers the datapoint with the target. `close()` drains the queue within a timeout.

The roles: `framesift.collectors.sampler` samples (the policy, the draws, the strategies' per-source state) on
the caller's thread; `framesift.collectors.registration` gates near-duplicates, names the batch, decides the
budgets and builds the datapoint on the collector's thread; the collector holds the queue between them, the
thread, and the counters.

Making a collector starts nothing: `start()` starts its thread and its target's (a remote target's outbox sender),
and so does entering it (`with`), a pipeline or workflow that owns it when it starts, and its first `submit` or
`when_written`, so a collector used without `with` still collects.

A new configuration (`reconfigure`, or a store the collector `follow`s) swaps in between two datapoints: one
attribute assignment, read once per `submit`, so no frame waits for it. A datapoint already queued is registered
under the configuration that sampled it (its record says which: `config_version`, `config_sha`), budgets of
strategies that kept their name carry over (the limiter keys them by dataset and strategy name), and the counters
of every strategy, old or new, stay in the snapshot.

If the collector's thread dies of an unexpected exception, the next `submit()` raises `WorkerFailed` (so a
pipeline ends loudly instead of streaming into a collector that no longer collects), and `close()` counts what was
still queued as dropped (`collector_failed`), closes the target and the limiter, and raises it too.

Example:
    >>> with Collector(load_config("configs/random.json"), LocalDataset("data")) as collector:  # doctest: +SKIP
    ...     collector.submit(frame_bgr, prediction, source="cam1", frame_id=7)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import numpy as np

from framesift.collectors.budgets.limits import Limiter, MemoryLimiter
from framesift.collectors.config.follower import ConfigCache, ConfigFollower
from framesift.collectors.config.schema import ActiveLearningConfig
from framesift.collectors.config.store import ConfigStore, StoredConfig
from framesift.collectors.registration import Registration, redacted_source
from framesift.collectors.sampler import Draw, FrameSource, LazyFrame, Sampled, Sampler, utc_now
from framesift.collectors.targets import Target
from framesift.collectors.targets.datapoint import Datapoint, NotOurs
from framesift.errors import OutboxFull, WorkerFailed
from framesift.frames import Drawn
from framesift.predictions import ClassNames, PredictionLike, as_prediction
from framesift.resources import Service
from framesift.stats import CollectorStats, StrategyStats
from framesift.workers import Worker

log = logging.getLogger(__name__)

__all__ = ["Collector", "Draw", "FrameSource", "LazyFrame"]


class Collector(Service):
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
        self._sampler = Sampler(config, environ, seed, clock)
        self._follower: ConfigFollower | None = None
        self._max_items = max_queue_items
        self._max_bytes = max_queue_bytes
        self._queue: deque[Sampled | Callable[[], None]] = deque()  # datapoints, and `when_written` callbacks
        self._queued = 0  # datapoints in the queue
        self._queued_bytes = 0
        self._closing = False
        self._closed = False
        self._cond = threading.Condition()
        policy = self._sampler.policy
        self._stats = CollectorStats(strategies={s.name: StrategyStats() for s in policy.strategies})
        self._registration = Registration(target, self.limiter, self._stats, self._cond, clock, environ)
        self._thread = Worker("collector", self._run)  # started by `start`

    def start(self) -> None:
        """Start the collector's thread and its target's; idempotent. Entering the collector (`with`) calls it, and
        so do its first `submit` and `when_written`. After `close()` it does nothing."""
        if self._closing:
            return
        if isinstance(self.target, Service):  # a remote target: its outbox's sender
            self.target.start()
        self._thread.start_once()

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
        drawn: Drawn | None = None,
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
        if not self._thread.started:
            self.start()  # made without `with`: the first datapoint starts the thread that writes it
        size = (frame.shape[1], frame.shape[0]) if isinstance(frame, np.ndarray) else (frame.width, frame.height)
        prediction = as_prediction(prediction, size, class_names=class_names, model_id=model_id)
        pending = self._sampler.sample(frame, prediction, source=source, frame_id=frame_id, captured_at=captured_at,
                                       extra=extra, recorded=recorded, drawn=drawn, known_as=known_as,
                                       still_ours=still_ours)
        if pending is None:
            return False
        matched, nbytes = pending.matched, pending.nbytes
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
        self.start()
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
        return self._sampler.draw_ahead(stub_model, frame)

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
        return self._sampler.policy.config

    @property
    def enabled(self) -> bool:
        return self._sampler.policy.enabled

    def reconfigure(self, config: ActiveLearningConfig, version: int | None = None, sha: str | None = None) -> None:
        """Put `config` in force from the next datapoint on (what is queued keeps the configuration that sampled
        it); `version` and `sha` say where it came from, in the records and the statistics."""
        with self._cond:
            policy = self._sampler.reconfigure(config, version, sha)
            for strategy in policy.strategies:
                self._stats.strategies.setdefault(strategy.name, StrategyStats())

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
        policy = self._sampler.policy
        stats.config_version, stats.config_sha = policy.version, policy.sha
        stats.limits = self._registration.limit_fill(policy)
        stats.rejected_by_reason = {"limits": stats.datapoints_rejected_by_limits,
                                    "batch_cap": stats.datapoints_rejected_by_batch_cap,
                                    "store_unavailable": stats.datapoints_rejected_store_unavailable,
                                    "near_duplicate": stats.datapoints_rejected_near_duplicate}
        if self._follower is not None:
            stats.config_reloads, stats.config_reloads_refused, stats.config_store_error = self._follower.counts()
        return stats

    def latest(self) -> list[Datapoint]:
        """The datapoints registered last, oldest first (at most `LATEST_KEPT`): what the live page shows."""
        return self._registration.latest()

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
        if self._thread.started:
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
                if isinstance(pending, Sampled):
                    self._queued -= 1
                    self._queued_bytes -= pending.nbytes
                    self._cond.notify_all()  # a replay waiting for room
            if not isinstance(pending, Sampled):
                pending()  # every datapoint submitted before it was written
                continue
            if pending.still_ours is not None and not pending.still_ours():
                with self._cond:
                    self._drop("lease_lost")  # another box of the fleet replays its recording now
                continue
            try:
                self._registration.register(pending)
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
                              redacted_source(pending.source), pending.frame_id, failed, error)
