"""Video sources read with PyAV, one thread each: files, RTSP/RTMP/HTTP streams and webcams (SPEC §9).

A file is replayed: every frame, in order, as fast as the model allows (its thread waits for room instead of
dropping), unless `realtime` paces it at its frame rate, when it behaves as live. So is a stream over HTTP that
turns out to be a recording (an HLS playlist that has ended, a video file served over HTTP): it ends like a file
instead of being reopened forever. A live source never builds lag: its thread keeps reading and the newest frame
replaces a waiting one, which is counted as dropped; frames that arrive in bursts (HLS segments) are spread by
their timestamps first; with `skip_gops` (opt-in), a GOP of a live camera that the model will take no frame of
is decoded keyframe only (`framesift.stream.keyframes`). A live source that fails or ends is reopened: at once
when it was streaming, then with backoff (`framesift.stream.reconnect`), sleeping on an event meanwhile; open and
read timeouts keep a dead camera from hanging it, and a stop does not wait for a read blocked on the network (PyAV
cannot interrupt one from outside: the thread ends by itself at its read timeout). `frame_id` keeps counting
across reconnects and loops.

An archive (a folder or a glob of recordings, `framesift.stream.archives`) is replayed like one file made of its
recordings, oldest first; its frames carry the recording they came from and their index in it, and what was
replayed is written to the options' `replay_log`, so that the same run started again goes on where it stopped. A
file given alone, with a `replay_log` and not looped, is replayed as an archive of one recording. The reader reads;
the replay's books (which recording next, how far each was read, the log's checkpoints) are an `ArchiveReplay`
(`framesift.stream.replay`).

A file replayed faster than real time runs on its recording's clock (`video_time`, the default): each frame's
`captured_at` is when it was recorded (`framesift.stream.recordings`), so budgets and batches follow the recording.
With `realtime`, `loop` or `video_time=False`, frames carry the time they were decoded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framesift.errors import SourceError, require_positive
from framesift.frames import DrawAhead, Drawn, Frame, SourceSpec
from framesift.redaction import redact
from framesift.stream.archives import Recording, archive_root, list_recordings, read_recording
from framesift.stream.keyframes import KeyframeGate
from framesift.stream.metrics import Metrics
from framesift.stream.reconnect import Backoff
from framesift.stream.recordings import RecordingClock, recording_start
from framesift.stream.replay import ArchiveReplay, Checkpoint
from framesift.stream.sampled_decoding import SampledDecoding, scan
from framesift.stream.slots import FrameSlots
from framesift.workers import Worker

if TYPE_CHECKING:
    from framesift.stream.fleet import FleetLog

log = logging.getLogger(__name__)

SEGMENTED_FORMATS = ("hls", "dash")  # demuxers whose frames arrive a segment at a time
RTSP_PROBE_US = "500000"  # how much of an RTSP stream FFmpeg reads to learn its parameters, at most (µs)
StatusCallback = Callable[[str, str, str], None]  # (source name, event, detail)
NEVER_CONNECTED_AFTER = 3  # failed opens of a live source never connected since start before it says so


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
    video_time: bool = True  # a file replayed fast runs on its recording's clock
    start_time: datetime | None = None  # the recording's start, instead of what the file says
    replay_log: str | None = None  # where archives write what they replayed (a `ReplayLog`)
    fleet: FleetLog | None = None  # ... or the fleet's log in Redis, whose recordings are claimed one at a time
    decode_all: bool = False  # decode every frame even when the draws could be made first (`sampled_decoding`)
    skip_gops: bool = False  # a live camera's GOPs the model will take no frame of: keyframe only (`keyframes`)
    keyframe_draws: bool = False  # a replay's sampled GOPs hand on their keyframe (`sampled_decoding`; opt-in)

    def __post_init__(self) -> None:
        require_positive({"max_fps": self.max_fps, "max_frames": self.max_frames, "open_timeout": self.open_timeout,
                          "read_timeout": self.read_timeout, "backoff_initial": self.backoff_initial,
                          "backoff_max": self.backoff_max})


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


class SourceReader(Worker):
    """Decodes one source into its slot until it ends, fails for good, or `stop` is set. A failure outside the
    source (a bug in preparing the model input, say) ends the thread, which reports it (`Worker`)."""

    def __init__(self, spec: SourceSpec, options: SourceOptions, slots: FrameSlots, metrics: Metrics,
                 prepare: Callable[[Any], Any] | None, stop: threading.Event,
                 on_status: StatusCallback | None = None, on_failure: Callable[[Worker], None] | None = None,
                 draw: DrawAhead | None = None, prepare_live: bool = False,
                 defer: Callable[[Checkpoint], None] | None = None):
        super().__init__(f"source {spec.name}", on_failure=on_failure)
        self.spec, self.options = spec, options
        self.finite = spec.kind in ("file", "archive")  # it ends by itself (so does a stream found to be a VOD)
        self.live = not self.finite or options.realtime
        self._slots, self._metrics, self._prepare = slots, metrics, prepare
        self._stop_event = stop
        self._on_status = on_status
        self._decoded = 0  # frames decoded so far, and so the id of the next one: it keeps counting across reconnects
        self.waiting_since: float | None = None  # monotonic time since which the thread waits for the network
        self.replay: ArchiveReplay | None = None  # an archive's, or a logged file's, books (`check`)
        self._draw = draw  # draws a frame before it is decoded: only sampled frames are decoded (replays)
        self._prepare_live = prepare_live  # a live frame's input is made here too (a model on a GPU)
        self._defer = defer  # hands on a checkpoint no frame carries: written once the frames before are collected

    def check(self) -> None:
        """Raise `SourceError` with one clear sentence when a file or an archive cannot be read; list what an
        archive, or a file whose replay is logged (`replay_log`, not looped), has left to replay: a file is then
        replayed as an archive of one recording, skipped or resumed by the same rule."""
        if self.spec.kind == "archive":
            every = list_recordings(self.spec.url)
        else:
            check_file(self.spec)
            if self.spec.kind != "file" or self.options.replay_log is None or self.options.loop:
                return
            recording = read_recording(self.spec.url)
            every = [] if recording is None else [replace(recording, start=self.options.start_time or recording.start)]
        self.replay = ArchiveReplay(self.spec.name, every, archive_root(self.spec.url), self.options.replay_log,
                                    self.options.fleet, self._defer)

    def frames_left(self) -> list[tuple[str, int]]:
        """(file, frames already replayed) of each file this source will read."""
        return [(self.spec.url, 0)] if self.replay is None else self.replay.frames_left()

    # -- the thread ----------------------------------------------------------------------------------------
    def work(self) -> None:
        import av

        backoff = Backoff(self.options.backoff_initial, self.options.backoff_max)
        try:
            if self.replay is not None:
                for recording in self.replay.turns(lambda: self._stop_event.is_set() or self._enough(),
                                                   self._stop_event.wait):
                    self._replay(recording, self.replay)
                return
            failed_opens, connected_once = 0, False
            while not self._stop_event.is_set() and not self._enough():
                try:
                    container = self._open()
                except (av.error.FFmpegError, OSError, SourceError) as error:
                    if self.finite:
                        self._status("error", f"cannot open: {_reason(error)}")
                        return
                    self._status("disconnected", f"open failed: {self._in_words(error, self.options.open_timeout)}")
                    failed_opens += 1
                    if failed_opens == NEVER_CONNECTED_AFTER and not connected_once:
                        self._status("never connected", f"{failed_opens} attempts since start: check the URL")
                    self._backoff(backoff)
                    continue
                connected_once = True
                decoded_before, connected_at = self._decoded, time.monotonic()
                self._metrics.connected(self.spec.name, True)
                self._status("connected", "")
                try:
                    self._read(container)
                except (av.error.FFmpegError, OSError) as error:  # a broken container or a dropped connection
                    self._metrics.decode_error(self.spec.name)
                    self._status("disconnected", f"read failed: {self._in_words(error, self.options.read_timeout)}")
                finally:
                    self.waiting_since = None
                    container.close()
                    self._metrics.connected(self.spec.name, False)
                if self._stop_event.is_set() or self._enough():
                    break
                if self.finite:
                    if not self.options.loop:
                        break
                    continue
                if self._decoded > decoded_before:  # it streamed: retried at once, then promptly for a while
                    backoff.streamed(time.monotonic(), time.monotonic() - connected_at)
                self._status("disconnected", "stream ended")
                self._backoff(backoff)
        finally:
            self._status("end", f"{self._decoded} frames read")

    def _replay(self, recording: Recording, replay: ArchiveReplay) -> None:
        """Replay one recording of an archive, after what was replayed of it before."""
        import av

        try:
            container = av.open(recording.path)
        except av.error.FFmpegError as error:
            self._metrics.decode_error(self.spec.name)
            self._status("error", f"cannot open {recording.path}: {_reason(error)}; going on with the next")
            replay.fail(recording, f"cannot open it: {_reason(error)}")
            return
        self._metrics.connected(self.spec.name, True)
        self._status("connected", recording.path)
        skip = replay.begin(recording)
        try:
            if self._read(container, recording, skip):
                replay.read_through(recording)
        except (av.error.FFmpegError, OSError) as error:  # a damaged file: count it, go on with the next
            self._metrics.decode_error(self.spec.name)
            self._status("error", f"{recording.path}: {_reason(error)}; going on with the next")
            replay.fail(recording, f"it cannot be read to its end: {_reason(error)}")
        finally:
            container.close()
            self._metrics.connected(self.spec.name, False)

    def confirm(self, first_left: tuple[str, int] | None) -> None:
        """Write what was replayed of the archive once its thread has ended and the datapoints of its frames were
        written (`Pipeline.close` calls it through `Workflow.when_written`), given its first frame left waiting for
        the model when the pipeline stopped (recording, index there), if any: every frame before that one, or
        before the first the slots refused, was inferred or passed over unsampled; without either, everything read
        was. A thread still running (a file system that hangs) leaves the log as it was."""
        if self.replay is not None and not self.is_alive():
            self.replay.confirm(first_left)

    def _backoff(self, backoff: Backoff) -> None:
        if self._stop_event.is_set():
            return
        pause = backoff.pause(time.monotonic())
        self._metrics.reconnecting(self.spec.name)
        self._status("reconnecting", f"in {pause:.1f} s")
        self._stop_event.wait(pause)  # no CPU while waiting; a stop wakes it at once

    def _stopping(self, recording: Recording | None) -> bool:
        """Whether to stop reading: the run stops, or this box lost the lease on the recording it replays."""
        return self._stop_event.is_set() or (recording is not None and self.replay is not None
                                             and self.replay.lost(recording))

    def _enough(self) -> bool:
        return self.options.max_frames is not None and self._decoded >= self.options.max_frames

    def _open(self) -> Any:
        import av

        options: dict[str, str] = {}
        url, fmt = self.spec.url, None
        if url.lower().startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = self.options.rtsp_transport
            # The stream's parameters come in its session description: probe at most half a second for the rest,
            # not FFmpeg's 5 s, which a camera whose first keyframe is late fills (its first frame came with it).
            options["analyzeduration"] = RTSP_PROBE_US
        if self.spec.kind == "webcam":
            url, fmt = (f"/dev/video{url}" if url.isdigit() else url), "v4l2"
        if self.spec.kind != "file":
            # low_delay reaches the decoder. No `fflags=nobuffer`: it throws away the packets read while the stream
            # is probed, the first keyframe among them, so the first frame would come a whole GOP later.
            options["flags"] = "low_delay"
        if url.lower().startswith(("http://", "https://")):
            options["live_start_index"] = "-1"  # a live HLS playlist: start at its newest segment, not 3 back
        self.waiting_since = time.monotonic()
        container = av.open(url, format=fmt, options=options,
                            timeout=(self.options.open_timeout, self.options.read_timeout))
        if not container.streams.video:
            container.close()
            raise SourceError("it holds no video stream")
        if self.spec.kind == "stream" and url.lower().startswith(("http://", "https://")) and container.duration:
            self.finite = True  # a recording (an HLS playlist that has ended, a file over HTTP): replayed like a file
            self.live = self.options.realtime
            self._slots.configure(self.spec.name, self.live)
        return container

    def _read(self, container: Any, recording: Recording | None = None, skip: int = 0) -> bool:
        """Deliver the container's frames (a recording of an archive's: after its first `skip`, which were
        replayed before); True when it was read to its end."""
        import av

        stream = container.streams.video[0]
        if self.finite:
            stream.thread_type = "AUTO"  # frame threads: throughput; live sources keep the low-latency default
        segmented = container.format.name in SEGMENTED_FORMATS
        pacing = _Pacing(self.options, "replay" if self.live and self.finite else
                         "segments" if self.live and segmented else "none")
        clock = self._recording_clock(container, stream, recording)
        sampled = self._sampled_decoding(recording, skip)
        if sampled is not None:
            return self._read_sampled(container, sampled, pacing, clock, recording)
        gate = KeyframeGate() if self.options.skip_gops and not self.finite and not segmented else None
        index = 0  # of the frame in this container
        for packet in container.demux(stream):
            self.waiting_since = None
            if self._stopping(recording):
                return False
            if gate is not None and packet.size and \
                    not gate.decode(packet.is_keyframe, self._slots.waiting(self.spec.name), time.monotonic()):
                self._metrics.skipped(self.spec.name, "keyframes_only")  # a GOP the model takes no frame of
                self.waiting_since = time.monotonic()
                continue
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:  # a corrupt packet: count it, go on with the next
                self._metrics.decode_error(self.spec.name)
                continue
            for image in decoded:
                if recording is None:
                    self._deliver(image, pacing, clock)
                else:
                    self._replayed(recording, index + 1)
                    if index >= skip:
                        self._deliver(image, pacing, clock, recording, index)
                    elif clock is not None:
                        clock.at(float(image.time) if image.time is not None else None)
                index += 1
                if self._stopping(recording) or self._enough():
                    return False
            self.waiting_since = time.monotonic()
        return True

    def _sampled_decoding(self, recording: Recording | None, skip: int) -> SampledDecoding | None:
        """How to decode only the sampled frames of this file, when its frames are drawn before decoding and its
        packets allow it (else every frame is decoded, and the collector draws)."""
        if self._draw is None or not self.finite or self.live or self.options.loop or self.options.max_fps:
            return None
        path = self.spec.url if recording is None else recording.path
        packets = scan(path)
        if isinstance(packets, str):
            log.info("source %s: every frame of %s is decoded: %s", self.spec.name, path, packets)
            return None
        limit = None if self.options.max_frames is None else self.options.max_frames - self._decoded + skip
        draw, keyframes = self._draw, self.options.keyframe_draws
        if recording is None:
            return SampledDecoding(packets, lambda index: draw(None), skip, limit, keyframes)
        replay = self.replay
        assert replay is not None  # a recording is an archive's
        return SampledDecoding(packets, lambda index: draw(replay.known_as(recording, index)), skip, limit,
                               keyframes)  # the same draws whichever box replays it

    def _read_sampled(self, container: Any, sampled: SampledDecoding, pacing: _Pacing,
                      clock: RecordingClock | None, recording: Recording | None) -> bool:
        """Deliver the sampled frames of a file, decoding nothing else; True when it was read to its end."""
        first = self._decoded
        if clock is not None:
            clock.first = sampled.scan.first_time
        counted = 0
        for index, image, drawn in sampled.frames(container):
            self._metrics.unsampled(self.spec.name, sampled.passed_over - counted)
            counted = sampled.passed_over
            self._decoded = first + index - sampled.skip
            if recording is not None:
                self._replayed(recording, index + 1)
            self._deliver(image, pacing, clock, recording, index, drawn)
            if self._stopping(recording):
                return False
        self._metrics.unsampled(self.spec.name, sampled.passed_over - counted)
        self._metrics.decode_error(self.spec.name, sampled.decode_errors + sampled.lost())
        if sampled.lost():
            log.warning("source %s: %d sampled frames of %s did not decode", self.spec.name, sampled.lost(),
                        self.spec.url if recording is None else recording.path)
        self._decoded = first + sampled.limit - sampled.skip
        if recording is not None:
            self._replayed(recording, sampled.limit)
        return sampled.limit == sampled.scan.frames

    def _recording_clock(self, container: Any, stream: Any, recording: Recording | None) -> RecordingClock | None:
        """The clock of a file replayed in video time; None when frames carry the time they were decoded."""
        if not self.finite or self.live or self.options.loop or not self.options.video_time:
            return None
        if recording is not None:
            start = recording.start
        elif self.spec.kind == "file":
            start = self.options.start_time or recording_start(container, self.spec.url)
        else:
            return None  # a stream that turned out to be a recording: it has no file to date it
        rate = float(stream.average_rate) if stream.average_rate else None
        return RecordingClock(start, rate)

    def _deliver(self, image: Any, pacing: _Pacing, clock: RecordingClock | None,
                 recording: Recording | None = None, index: int = 0, drawn: Drawn | None = None) -> None:
        """Hand a decoded frame on (with its draws, when they were made before decoding); an archive's frames are
        numbered within their recording. A replayed frame's model input is prepared here, while the model works on
        the frame before; a live frame's only once the inference thread takes it (`Workflow`): on the CPU most live
        frames are replaced by a newer one first, and are never prepared. With `prepare_live` (a model on a GPU,
        which infers nearly every frame) a live frame's is made here too, in parallel with the other sources, and
        the inference thread only batches them."""
        frame_id = self._decoded if recording is None else index
        self._decoded += 1
        self._metrics.decoded(self.spec.name, corrupt=image.is_corrupt)  # corrupt: damage FFmpeg concealed
        video_time = float(image.time) if image.time is not None else None
        recorded_at = None if clock is None else clock.at(video_time)
        if not pacing.admit(video_time, time.monotonic()):
            self._metrics.skipped(self.spec.name, "max_fps")
            return
        pacing.wait(video_time, self._stop_event)
        captured_at = datetime.now(timezone.utc) if recorded_at is None else recorded_at
        frame = Frame(self.spec.name, frame_id, captured_at, time.monotonic(), video_time, image,
                      recorded=recorded_at is not None, recording=None if recording is None else recording.path,
                      drawn=drawn)
        if self._prepare is not None and (self._prepare_live or not self.live):
            frame.model_input = self._prepare(image)
        if recording is not None and self.replay is not None:
            frame.checkpoint = self.replay.checkpoint(recording, index)
            frame.known_as = self.replay.known_as(recording, index)
            frame.still_ours = self.replay.still_ours(recording)
        if not self._slots.put(frame, self._stop_event.is_set, self._replaced):
            self._metrics.dropped(self.spec.name, "shutdown")  # decoded as the pipeline stopped
            if recording is not None and self.replay is not None:
                self.replay.refused(recording, index)

    def _replayed(self, recording: Recording, frames: int) -> None:
        """The first `frames` frames of an archive's `recording` were decoded (or passed over)."""
        assert self.replay is not None  # a recording is an archive's
        self.replay.read(recording, frames)

    def _replaced(self, frame: Frame) -> None:
        """A waiting live frame was replaced by a newer one before the model took it (its checkpoint goes with
        the next frame)."""
        self._metrics.dropped(self.spec.name, "newer_frame")
        if self.replay is not None:
            self.replay.replaced(frame.checkpoint)

    def _in_words(self, error: BaseException, timeout: float) -> str:
        """What went wrong, in words: a timeout says so (FFmpeg calls it "Immediate exit requested", or "Invalid
        data found" when it struck while opening)."""
        waited = None if self.waiting_since is None else time.monotonic() - self.waiting_since
        if waited is not None and waited >= timeout * 0.9:
            return f"no data from the source for {waited:.0f} s"
        return _reason(error)

    def _status(self, event: str, detail: str) -> None:
        level = logging.WARNING if event in ("disconnected", "error", "never connected") else logging.INFO
        log.log(level, "source %s (%s): %s%s", self.spec.name, self.spec.display, event,
                f" ({detail})" if detail else "")
        if self._on_status is not None:
            try:
                self._on_status(self.spec.name, event, detail)
            except Exception as error:
                log.error("the status callback raised %s: %s; the stream goes on", type(error).__name__, error)
                log.debug("the status callback's traceback", exc_info=True)
                self._metrics.error("status_callback")


class _Pacing:
    """When a decoded frame goes on: `--max-fps` admission, and the wait that paces frames by their timestamps.

    Admission picks frames by video time when there are timestamps (files and live streams alike, so a stream
    whose frames arrive in bursts is thinned by its own clock, not by its bursts), else by arrival.

    Waiting depends on the `clock`:
    - "none" (a live stream delivered as it happens: RTSP, RTMP, a webcam): never wait, never add latency;
    - "replay" (a file replayed with `--realtime`): each frame waits until it is due by its timestamp, counted
      from the first frame; a replay that fell behind catches up;
    - "segments" (live HLS or DASH, whose frames arrive a segment at a time): the frames of a burst are spread
      over the time they cover, instead of all but the last being replaced by "newest frame wins". The clock is
      set again by the first frame of each burst (one that came after a wait for data), by a frame that arrives
      late, and by a jump in the timestamps, so pacing never holds more than the burst in hand: no lag builds.
    """

    JUMP_S = 2.0  # consecutive frames further apart than this in video time: a discontinuity
    LATE_S = 0.05  # a frame later than this sets the clock again
    BURST_GAP_S = 0.1  # a frame that came this long after the previous one was released starts a new burst

    def __init__(self, options: SourceOptions, clock: str):
        self._interval = 1.0 / options.max_fps if options.max_fps else None
        self._clock = clock
        self._next_due: float | None = None
        self._last_admitted: float | None = None
        self._origin: tuple[float, float] | None = None  # (video time, monotonic) the clock runs from
        self._previous: float | None = None  # the last frame's video time
        self._released = 0.0  # monotonic time the last frame went on

    def admit(self, video_time: float | None, received: float) -> bool:
        if self._interval is None:
            return True
        t = video_time if video_time is not None else received
        if self._last_admitted is not None and t < self._last_admitted:
            self._next_due = None  # the timestamps went back (a wrap, a new stream): start over
        due = self._next_due
        if due is not None and t < due - 1e-6:
            return False
        self._next_due = (t if due is None or t - due > self._interval else due) + self._interval
        self._last_admitted = t
        return True

    def wait(self, video_time: float | None, stop: threading.Event) -> None:
        if self._clock == "none" or video_time is None:
            return
        now = time.monotonic()
        jumped = self._previous is None or not 0 <= video_time - self._previous <= self.JUMP_S
        burst = self._clock == "segments" and now - self._released > self.BURST_GAP_S
        self._previous = video_time
        if self._origin is None or jumped or burst:
            self._origin = (video_time, now)
        else:
            due = self._origin[1] + (video_time - self._origin[0])
            if due > now:
                stop.wait(due - now)
            elif self._clock == "segments" and now - due > self.LATE_S:
                self._origin = (video_time, now)
        self._released = time.monotonic()


def _reason(error: BaseException) -> str:
    """An error as one line, with any secret in it redacted."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return redact(str(text).splitlines()[0])
