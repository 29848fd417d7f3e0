"""The stream's counters, written by every thread of a pipeline and read as `SourceStats` (`framesift.stats`).

Per source: frames decoded, inferred, dropped (by reason), skipped (by reason: `--max-fps`, GOPs decoded keyframe
only), passed over unsampled (when frames are drawn before decoding), decode errors (packets that did not decode),
corrupt frames (decoded with damage concealed by FFmpeg), reconnects, whether it is connected, fps over the last
seconds and the frame age at prediction (p50, p95, p99 of the last 4096 frames). Pipeline-wide: exceptions in sinks
and callbacks, by where they happened, and how long each call of the models took (a histogram).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter, deque

import numpy as np

from framesift.stats import SECONDS, Histogram, SourceStats

FPS_WINDOW_S = 5.0


class _Source:
    def __init__(self) -> None:
        self.stats = SourceStats()
        self.dropped: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.ages: deque[float] = deque(maxlen=4096)
        self.inferred_at: deque[float] = deque(maxlen=8192)


class Metrics:
    """Thread-safe; each method is one short critical section."""

    def __init__(self, sources: list[str]):
        self._lock = threading.Lock()
        self._sources = {name: _Source() for name in sources}
        self._errors: Counter[str] = Counter()
        self._inference = Histogram.of(SECONDS)  # as `StreamStats.inference_s` declares it

    def decoded(self, source: str, corrupt: bool) -> None:
        with self._lock:
            stats = self._sources[source].stats
            stats.frames_decoded += 1
            stats.corrupt_frames += corrupt

    def skipped(self, source: str, reason: str) -> None:
        with self._lock:
            self._sources[source].skipped[reason] += 1

    def unsampled(self, source: str, n: int) -> None:
        if n:
            with self._lock:
                self._sources[source].stats.frames_unsampled += n

    def decode_error(self, source: str, n: int = 1) -> None:
        with self._lock:
            self._sources[source].stats.decode_errors += n

    def reconnecting(self, source: str) -> None:
        with self._lock:
            self._sources[source].stats.reconnects += 1

    def connected(self, source: str, state: bool) -> None:
        with self._lock:
            stats = self._sources[source].stats
            stats.connected = state
            stats.ever_connected |= state

    def dropped(self, source: str, reason: str, n: int = 1) -> None:
        with self._lock:
            self._sources[source].dropped[reason] += n

    def inferred(self, source: str, age: float, now: float) -> None:
        with self._lock:
            metrics = self._sources[source]
            metrics.stats.frames_inferred += 1
            metrics.ages.append(age)
            metrics.inferred_at.append(now)

    def ran(self, seconds: float) -> None:
        """Count a call of the models that took `seconds`."""
        with self._lock:
            self._inference.observe(seconds)

    def inference(self) -> Histogram:
        with self._lock:
            return self._inference.copy()

    def error(self, where: str) -> int:
        """Count an exception in a callback, a sink or the model; returns how many `where` has raised so far."""
        with self._lock:
            self._errors[where] += 1
            return self._errors[where]

    def errors(self) -> dict[str, int]:
        with self._lock:
            return dict(self._errors)

    def sources(self) -> dict[str, SourceStats]:
        """A consistent copy of every source's statistics. Only the raw figures are copied under the lock (the
        inference thread takes it per frame); rates and percentiles are computed after it is released."""
        with self._lock:
            raw = {name: _Raw(dataclasses.replace(source.stats), dict(source.dropped), dict(source.skipped),
                              list(source.ages), list(source.inferred_at)) for name, source in self._sources.items()}
        now = time.monotonic()
        return {name: source.stats_at(now) for name, source in raw.items()}


@dataclasses.dataclass
class _Raw:
    """One source's figures as copied under the lock."""

    stats: SourceStats
    dropped: dict[str, int]
    skipped: dict[str, int]
    ages: list[float]
    inferred_at: list[float]

    def stats_at(self, now: float) -> SourceStats:
        recent = [t for t in self.inferred_at if t >= now - FPS_WINDOW_S]
        span = (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
        percentiles = np.percentile(np.asarray(self.ages), [50, 95, 99]).tolist() if self.ages else [None] * 3
        stats = self.stats
        stats.dropped_by_reason = self.dropped
        stats.frames_dropped = sum(self.dropped.values())
        stats.skipped_by_reason = self.skipped
        stats.frames_skipped = sum(self.skipped.values())
        stats.fps = (len(recent) - 1) / span if span > 0 else 0.0
        stats.frame_age_s = dict(zip(("p50", "p95", "p99"), percentiles, strict=True))
        return stats
