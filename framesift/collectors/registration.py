"""The collector's registration, on its own thread: a sampled frame (`framesift.collectors.sampler.Sampled`) goes
through the near-duplicate gate, gets its batch, the budgets decide on it (one atomic decision of the limiter, with
the batch's cap), and an accepted one becomes a datapoint (its image prepared, its record's fields filled in) that
the target registers.

What it decides is counted in the collector's statistics, under the collector's lock; the datapoints registered
last are kept (references, no copy) for the live page.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np

from framesift.collectors.batches import batch_name
from framesift.collectors.budgets.limits import BatchCap, Limiter, MemoryLimiter, Outcome
from framesift.collectors.config.schema import NearDuplicates, StrategyConfig
from framesift.collectors.images import prepare_image
from framesift.collectors.sampler import Policy, Sampled
from framesift.collectors.sampling import signatures
from framesift.collectors.sampling.near_duplicates import RecentSignatures
from framesift.collectors.tags import datapoint_tags
from framesift.collectors.targets import Target
from framesift.collectors.targets.datapoint import Datapoint, iso_utc
from framesift.collectors.targets.local import LocalDataset
from framesift.predictions import StubPrediction
from framesift.redaction import redact
from framesift.stats import CollectorStats

log = logging.getLogger(__name__)

LATEST_KEPT = 8  # registered datapoints a collector keeps a reference to, for the live page
FILL_EVERY_S = 1.0  # the limits' fill is read from the limiter at most this often


class Registration:
    """Registers sampled frames with `target` under the budgets of `limiter`, counting in `stats` under `lock`."""

    def __init__(self, target: Target, limiter: Limiter, stats: CollectorStats, lock: threading.Condition,
                 clock: Callable[[], datetime], environ: Mapping[str, str]):
        self.target, self.limiter = target, limiter
        self._stats, self._lock = stats, lock
        self._clock, self._environ = clock, environ
        self._recent = RecentSignatures()  # the near-duplicate gate's memory
        self._latest: deque[Datapoint] = deque(maxlen=LATEST_KEPT)  # for the live page: references, no copy
        self._fill_lock = threading.Lock()
        self._fill: list[dict[str, Any]] = []
        self._fill_read_at = -FILL_EVERY_S
        self._decided_at: float | None = None  # the last decision's time on a recording's clock (None: now)
        if isinstance(limiter, MemoryLimiter) and isinstance(target, LocalDataset):  # budgets without Redis
            limiter.resume(target.name, str(target.root.resolve()), target.admissions)

    def register(self, pending: Sampled) -> None:
        """Gate, batch, decide, and register `pending` when its budgets accept it. Raises what the target raises."""
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
            with self._lock:
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
        with self._lock:
            self._latest.append(datapoint)
            self._stats.datapoints_registered += 1
            self._stats.strategies[decision.strategy].registered += 1
            if policy.version is not None:
                version = str(policy.version)
                self._stats.registered_by_config_version[version] = \
                    self._stats.registered_by_config_version.get(version, 0) + 1

    def latest(self) -> list[Datapoint]:
        """The datapoints registered last, oldest first (at most `LATEST_KEPT`)."""
        with self._lock:
            return list(self._latest)

    def limit_fill(self, policy: Policy) -> list[dict[str, Any]]:
        """Each limit of `policy`'s strategies' fill, read from the limiter at most once a second (a snapshot may
        be taken more often), at the time of the last decision on a recording's clock, else now."""
        with self._fill_lock:
            now = time.monotonic()
            if now - self._fill_read_at >= FILL_EVERY_S:
                self._fill_read_at = now
                candidates = [policy.candidates[s.name] for s in policy.strategies if s.limits]
                try:
                    self._fill = [dataclasses.asdict(f) for f in self.limiter.fill(self.target.name, candidates,
                                                                                   self._decided_at)]
                except Exception as error:  # a store that fails here fails the next decision too, which counts it
                    log.debug("cannot read the limits' fill: %s", error)
            return list(self._fill)

    def _near_duplicate(self, pending: Sampled,
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
        with self._lock:
            self._stats.datapoints_rejected_near_duplicate += not kept
            for strategy in pending.matched:
                if strategy not in kept:
                    self._stats.strategies[strategy.name].rejected_near_duplicate += 1
        return signed, kept

    def _datapoint(self, pending: Sampled, batch: str, strategy_name: str, signed: dict[str, Any] | None = None,
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
            source=redacted_source(pending.source),
            frame_id=pending.frame_id,
            captured_at=pending.captured_at,
            model_id=prediction.model_id,
            task_type=prediction.task_type,
            extra=extra or None,
            still_ours=pending.still_ours,
        )


@lru_cache(maxsize=256)
def redacted_source(source: str) -> str:
    """A source's name as records and logs show it: any secret in it redacted (cached: one per frame)."""
    return redact(source)
