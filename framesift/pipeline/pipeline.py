"""The threaded decode → infer → collect pipeline (SPEC §9, DESIGN.md "Data flow and threads").

```
source threads (one per source)   inference thread                  collector threads (one per collector)
decode, pace, prepare model input ─▶ newest frame of each ready source ─▶ limits, JPEG, write
(of a replayed file's frames, and    batched (live sources on the CPU:    (each collector's own)
on a GPU of every frame)             one at a time, in turn; on a GPU
bounded slot per source              every call of one size); a live
                                     frame's model input made now (on
                                     the CPU); the workflow's steps
                                     (models, crops, filters,
                                     strategies: µs), callbacks,
                                     sinks, metrics
```

What runs on each frame is a `Workflow`: given a model (and a collector), the pipeline runs the one-model,
one-collector workflow, through the same code as any other.

Every thread is a `Worker`: one that dies of an unexpected exception stops the pipeline, and `join()` raises
`WorkerFailed` naming it (as does `close()`, if `join()` never did). The collectors' threads (each collector's own,
the follower of its configuration, a remote target's outbox sender) and the sinks' are checked by the inference
thread at every turn of its loop (at least every 50 ms), so one that dies ends the run even when no frame comes.
An exception in a callback or a sink is only logged and counted: the stream goes on.

Example:
    >>> with Pipeline(["rtsp://cam/1"], load_model("yolov8n.onnx"), collector) as pipeline:  # doctest: +SKIP
    ...     pipeline.run()
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from framesift.errors import InputError, WorkerFailed
from framesift.frames import DrawAhead, Frame, SourceSpec
from framesift.models.model import Model
from framesift.pipeline.sinks import BackgroundSink, Sink
from framesift.predictions import Prediction
from framesift.resources import Resource
from framesift.stats import StreamStats
from framesift.stream.metrics import Metrics
from framesift.stream.slots import FrameSlots
from framesift.stream.sources import SourceOptions, SourceReader, StatusCallback
from framesift.workers import Worker
from framesift.workflows.engine import StepFailed, Workflow

if TYPE_CHECKING:
    from framesift.collectors.collector import Collector

log = logging.getLogger(__name__)

PredictionCallback = Callable[[Frame, Prediction], None]
STOP_GRACE_S = 0.5  # how long a stop waits for the source threads; one blocked on the network ends by itself


class Pipeline(Resource):
    """Reads the sources, runs the model on their frames, hands predictions to callbacks, sinks and the collector.

    `model` is a model (with `collector`, the one collector of its predictions) or a `Workflow`. `start()` checks
    file sources (raising `SourceError`) and starts the threads; `join()` waits for the end of all sources (or
    `stop()`) and raises `WorkerFailed` if a thread died; `close(drain_timeout)` stops, closes the sinks and
    drains the collectors, which the pipeline owns from then on. Sinks run on their own threads.
    """

    def __init__(self, sources: Sequence[str | SourceSpec], model: Model | Workflow,
                 collector: Collector | None = None, *,
                 options: SourceOptions | None = None, on_prediction: Sequence[PredictionCallback] = (),
                 sinks: Sequence[Sink] = (), on_status: StatusCallback | None = None,
                 duration: float | None = None):
        self.specs = [s if isinstance(s, SourceSpec) else SourceSpec(s, f"source{i}") for i, s in enumerate(sources)]
        names = [s.name for s in self.specs]
        if not names or len(set(names)) != len(names):
            raise InputError("give at least one source, each with its own name")
        if isinstance(model, Workflow) and collector is not None:
            raise InputError("a workflow holds its own collectors: give the collector to its step, not here")
        self.workflow = model if isinstance(model, Workflow) else Workflow.single(model, collector)
        self.workflow.fix_batches(len(self.specs))  # on a GPU: one batch size, whoever drops out or comes back
        self.options = options = options or SourceOptions()
        self.metrics = Metrics(names)
        self._callbacks, self._duration = list(on_prediction), duration
        self._sinks = [s if isinstance(s, BackgroundSink) else BackgroundSink(s) for s in sinks]
        self._by_name = {s.name: s for s in self.specs}
        self._stop = threading.Event()
        self._slots = FrameSlots()
        self._deferred: deque[Callable[[], None]] = deque()  # readers' checkpoints that no frame carries
        prepare = self.workflow.prepare if self.workflow.needs_input else None
        self._readers = []
        for spec in self.specs:
            reader = SourceReader(spec, options, self._slots, self.metrics, prepare, self._stop, on_status,
                                  on_failure=self._fail, draw=self._draws_ahead(spec),
                                  prepare_live=self.workflow.on_gpu, defer=self._deferred.append)
            self._slots.add(spec.name, reader.live)
            self._readers.append(reader)
        self._inference = Worker("inference", self._infer_loop, on_failure=self._fail)
        self._first_left: dict[str, tuple[str, int]] = {}  # an archive's first frame left uninferred at the stop
        self._started_at: float | None = None
        self._failure: WorkerFailed | None = None
        self._failure_raised = False
        self._closed = False

    def _draws_ahead(self, spec: SourceSpec) -> DrawAhead | None:
        """What draws a replayed file's frames before they are decoded, so that only sampled ones are: when its
        sampling does not look at images, nothing else needs every frame (no sink, no callback) and
        `decode_all` is off."""
        if self.options.decode_all or self._sinks or self._callbacks:
            return None
        return self.workflow.draws_ahead(spec)

    def start(self) -> None:
        for reader in self._readers:
            reader.check()
        self.workflow.start()
        for sink in self._sinks:
            sink.start()
        self._started_at = time.monotonic()
        for reader in self._readers:
            reader.start()
        self._inference.start()

    def add_callback(self, callback: PredictionCallback) -> None:
        """Call `callback(frame, prediction)` on the inference thread after each frame inferred from now on, like
        those given as `on_prediction` (a watcher added later: the live page). It must return at once. Unlike an
        `on_prediction` callback it does not make a replay decode every frame: where only sampled frames are
        decoded (`framesift.stream.sampled_decoding`), it sees those."""
        self._callbacks = [*self._callbacks, callback]  # a new list: the inference thread may be iterating the old

    def stop(self) -> None:
        """Stop decoding; the frames being inferred finish, waiting ones are counted as dropped."""
        self._stop.set()
        self._slots.wake()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the end; True when the pipeline has finished (or never started). Raises `WorkerFailed` when a
        thread of the pipeline died."""
        if self._started_at is not None:
            self._inference.join(timeout)
        finished = not self._inference.is_alive()
        if finished and self._failure is not None:
            self._failure_raised = True
            raise self._failure
        return finished

    def run(self) -> None:
        self.start()
        self.join()

    def close(self, drain_timeout: float = 10.0) -> None:
        """Stop, close the sinks and give the collector `drain_timeout` seconds to write what is queued. Closing
        again does nothing. Raises `WorkerFailed` for a thread that died, unless `join()` raised it already."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        try:
            if self._started_at is not None:
                self._inference.join()
                for reader in self._readers:  # written once the datapoints before are: in the drain below
                    left = self._first_left.get(reader.spec.name)
                    self.workflow.when_written(functools.partial(reader.confirm, left))
            for sink in self._sinks:
                try:
                    sink.close()
                except WorkerFailed as error:  # its thread died: what it was given was not all written
                    self._failure = self._failure or error
                except Exception as error:
                    log.error("closing the %s sink failed: %s", sink.name, error)
        finally:
            try:
                self.workflow.close(drain_timeout)
            except WorkerFailed as error:  # a collector's thread died: the pipeline's failure, unless one came first
                self._failure = self._failure or error
        if self._failure is not None and not self._failure_raised:
            self._failure_raised = True
            raise self._failure

    def _fail(self, worker: Worker) -> None:
        """A thread died: remember the first such failure and stop everything."""
        if self._failure is None:
            self._failure = worker.failure()
        self.stop()

    @property
    def live(self) -> bool:
        """True when any source is live (a stream, a webcam, or a file replayed in real time)."""
        return any(reader.live for reader in self._readers)

    @property
    def elapsed(self) -> float:
        return 0.0 if self._started_at is None else time.monotonic() - self._started_at

    def frames_left(self) -> list[tuple[str, int]]:
        """(file, frames already replayed) of every file the sources will read, once started."""
        return [left for reader in self._readers if reader.finite for left in reader.frames_left()]

    def snapshot(self) -> StreamStats:
        """The statistics of the stream, its sources and sinks, and (when collecting) of the collector."""
        return StreamStats.of(self.metrics.sources(), elapsed_s=self.elapsed, errors=self.metrics.errors(),
                              inference_s=self.metrics.inference(),
                              sinks={sink.name: sink.stats() for sink in self._sinks},
                              collectors=self.workflow.snapshot(),
                              fleet=None if self.options.fleet is None else self.options.fleet.stats())

    # -- the inference thread ---------------------------------------------------------------------------------
    def _infer_loop(self) -> None:
        try:
            while True:
                if self._duration is not None and self.elapsed >= self._duration:
                    self.stop()
                self._check_threads()
                if self._deferred and not self._slots.pending():  # the frames put before it were all submitted
                    self.workflow.when_written(self._deferred.popleft())
                frames = self._slots.take(self._frames_per_call(), timeout=0.05)
                if frames:
                    self._process(frames)
                    for frame in frames:
                        if frame.checkpoint is not None:
                            self.workflow.when_written(frame.checkpoint)
                elif self._stop.is_set() or not any(r.is_alive() for r in self._readers):
                    if not self._slots.pending():
                        break
        finally:
            self._stop.set()
            self._join_readers()  # first: a frame they finish decoding now is refused by the slots, and counted
            for frame in self._slots.drain():
                self.metrics.dropped(frame.source, "shutdown")
                if frame.recording is not None:
                    self._first_left.setdefault(frame.source, (frame.recording, frame.frame_id))

    def _check_threads(self) -> None:
        """Raise `WorkerFailed` when a thread of a collector or of a sink has died: it ends the run, frames or none
        (a few attribute reads)."""
        self.workflow.check()
        for sink in self._sinks:
            sink.check()

    def _frames_per_call(self) -> int:
        """One frame a call when a source is live and the model runs on the CPU: there a batch across sources took
        N times as long as one frame and only aged every frame; else the frame of every ready source, batched (on
        a GPU, where the model pads every call to the one size `Workflow.fix_batches` warmed; replayed files ran
        about 8 % faster batched on the CPU too). benchmarks/RESULTS.md, "Many live cameras"."""
        return 1 if self.workflow.on_cpu and self.live else self.workflow.max_batch

    def _join_readers(self) -> None:
        """Wait a moment for the source threads; one blocked on the network (a camera that accepts connections
        but sends nothing) is left to end by itself at its timeout (it holds no collected data)."""
        deadline = time.monotonic() + STOP_GRACE_S
        for reader in self._readers:
            reader.join(max(0.0, deadline - time.monotonic()))
            if reader.is_alive():
                waited = "" if reader.waiting_since is None else \
                    f" (no data for {time.monotonic() - reader.waiting_since:.0f} s)"
                log.warning("source %s is still waiting for its camera%s; its thread ends by itself within %.0f s",
                            reader.spec.name, waited, max(self.options.open_timeout, self.options.read_timeout))

    def _process(self, frames: list[Frame]) -> None:
        started = time.monotonic()
        try:
            results = self.workflow.run(frames, self._by_name)  # the collectors' strategies run in there (µs)
        except StepFailed as error:
            if self.metrics.error("model") == 1:
                log.error("a model failed on %d frame(s) (%s); later failures are counted only", len(frames), error)
            for frame in frames:
                self.metrics.dropped(frame.source, "model_error")
            return
        now = time.monotonic()
        self.metrics.ran(now - started)
        for frame, result in zip(frames, results, strict=True):
            self.metrics.inferred(frame.source, now - frame.received, now)
            frame.outputs = result.outputs or None
            for callback in self._callbacks:
                self._guarded("callback", callback, frame, result.prediction)
            for sink in self._sinks:  # a replayed frame waits for room: a replay's video holds every frame
                self._guarded(sink.name, sink.write, frame, result.prediction, not self._slots.live(frame.source))

    def _guarded(self, where: str, fn: Callable[..., Any], *args: Any) -> None:
        """Call a callback or a sink; what it raises is logged and counted (a sink whose thread died ends the run)."""
        try:
            fn(*args)
        except WorkerFailed:
            raise
        except Exception as error:
            if self.metrics.error(where) == 1:
                log.error("%s raised %s: %s; the stream goes on (later errors are counted only)", where,
                          type(error).__name__, error)
                log.debug("the %s traceback", where, exc_info=True)
