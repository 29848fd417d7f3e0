"""What a person or a log file sees while a run goes on.

On a terminal: a progress bar for files, a status line redrawn in place for live streams, every second; a log line
meanwhile is written above them, never into them (tqdm's logging redirect). Anywhere else (a log file, journald, a
pipe): one plain status line every `report_every` seconds (60 by default), so that a run left alone for months does
not grow its log by a line a second.

A status tells, per source, the fps (and "down" while reconnecting, "never connected: check the URL" for a source
that failed every attempt since start), the frames dropped and the datapoints collected, the version of a
configuration from a store, and what needs attention: a limit that is spent and when it gives a credit back
(`crowded: 50/50 this hour, next credit in 52 min`), a limit store (Redis) that is unavailable, a remote target's
backlog.

Example:
    >>> describe(StreamStats(sources={"cam1": SourceStats(fps=14.8, connected=True)}))
    'cam1 14.8 fps | dropped 0'
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, TextIO

from framesift.resources import Service
from framesift.stats import SourceStats, StreamStats
from framesift.stream.sources import NEVER_CONNECTED_AFTER
from framesift.workers import Worker

log = logging.getLogger("framesift.status")


class Progress(Service):
    """Reports from `snapshot()`, from `start()` (or `with`) until `close()`: drawn every `interval` s on a terminal,
    logged every `report_every` s elsewhere. `total_frames` (files) makes it a progress bar."""

    def __init__(self, snapshot: Callable[[], StreamStats], total_frames: int | None, live: bool, *,
                 interval: float = 1.0, report_every: float = 60.0, stream: TextIO | None = None):
        self._snapshot, self._total = snapshot, total_frames
        self._stream = stream or sys.stderr
        self._interactive = self._stream.isatty()
        self._live = live
        self._every = interval if self._interactive else report_every
        self._done = threading.Event()
        self._bar: Any = None
        self._redirected = ExitStack()
        self.worker = Worker("status", self._run)
        self._closed = False

    def start(self) -> None:
        """Draw the bar (on a terminal) and report from now on; idempotent."""
        if self.worker.started or self._closed:
            return
        if self._interactive:
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            # the status line is a bar that shows only its text; log lines go through tqdm, which clears the bar,
            # writes the line and draws the bar again below it (the handlers' filters, redaction, are kept)
            self._bar = tqdm(total=None, bar_format="{desc}", dynamic_ncols=True, file=self._stream) \
                if self._live else tqdm(total=self._total, unit="frame", dynamic_ncols=True, file=self._stream)
            self._redirected.enter_context(logging_redirect_tqdm())
        self.worker.start()

    def close(self) -> None:
        """Stop reporting, after a last report; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._done.set()
        if not self.worker.started:
            return
        self.worker.join()
        if self._interactive:
            self._draw()
            self._bar.close()
            self._redirected.close()

    def _run(self) -> None:
        while not self._done.wait(self._every):
            if self._interactive:
                self._draw()
            else:
                log.info("%s", self._line())

    def _draw(self) -> None:
        snap = self._snapshot()
        if self._live:
            self._bar.set_description_str(describe(snap), refresh=True)
        else:
            self._bar.n = snap.frames_inferred + snap.frames_unsampled
            self._bar.set_postfix(collected=_collected(snap), refresh=False)
            self._bar.refresh()

    def _line(self) -> str:
        snap = self._snapshot()
        if self._live:
            return f"status: {describe(snap)}"
        read = snap.frames_inferred + snap.frames_unsampled
        done = f"{read} of {self._total} frames" if self._total else f"{read} frames"
        return f"progress: {done} | {describe(snap)}"


def describe(snap: StreamStats) -> str:
    """One line about a pipeline: the sources' rates, the drops, what was collected, what needs attention."""
    parts = [" ".join(_source(name, s) for name, s in snap.sources.items()), f"dropped {snap.frames_dropped}"]
    if snap.collectors:
        collector = snap.collected()
        parts.append(f"collected {collector.datapoints_registered}")
        if collector.config_version is not None:
            parts.append(f"configuration {collector.config_version} ({collector.config_sha})")
        parts += [limit_fill(fill) for stats in snap.collectors.values() for fill in stats.limits
                  if fill["used"] >= fill["max"]]
        if not collector.limit_store_available:
            parts.append(f"limits unavailable: {collector.limit_store_error}")
        outbox = collector.target
        if outbox is not None and (outbox.pending or outbox.dead):
            parts.append(f"outbox {outbox.pending} pending, {outbox.dead} dead")
    return " | ".join(parts)


WINDOWS = {60: "this minute", 3600: "this hour", 86400: "today"}  # the limits' rolling windows, in words


def limit_fill(fill: dict[str, Any]) -> str:
    """One limit's fill in words: `crowded: 50/50 this hour, next credit in 52 min` (a `LimitFill` as a dict)."""
    window = WINDOWS.get(fill["window_s"], f"in {fill['window_s']} s")
    text = f"{fill['strategy']}: {fill['used']}/{fill['max']} {window}"
    if fill["next_credit_s"] is not None:
        text += f", next credit in {duration(fill['next_credit_s'])}"
    return text


def duration(seconds: float) -> str:
    """`40 s`, `52 min`, `3 h 5 min`."""
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60} min"


def _source(name: str, stats: SourceStats) -> str:
    if not stats.ever_connected and stats.reconnects >= NEVER_CONNECTED_AFTER:
        return f"{name} never connected: check the URL"
    return f"{name} {stats.fps:.1f} fps" + ("" if stats.connected else " (down)")


def _collected(snap: StreamStats) -> int:
    return snap.collected().datapoints_registered
