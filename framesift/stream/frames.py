"""A decoded frame on its way through the pipeline."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np


@dataclass
class Frame:
    """One decoded frame of one source.

    `captured_at` is when the frame was received, or, for a recording replayed in video time (`recorded`), when
    it was recorded: the recording's start plus the frame's timestamp. `image` is the decoder's frame (a PyAV
    `VideoFrame`); `model_input` was prepared from it in the source thread when the source is replayed (a live
    frame's is made on the inference thread once the frame is taken: most are replaced by a newer one before).
    `bgr()` makes the full-resolution BGR array only when someone asks (a collected frame, a drawing sink) and keeps
    it for the next asker. The conversion is done once, under a lock: PyAV deadlocks when two threads convert the
    same `VideoFrame` at once (seen with PyAV 18). `preview(width, height)` makes a small BGR copy (the live page's)
    without the full-resolution one.
    """

    source: str
    frame_id: int
    captured_at: datetime  # when the frame was received, or recorded (UTC)
    received: float  # time.monotonic() at receipt, for the frame's age
    video_time: float | None  # seconds into the stream, from the container's timestamps
    image: Any
    model_input: Any = None  # made by the workflow's `prepare` in a replayed source's thread
    outputs: dict[str, Any] | None = None  # a workflow's declared outputs, once inferred
    recorded: bool = False  # captured_at is on the recording's clock (a file replayed in video time)
    recording: str | None = None  # the file of an archive it came from; frame_id is then its index there
    drawn: Any = None  # the collector's draws, made before the frame was decoded (`Collector.draw_ahead`)
    checkpoint: Callable[[], None] | None = None  # an archive's replay-log entries, written once it is collected
    known_as: str | None = None  # an archive's frame: its recording's identity and its index (its own draws)
    still_ours: Callable[[], bool] | None = None  # a fleet's frame: whether this box still holds its recording
    _bgr: np.ndarray | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    def bgr(self) -> np.ndarray:
        with self._lock:
            if self._bgr is None:
                self._bgr = self.image.to_ndarray(format="bgr24")
            return self._bgr

    def preview(self, width: int, height: int) -> np.ndarray:
        """A small BGR copy, `width` x `height`: resized from the full-resolution array when someone made it
        already, else scaled from the decoded frame before it is converted (a yuv420p frame's planes are only
        read; another format goes through swscale under the frame's lock)."""
        import cv2

        from framesift.models.letterbox import scaled_i420

        made = self._bgr
        if made is not None:
            return cv2.resize(made, (width, height), interpolation=cv2.INTER_AREA)
        if getattr(self.image, "format", None) is not None and self.image.format.name == "yuv420p" \
                and width % 2 == 0 and height % 2 == 0:
            return scaled_i420(self.image, width, height, bgr=True)
        with self._lock:
            return self.image.reformat(width=width, height=height, format="bgr24",
                                       interpolation="BILINEAR").to_ndarray()
