"""Counters and gauges of a running pipeline, read through one `snapshot()`.

Per source: frames decoded, inferred, dropped (by reason), skipped by `--max-fps`, decode errors (packets that did
not decode), corrupt frames (decoded with damage concealed by FFmpeg), reconnects,
whether it is connected, fps over the last seconds and the frame age at prediction (p50, p95, p99 of the last
4096 frames). Pipeline-wide: errors in sinks and callbacks.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FPS_WINDOW_S = 5.0


@dataclass
class SourceMetrics:
    frames_decoded: int = 0
    frames_inferred: int = 0
    frames_skipped: int = 0
    decode_errors: int = 0
    corrupt_frames: int = 0
    reconnects: int = 0
    connected: bool = False
    dropped: Counter = field(default_factory=Counter)
    ages: deque = field(default_factory=lambda: deque(maxlen=4096))
    inferred_at: deque = field(default_factory=lambda: deque(maxlen=8192))


class Metrics:
    """Thread-safe; every thread of the pipeline writes, anyone reads a snapshot."""

    def __init__(self, sources: list[str]):
        self._lock = threading.Lock()
        self._sources = {name: SourceMetrics() for name in sources}
        self.errors: Counter = Counter()  # sink / callback errors by name

    def add(self, source: str, field_name: str, n: int = 1) -> None:
        with self._lock:
            metrics = self._sources[source]
            setattr(metrics, field_name, getattr(metrics, field_name) + n)

    def dropped(self, source: str, reason: str, n: int = 1) -> None:
        with self._lock:
            self._sources[source].dropped[reason] += n

    def connected(self, source: str, state: bool) -> None:
        with self._lock:
            self._sources[source].connected = state

    def inferred(self, source: str, age: float, now: float) -> None:
        with self._lock:
            metrics = self._sources[source]
            metrics.frames_inferred += 1
            metrics.ages.append(age)
            metrics.inferred_at.append(now)

    def error(self, where: str) -> None:
        with self._lock:
            self.errors[where] += 1

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            sources = {name: _source_snapshot(m, now) for name, m in self._sources.items()}
            errors = dict(self.errors)
        return {
            "frames_decoded": sum(s["frames_decoded"] for s in sources.values()),
            "frames_inferred": sum(s["frames_inferred"] for s in sources.values()),
            "frames_dropped": sum(s["frames_dropped"] for s in sources.values()),
            "frames_skipped": sum(s["frames_skipped"] for s in sources.values()),
            "decode_errors": sum(s["decode_errors"] for s in sources.values()),
            "corrupt_frames": sum(s["corrupt_frames"] for s in sources.values()),
            "reconnects": sum(s["reconnects"] for s in sources.values()),
            "errors": errors,
            "sources": sources,
        }


def _source_snapshot(m: SourceMetrics, now: float) -> dict[str, Any]:
    recent = [t for t in m.inferred_at if t >= now - FPS_WINDOW_S]
    span = (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
    ages = np.fromiter(m.ages, dtype=np.float64) if m.ages else None
    percentiles = np.percentile(ages, [50, 95, 99]) if ages is not None else [None] * 3
    return {
        "frames_decoded": m.frames_decoded,
        "frames_inferred": m.frames_inferred,
        "frames_dropped": sum(m.dropped.values()),
        "dropped_by_reason": dict(m.dropped),
        "frames_skipped": m.frames_skipped,
        "decode_errors": m.decode_errors,
        "corrupt_frames": m.corrupt_frames,
        "reconnects": m.reconnects,
        "connected": m.connected,
        "fps": (len(recent) - 1) / span if span > 0 else 0.0,
        "frame_age_s": dict(zip(("p50", "p95", "p99"),
                                (None if p is None else float(p) for p in percentiles), strict=True)),
    }
