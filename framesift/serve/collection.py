"""Active learning on every request: one collector per dataset, opened on the first request for it, each following
its dataset's configuration in the store (`--al-config`) as `framesift run` follows it, all sharing one limit store
(`--redis`: budgets shared with every `run` and `serve` on that Redis).

A request's dataset is its `active_learning_target_dataset`, else its model id's project (`people` for
`people/3`; a bare id such as `yolov8n-640` is its own). A dataset without a configuration in the store collects
nothing (counted, and asked again after `retry` seconds). At most `max_datasets` collectors are open; requests
for more datasets are counted and not collected.

Registration never delays an answer: `offer` is called after the answer was sent; a collector's `submit` only
evaluates the strategies and queues (bounded; a full queue drops and counts).

Example:
    >>> collection = Collection(open_store("redis://127.0.0.1:6379/0"), target="datasets")  # doctest: +SKIP
    >>> collection.offer("people", frame, prediction, labels=Labels.of(model))             # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from framesift.collectors import Collector, open_limiter
from framesift.collectors.budgets.limits import Limiter
from framesift.collectors.config.follower import ConfigCache, first_configuration, poll_interval
from framesift.collectors.config.store import ConfigStore
from framesift.collectors.targets import Labels, TargetSpec
from framesift.collectors.targets.schemes import remote_forms
from framesift.defaults import OUTBOX, OUTBOX_MAX_BYTES, TARGET
from framesift.errors import InputError, TargetError, WorkerFailed
from framesift.predictions import Prediction
from framesift.resources import Resource
from framesift.stats import CollectorStats

log = logging.getLogger(__name__)


def dataset_of(model_id: str, requested: str | None) -> str:
    """The dataset a request's datapoints go to: the one it names, else its model's project.

    >>> dataset_of("people/3", None), dataset_of("people/3", "night-shift"), dataset_of("yolov8n-640", None)
    ('people', 'night-shift', 'yolov8n-640')
    """
    return requested or model_id.partition("/")[0]


class Collection(Resource):
    """The collectors of every dataset requests name; `offer` never waits for I/O but the first time a dataset is
    seen (its configuration read, its target opened), which happens after that request was answered."""

    def __init__(self, store: ConfigStore, *, target: str = TARGET, api_key: str | None = None,
                 outbox: str | os.PathLike[str] = OUTBOX, outbox_max_bytes: int = OUTBOX_MAX_BYTES,
                 redis: str | None = None, redis_fallback: str = "pause", seed: int | None = None,
                 cache: ConfigCache | None = None, refresh: float = 60.0, max_datasets: int = 64,
                 retry: float = 30.0, busy: Callable[[], set[str]] = set):
        self.target = TargetSpec.parse(target)
        try:
            self.target.for_dataset("probe")
        except TargetError:
            raise TargetError(f"framesift serve's --target is a folder of datasets, {remote_forms()} (each request's "
                              f"dataset is its own), not {target!r}") from None
        self.store, self.cache, self.api_key = store, cache, api_key
        self.outbox, self.outbox_max_bytes, self.seed, self.refresh = outbox, outbox_max_bytes, seed, refresh
        self.max_datasets, self.retry = max_datasets, retry
        self.busy = busy  # the datasets other writers of this server hold (workflows): not collected here
        self.limiter: Limiter = open_limiter(redis, redis_fallback)
        self.uncollected: Counter[str] = Counter()  # requests not offered to a collector, by reason
        self._collectors: dict[str, Collector] = {}
        self._unconfigured: dict[str, float] = {}  # dataset -> when its configuration was last looked for
        self._frames = 0
        self.failure: WorkerFailed | None = None
        self._lock = threading.Lock()
        self._closed = False

    def open(self, dataset: str) -> None:
        """Open `dataset`'s collector now rather than at its first request: a remote target's outbox left by an
        earlier run is delivered at once."""
        self._collector(dataset, None)

    def offer(self, dataset: str, frame: np.ndarray, prediction: Prediction, *, labels: Labels,
              source: str, extra: dict[str, Any]) -> None:
        """Offer one request's image and prediction to its dataset's collector."""
        collector = self._collector(dataset, labels)
        if collector is None:
            return
        with self._lock:
            self._frames += 1
            frame_id = self._frames
        try:
            collector.submit(frame, prediction, source=source, frame_id=frame_id, extra=extra)
        except WorkerFailed as error:  # its thread died: the server ends (`check`), loudly
            self.failure = error

    def check(self) -> None:
        """Raise the `WorkerFailed` of a collector whose thread died."""
        if self.failure is not None:
            raise self.failure

    def _collector(self, dataset: str, labels: Labels | None) -> Collector | None:
        with self._lock:
            if self._closed:
                self.uncollected["stopping"] += 1
                return None
            collector = self._collectors.get(dataset)
            if collector is not None:
                return collector
            looked = self._unconfigured.get(dataset)
            if looked is not None and time.monotonic() - looked < self.retry:
                self.uncollected["not_opened"] += 1
                return None
            if dataset in self.busy():
                self.uncollected["written_by_a_workflow"] += 1
                return None
            if len(self._collectors) >= self.max_datasets:
                self.uncollected["too_many_datasets"] += 1
                return None
            try:
                collector = self._open(dataset, labels)
            except InputError as error:  # not stored, invalid, or a store out of reach with nothing cached
                if len(self._unconfigured) >= 4 * self.max_datasets:
                    self._unconfigured.clear()
                self._unconfigured[dataset] = time.monotonic()
                self.uncollected["not_opened"] += 1
                log.warning("requests for dataset %r are not collected: %s", dataset, error)
                return None
            self._unconfigured.pop(dataset, None)
            self._collectors[dataset] = collector
            return collector

    def _open(self, dataset: str, labels: Labels | None) -> Collector:
        first = first_configuration(self.store, dataset, self.cache)
        spec = self.target.for_dataset(dataset)
        key = spec.configured_key(first.config.target_dataset_api_key)
        target = spec.open(api_key=key.get_secret_value() if key else self.api_key, outbox=self.outbox,
                           outbox_max_bytes=self.outbox_max_bytes, labels=labels)
        seed = None if self.seed is None else self.seed + len(self._collectors)
        collector = Collector(first.config, target, self.limiter, seed=seed, owns_limiter=False)
        collector.start()
        collector.follow(self.store, first, poll=poll_interval(self.store, self.refresh), cache=self.cache)
        log.info("collecting requests for dataset %r into %s", dataset, spec)
        return collector

    def datasets(self) -> set[str]:
        """The datasets whose collectors are open."""
        with self._lock:
            return set(self._collectors)

    def snapshot(self) -> dict[str, CollectorStats]:
        with self._lock:
            collectors = dict(self._collectors)
        return {dataset: collector.snapshot() for dataset, collector in collectors.items()}

    def close(self, timeout: float = 10.0) -> None:
        """Write what the collectors hold queued (within `timeout` seconds in all), then close them, the limit store
        and the configuration store (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            collectors = list(self._collectors.values())
        deadline = time.monotonic() + timeout
        try:
            for collector in collectors:
                collector.close(max(0.0, deadline - time.monotonic()))
        finally:
            self.limiter.close()
            self.store.close()
