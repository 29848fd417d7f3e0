"""Following a dataset's configuration in a store while running, and the last one known, cached for a start
without the store.

A `ConfigFollower` thread checks the store every `poll` seconds, and at once when the store announces a change (a
Redis message; a file's new size, time or inode, edited in place or replaced by a rename). A new version is handed
to `apply` (the collector swaps it in between two datapoints) and cached. A configuration found invalid in the
store (written there by hand, or a current version that is no number) is kept out, logged, counted; an unreachable
store (or one refusing the credentials) is logged once per outage and counted; either way the configuration in force
stays. A follower that dies of anything else ends the run: its collector's `check` raises its failure.

Example:
    >>> collector.follow(open_store("redis://10.0.0.2:6379/0"), first, poll=1.0)   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from framesift.collectors.config.store import (
    ConfigStore,
    FileStore,
    NotStored,
    RoboflowStore,
    StoredConfig,
    StoreRefused,
    StoreUnavailable,
)
from framesift.documents import parse_document
from framesift.errors import ConfigError, InputError
from framesift.resources import Resource
from framesift.workers import Worker

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "framesift" / "configs"
WAIT_SLICE_S = 0.5  # how long one wait for a change lasts at most: a close never waits longer


class ConfigCache:
    """The last configuration known of each (store, dataset), one JSON file each, written atomically."""

    def __init__(self, folder: str | os.PathLike[str] = DEFAULT_CACHE):
        self.folder = Path(folder)

    def save(self, store: str, stored: StoredConfig) -> None:
        from framesift.durable import write_atomically

        body = {"store": store, "dataset": stored.dataset, "version": stored.version, "sha": stored.sha,
                "config": stored.data, "set_at": stored.set_at}
        try:
            write_atomically(self._path(store, stored.dataset), json.dumps(body).encode())
        except OSError as error:  # a cache that cannot be written costs a start without the store, nothing else
            log.warning("could not cache the configuration of %r in %s: %s", stored.dataset, self.folder, error)

    def load(self, store: str, dataset: str) -> StoredConfig | None:
        try:
            path = self._path(store, dataset)
            body = parse_document(path.read_text(), str(path), json_only=True)
            return StoredConfig.of(dataset, int(body["version"]), body["config"], body.get("set_at"))
        except (OSError, ValueError, KeyError, TypeError, ConfigError):
            return None

    def _path(self, store: str, dataset: str) -> Path:
        key = hashlib.sha256(f"{store}\0{dataset}".encode()).hexdigest()[:24]
        return self.folder / f"{key}.json"


def first_configuration(store: ConfigStore, dataset: str, cache: ConfigCache | None) -> StoredConfig:
    """The configuration to start with: the store's; when the store cannot be reached, the last one cached here
    (said in a warning), else `InputError` in one sentence. Invalid in the store, or not there: `ConfigError`,
    `NotStored`; credentials it refuses: `StoreRefused` (a wrong password is no outage: the cache is not used)."""
    try:
        stored = store.get(dataset)
    except StoreUnavailable as error:
        cached = None if cache is None else cache.load(store.name, dataset)
        if cached is None:
            raise InputError(f"{error}, and no configuration of {dataset!r} is cached here from an earlier "
                             "run") from None
        log.warning("%s: starting with the configuration of %r cached from an earlier run (version %d, %s)",
                    error, dataset, cached.version, cached.sha)
        return cached
    if cache is not None:
        cache.save(store.name, stored)
    return stored


def poll_interval(store: ConfigStore, refresh: float) -> float:
    """How often a follower reads the store: a file and Redis announce changes (this is only their fallback), the
    Roboflow API does not (`refresh`, 60 s by default)."""
    if isinstance(store, RoboflowStore):
        return refresh
    return 2.0 if isinstance(store, FileStore) else 1.0


class ConfigFollower(Worker, Resource):
    """Follows `dataset` in `store` from `current` on, calling `apply(stored)` for each new version."""

    def __init__(self, store: ConfigStore, dataset: str, current: StoredConfig,
                 apply: Callable[[StoredConfig], None], *, poll: float = 1.0, cache: ConfigCache | None = None):
        super().__init__(f"configuration {dataset}")
        self.store, self.dataset, self.current = store, dataset, current
        self._apply, self._poll, self._cache = apply, poll, cache
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.reloads = self.refused = 0
        self.last_error: str | None = None
        self._refusal: str | None = None  # what was refused last (counted once until the store changes again)
        self._down = False

    def work(self) -> None:
        next_check = time.monotonic() + self._poll
        while not self._stopping.is_set():
            notified = self.store.wait(self.dataset, min(WAIT_SLICE_S, max(0.0, next_check - time.monotonic())))
            if self._stopping.is_set():
                return
            if notified or time.monotonic() >= next_check:
                self.read()
                next_check = time.monotonic() + self._poll

    def read(self) -> None:
        """Read the store once: put a new version in force, or keep the one in force and say why."""
        try:
            stored = self.store.get(self.dataset)
        except (StoreUnavailable, StoreRefused) as error:  # credentials changed while running: an outage too
            self._failed(str(error), outage=True)
            return
        except (ConfigError, NotStored) as error:
            self._failed(f"kept out of {self.store.name}: {error}".replace("\n", " "), outage=False)
            return
        if self._down:
            log.warning("the configuration store %s is available again", self.store.name)
            self._down = False
        if (stored.version, stored.sha) == (self.current.version, self.current.sha):
            return
        self._apply(stored)
        with self._lock:
            self.current, self.reloads, self._refusal = stored, self.reloads + 1, None
        log.info("configuration %d (%s) of %r is in force", stored.version, stored.sha, self.dataset)
        if self._cache is not None:
            self._cache.save(self.store.name, stored)

    def _failed(self, reason: str, outage: bool) -> None:
        with self._lock:
            self.last_error = reason
            if outage:
                first, self._down = not self._down, True
            else:
                first = reason != self._refusal
                self.refused += first
                self._refusal = reason
        if first:
            log.warning("%s; configuration %s (%s) of %r stays in force", reason, self.current.version,
                        self.current.sha, self.dataset)

    def counts(self) -> tuple[int, int, str | None]:
        """Reloads, refused reloads, and the last error (an unreachable store, a refused configuration)."""
        with self._lock:
            return self.reloads, self.refused, self.last_error

    def close(self) -> None:
        """Stop following (within half a second); idempotent. The store stays open: its owner closes it."""
        self._stopping.set()
        if self.ident is not None:
            self.join()
