"""Video sources read with PyAV, one thread each: files, RTSP/RTMP/HTTP streams and webcams (SPEC §9).

A file is replayed: every frame, in order, as fast as the model allows (its thread waits for room instead of
dropping), unless `realtime` paces it at its frame rate, when it behaves as live. A live source never builds lag:
its thread keeps reading and the newest frame replaces a waiting one, which is counted as dropped. A live source
that fails or ends is reopened with exponential backoff (0.5 s doubling to 30 s, with jitter), sleeping on an
event meanwhile; open and read timeouts keep a dead camera from hanging it. `frame_id` keeps counting across
reconnects and loops.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from framesift.redaction import redact_url
from framesift.stream.frames import Frame
from framesift.stream.metrics import Metrics
from framesift.stream.slots import FrameSlots

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://", "http://", "https://", "udp://", "srt://")
StatusCallback = Callable[[str, str, str], None]  # (source name, event, detail)


class SourceError(ValueError):
    """A source that cannot be used at all (a missing or unreadable file)."""


@dataclass(frozen=True)
class SourceSpec:
    """What to read and what to call it. `disable_active_learning` turns collection off for this source."""

    url: str
    name: str
    disable_active_learning: bool = False

    @property
    def kind(self) -> str:
        if self.url.lower().startswith(STREAM_SCHEMES):
            return "stream"
        if self.url.isdigit() or re.fullmatch(r"/dev/video\d+", self.url):
            return "webcam"
        return "file"

    @property
    def display(self) -> str:
        return redact_url(self.url)


@dataclass(frozen=True)
class SourceOptions:
    realtime: bool = False
    loop: bool = False
    max_fps: float | None = None
    max_frames: int | None = None
    rtsp_transport: str = "tcp"
    open_timeout: float = 10.0
    read_timeout: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0


def check_file(spec: SourceSpec) -> None:
    """Raise `SourceError` with one clear sentence when a file source cannot be read."""
    import av

    if spec.kind != "file":
        return
    if not Path(spec.url).is_file():
        raise SourceError(f"video file not found: {spec.url}")
    try:
        with av.open(spec.url) as container:
            if not container.streams.video:
                raise SourceError(f"{spec.url} holds no video stream")
    except av.error.FFmpegError as error:
        raise SourceError(f"cannot read video file {spec.url}: {error.strerror or error}") from None


class SourceReader(threading.Thread):
    """Decodes one source into its slot until it ends, fails for good, or `stop` is set."""

    def __init__(self, spec: SourceSpec, options: SourceOptions, slots: FrameSlots, metrics: Metrics,
                 prepare: Callable[[Any], Any] | None, stop: threading.Event,
                 on_status: StatusCallback | None = None):
        super().__init__(name=f"framesift-source-{spec.name}", daemon=True)
        self.spec, self.options = spec, options
        self.live = spec.kind != "file" or options.realtime
        self._slots, self._metrics, self._prepare = slots, metrics, prepare
        self._stop_event = stop
        self._on_status = on_status
        self._decoded = 0  # frames decoded so far, and so the id of the next one: it keeps counting across reconnects

    # -- the thread ----------------------------------------------------------------------------------------
    def run(self) -> None:
        delay = self.options.backoff_initial
        try:
            while not self._stop_event.is_set() and not self._enough():
                try:
                    container = self._open()
                except Exception as error:  # av raises FFmpegError subclasses and OSError
                    if self.spec.kind == "file":
                        self._status("error", f"cannot open: {_reason(error)}")
                        return
                    self._status("disconnected", f"open failed: {_reason(error)}")
                    delay = self._backoff(delay)
                    continue
                decoded_before = self._decoded
                self._metrics.connected(self.spec.name, True)
                self._status("connected", "")
                try:
                    self._read(container)
                except Exception as error:  # a broken container or a dropped connection
                    self._metrics.add(self.spec.name, "decode_errors")
                    self._status("disconnected", f"read failed: {_reason(error)}")
                finally:
                    container.close()
                    self._metrics.connected(self.spec.name, False)
                if self._stop_event.is_set() or self._enough():
                    break
                if self.spec.kind == "file":
                    if not self.options.loop:
                        break
                    continue
                if self._decoded > decoded_before:
                    delay = self.options.backoff_initial  # it worked for a while: start the backoff over
                self._status("disconnected", "stream ended")
                delay = self._backoff(delay)
        finally:
            self._status("end", f"{self._decoded} frames decoded")

    def _backoff(self, delay: float) -> float:
        if self._stop_event.is_set():
            return delay
        pause = delay * random.uniform(0.8, 1.2)
        self._metrics.add(self.spec.name, "reconnects")
        self._status("reconnecting", f"in {pause:.1f} s")
        self._stop_event.wait(pause)  # no CPU while waiting; a stop wakes it at once
        return min(delay * 2, self.options.backoff_max)

    def _enough(self) -> bool:
        return self.options.max_frames is not None and self._decoded >= self.options.max_frames

    def _open(self) -> Any:
        import av

        options: dict[str, str] = {}
        url, fmt = self.spec.url, None
        if url.lower().startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = self.options.rtsp_transport
        if self.spec.kind == "webcam":
            url, fmt = (f"/dev/video{url}" if url.isdigit() else url), "v4l2"
        if self.spec.kind != "file":
            options.update({"fflags": "nobuffer", "flags": "low_delay"})
        return av.open(url, format=fmt, options=options,
                       timeout=(self.options.open_timeout, self.options.read_timeout))

    def _read(self, container: Any) -> None:
        import av

        stream = container.streams.video[0]
        if self.spec.kind == "file":
            stream.thread_type = "AUTO"  # frame threads: throughput; live sources keep the low-latency default
        pacing = _Pacing(self.options, is_file=self.spec.kind == "file")
        for packet in container.demux(stream):
            if self._stop_event.is_set():
                return
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:  # a corrupt packet: count it, go on with the next
                self._metrics.add(self.spec.name, "decode_errors")
                continue
            for image in decoded:
                self._deliver(image, pacing)
                if self._stop_event.is_set() or self._enough():
                    return

    def _deliver(self, image: Any, pacing: _Pacing) -> None:
        frame_id = self._decoded
        self._decoded += 1
        self._metrics.add(self.spec.name, "frames_decoded")
        if image.is_corrupt:  # decoded, with damage FFmpeg concealed
            self._metrics.add(self.spec.name, "corrupt_frames")
        received = time.monotonic()
        video_time = float(image.time) if image.time is not None else None
        if not pacing.admit(video_time, received):
            self._metrics.add(self.spec.name, "frames_skipped")
            return
        pacing.wait(video_time, self._stop_event)
        frame = Frame(self.spec.name, frame_id, datetime.now(timezone.utc), time.monotonic(), video_time, image)
        if self._prepare is not None:
            frame.model_input = self._prepare(image)
        self._slots.put(frame, self._stop_event.is_set, self._replaced)

    def _replaced(self, frame: Frame) -> None:
        """A waiting live frame was replaced by a newer one before the model took it."""
        self._metrics.dropped(self.spec.name, "newer_frame")

    def _status(self, event: str, detail: str) -> None:
        level = logging.WARNING if event in ("disconnected", "error") else logging.INFO
        log.log(level, "source %s (%s): %s%s", self.spec.name, self.spec.display, event,
                f" ({detail})" if detail else "")
        if self._on_status is not None:
            try:
                self._on_status(self.spec.name, event, detail)
            except Exception:
                log.exception("status callback failed")
                self._metrics.error("status_callback")


class _Pacing:
    """`--max-fps` (by video time for files, by arrival time for live sources) and `--realtime` replay."""

    def __init__(self, options: SourceOptions, is_file: bool):
        self._interval = 1.0 / options.max_fps if options.max_fps else None
        self._by_video_time = is_file
        self._realtime_file = is_file and options.realtime
        self._next_due: float | None = None
        self._origin: tuple[float, float] | None = None  # (video time, monotonic) of the first frame

    def admit(self, video_time: float | None, received: float) -> bool:
        if self._interval is None:
            return True
        t = video_time if (self._by_video_time and video_time is not None) else received
        if self._next_due is not None and t < self._next_due - 1e-6:
            return False
        behind = self._next_due is None or t - self._next_due > self._interval
        self._next_due = (t if behind else self._next_due) + self._interval
        return True

    def wait(self, video_time: float | None, stop: threading.Event) -> None:
        if not self._realtime_file or video_time is None:
            return
        now = time.monotonic()
        if self._origin is None:
            self._origin = (video_time, now)
            return
        due = self._origin[1] + (video_time - self._origin[0])
        if due > now:
            stop.wait(due - now)


def _reason(error: BaseException) -> str:
    """An error as one line, with any URL in it redacted."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return re.sub(r"\w+://\S+", lambda m: redact_url(m.group(0)), str(text).splitlines()[0])
