"""The types every wing shares: a source to read (`SourceSpec`), a decoded frame on its way (`Frame`), and the
draws made for a frame before it is decoded (`Drawn`, `DrawAhead`).

They sit at the bottom of the package: the stream makes frames, workflows and collectors read them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np

from framesift.errors import SourceError
from framesift.redaction import redact

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://", "http://", "https://", "udp://", "srt://")


def is_archive(url: str) -> bool:
    """A folder, or a glob pattern that is not itself the name of a file (an empty name is neither)."""
    return bool(url.strip()) and (Path(url).is_dir() or (any(c in url for c in "*?[") and not Path(url).is_file()))


@dataclass(frozen=True)
class SourceSpec:
    """What to read and what to call it. `disable_active_learning` turns collection off for this source;
    `parameters` set a workflow's parameters for this source only (`--param SOURCE:NAME=VALUE`)."""

    url: str
    name: str
    disable_active_learning: bool = False
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse, in one sentence, a source no retry can ever open (a live source is retried for ever)."""
        if not self.url.strip():  # `framesift run "$CAMERA"` with the variable unset replayed the working folder
            raise SourceError(f"source {self.name} is empty (an unset variable?): give a URL, a file or a folder")
        if self.kind != "stream":
            return
        try:
            parts = urlsplit(self.url)
            host, _ = parts.hostname, parts.port  # reading the port checks it
        except ValueError as error:
            raise SourceError(f"source {self.name} ({self.display}) is no valid URL: {error}") from None
        if host is None and not self.url.lower().startswith(("udp://", "srt://")):  # those may listen on any address
            raise SourceError(f"source {self.name} ({self.display}) names no camera: its URL has no host")

    @property
    def kind(self) -> str:
        if self.url.lower().startswith(STREAM_SCHEMES):
            return "stream"
        if self.url.isdigit() or re.fullmatch(r"/dev/video\d+", self.url):
            return "webcam"
        return "archive" if is_archive(self.url) else "file"

    @property
    def display(self) -> str:
        return redact(self.url)


class Drawn(Protocol):
    """A frame's draws, made before it was decoded (the collector's `Draw`, from `Collector.draw_ahead`): true when
    the frame is sampled. The stream only tests it and carries it with the frame, from the source's thread that drew
    it to the collector that made it (on the inference thread)."""

    def __bool__(self) -> bool: ...


DrawAhead = Callable[[str | None], Drawn | None]  # a frame's draws, given what it is known by (None: the next
# frame's); None when they cannot be made before decoding (the configuration in force looks at the image)


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
    drawn: Drawn | None = None  # the collector's draws, made before the frame was decoded (`Collector.draw_ahead`)
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

        made = self._bgr
        if made is not None:
            return cv2.resize(made, (width, height), interpolation=cv2.INTER_AREA)
        if getattr(self.image, "format", None) is not None and self.image.format.name == "yuv420p" \
                and width % 2 == 0 and height % 2 == 0:
            return scaled_i420(self.image, width, height, bgr=True)
        with self._lock:
            return self.image.reformat(width=width, height=height, format="bgr24",
                                       interpolation="BILINEAR").to_ndarray()


def scaled_i420(frame: Any, width: int, height: int, *, bgr: bool = False) -> np.ndarray:
    """A yuv420p PyAV frame in RGB (or BGR) at `width` x `height` (both even): its Y, U and V planes resized with
    OpenCV, then the small image converted. It only reads the frame's planes."""
    import cv2

    packed = np.empty(width * height * 3 // 2, np.uint8)  # I420: Y, then U, then V
    sizes = [(frame.width, frame.height, width, height)] + [((frame.width + 1) // 2, (frame.height + 1) // 2,
                                                             width // 2, height // 2)] * 2
    offset = 0
    for plane, (src_w, src_h, dst_w, dst_h) in zip(frame.planes, sizes, strict=True):
        source = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:src_h, :src_w]
        target = packed[offset:offset + dst_w * dst_h].reshape(dst_h, dst_w)
        cv2.resize(source, (dst_w, dst_h), dst=target, interpolation=cv2.INTER_LINEAR)
        offset += dst_w * dst_h
    code = cv2.COLOR_YUV2BGR_I420 if bgr else cv2.COLOR_YUV2RGB_I420
    return cv2.cvtColor(packed.reshape(height * 3 // 2, width), code)
