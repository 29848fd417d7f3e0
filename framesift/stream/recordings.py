"""When a recording was made, so that a file replayed faster than real time is sampled on its own clock.

A recording's start is what its container says (`creation_time`, the tag cameras and FFmpeg write), else the
file's modification time less its duration (a recorder closes the file when the recording ends), unless the user
gives it. Each frame's time is then that start plus the frame's timestamp, counted from the first frame.

Example:
    >>> clock = RecordingClock(recording_start(container, "cam1-0800.mp4"))  # doctest: +SKIP
    >>> clock.at(frame.time)                                                 # doctest: +SKIP
    datetime.datetime(2026, 11, 20, 8, 0, 0, 40000, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone
from typing import Any

log = logging.getLogger(__name__)

EARLIEST = datetime(1990, 1, 1, tzinfo=timezone.utc)  # muxers write 1970 or 1904 when they know no date


def parse_start_time(text: str) -> datetime:
    """An ISO 8601 date and time (`2026-11-20T08:00:00Z`; without a zone it is UTC); `ValueError` otherwise."""
    moment = datetime.fromisoformat(text.strip())
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def recording_start(container: Any, path: str) -> datetime:
    """When the recording in `container` (opened from the file `path`) began, in UTC."""
    for metadata in (container.metadata, container.streams.video[0].metadata):
        text = metadata.get("creation_time")
        if text:
            try:
                start = parse_start_time(text)
            except ValueError:
                log.warning("%s: its creation_time %r is not a date; its modification time is used", path, text)
                continue
            if start >= EARLIEST:
                return start
    duration = (container.duration or 0) / 1e6  # microseconds
    return datetime.fromtimestamp(os.stat(path).st_mtime - duration, timezone.utc)


class RecordingClock:
    """The time each frame of one recording was recorded: its start plus the frame's timestamp."""

    def __init__(self, start: datetime, rate: float | None = None):
        self.start = start
        self._rate = rate or 25.0  # frames per second, for frames without a timestamp
        self.first: float | None = None  # the first frame's timestamp: set before when known (frames skipped)
        self._frames = 0  # frames timed so far

    def at(self, video_time: float | None) -> datetime:
        """The time of the recording's next frame, whose timestamp is `video_time` (seconds)."""
        self._frames += 1
        if video_time is None:
            return self.start + timedelta(seconds=(self._frames - 1) / self._rate)
        if self.first is None:
            self.first = video_time
        return self.start + timedelta(seconds=max(0.0, video_time - self.first))
