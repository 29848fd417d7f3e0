"""The threaded decode → infer → collect pipeline (SPEC §9, DESIGN.md "Data flow and threads").

```
source threads (one per source)   inference thread                  collector thread
decode, pace, prepare model input ─▶ newest frame of each ready source ─▶ limits, JPEG, write
bounded slot per source              model.infer, callbacks, sinks,       (the collector's own)
                                      strategies (µs), metrics
```

Example:
    >>> pipeline = Pipeline(["rtsp://cam/1"], load_model("yolov8n.onnx"), collector)   # doctest: +SKIP
    >>> pipeline.start(); pipeline.join()                                              # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from framesift.predictions import Prediction
from framesift.stream.frames import Frame
from framesift.stream.metrics import Metrics
from framesift.stream.slots import FrameSlots
from framesift.stream.sources import SourceOptions, SourceReader, SourceSpec, StatusCallback, check_file

log = logging.getLogger(__name__)

PredictionCallback = Callable[[Frame, Prediction], None]
REPLAY_SLOT = 2  # a file's thread decodes one frame ahead while the model works


class Sink(Protocol):
    def write(self, frame: Frame, prediction: Prediction) -> None: ...

    def close(self) -> None: ...


class Pipeline:
    """Reads the sources, runs the model on their frames, hands predictions to callbacks, sinks and the collector.

    `start()` checks file sources (raising `SourceError`) and starts the threads; `join()` waits for the end of
    all sources (or `stop()`); `close(drain_timeout)` stops, closes the sinks and drains the collector.
    """

    def __init__(self, sources: Sequence[str | SourceSpec], model: Any, collector: Any = None, *,
                 options: SourceOptions | None = None, on_prediction: Sequence[PredictionCallback] = (),
                 sinks: Sequence[Sink] = (), on_status: StatusCallback | None = None,
                 duration: float | None = None):
        self.specs = [s if isinstance(s, SourceSpec) else SourceSpec(s, f"source{i}") for i, s in enumerate(sources)]
        names = [s.name for s in self.specs]
        if not names or len(set(names)) != len(names):
            raise ValueError("give at least one source, each with its own name")
        self.model, self.collector = model, collector
        self.options = options = options or SourceOptions()
        self.metrics = Metrics(names)
        self._callbacks, self._sinks, self._duration = list(on_prediction), list(sinks), duration
        self._collect = {s.name: not s.disable_active_learning for s in self.specs}
        self._urls = {s.name: s.url for s in self.specs}  # the collector records them redacted
        self._stop = threading.Event()
        self._slots = FrameSlots()
        prepare = model.prepare if getattr(model, "input_size", None) is not None else None
        self._readers = []
        for spec in self.specs:
            reader = SourceReader(spec, options, self._slots, self.metrics, prepare, self._stop, on_status)
            self._slots.add(spec.name, reader.live, 1 if reader.live else REPLAY_SLOT)
            self._readers.append(reader)
        self._inference = threading.Thread(target=self._infer_loop, name="framesift-inference", daemon=True)
        self._started_at: float | None = None

    def start(self) -> None:
        for spec in self.specs:
            check_file(spec)
        self._started_at = time.monotonic()
        for reader in self._readers:
            reader.start()
        self._inference.start()

    def stop(self) -> None:
        """Stop decoding; the frames being inferred finish, waiting ones are counted as dropped."""
        self._stop.set()
        self._slots.wake()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the end; True when the pipeline has finished (or never started)."""
        if self._started_at is not None:
            self._inference.join(timeout)
        return not self._inference.is_alive()

    def run(self) -> None:
        self.start()
        self.join()

    def close(self, drain_timeout: float = 10.0) -> None:
        """Stop, close the sinks and give the collector `drain_timeout` seconds to write what is queued."""
        self.stop()
        self.join()
        for sink in self._sinks:
            try:
                sink.close()
            except Exception:
                log.exception("closing a sink failed")
        if self.collector is not None:
            self.collector.close(drain_timeout)

    @property
    def live(self) -> bool:
        """True when any source is live (a stream, a webcam, or a file replayed in real time)."""
        return any(reader.live for reader in self._readers)

    @property
    def elapsed(self) -> float:
        return 0.0 if self._started_at is None else time.monotonic() - self._started_at

    def snapshot(self) -> dict[str, Any]:
        """Metrics of the stream and, when collecting, the collector's counters under `collector`."""
        snap = self.metrics.snapshot()
        snap["elapsed_s"] = self.elapsed
        snap["sinks"] = {type(getattr(s, "sink", s)).__name__: {"dropped": getattr(s, "dropped", 0),
                                                              "failed": getattr(s, "failed", 0)}
                         for s in self._sinks}
        if self.collector is not None:
            snap["collector"] = self.collector.snapshot()
        return snap

    # -- the inference thread ---------------------------------------------------------------------------------
    def _infer_loop(self) -> None:
        try:
            while True:
                if self._duration is not None and self.elapsed >= self._duration:
                    self.stop()
                frames = self._slots.take(self.model.max_batch, timeout=0.05)
                if frames:
                    self._process(frames)
                elif self._stop.is_set() or not any(r.is_alive() for r in self._readers):
                    if not self._slots.pending():
                        break
        finally:
            self._stop.set()
            for frame in self._slots.drain():
                self.metrics.dropped(frame.source, "shutdown")
            for reader in self._readers:
                reader.join(timeout=self.options.read_timeout + 1)

    def _process(self, frames: list[Frame]) -> None:
        try:
            predictions = self.model.infer([f.model_input for f in frames])
        except Exception as error:
            log.error("the model failed on %d frame(s): %s", len(frames), error)
            self.metrics.error("model")
            for frame in frames:
                self.metrics.dropped(frame.source, "model_error")
            return
        now = time.monotonic()
        for frame, prediction in zip(frames, predictions, strict=True):
            self.metrics.inferred(frame.source, now - frame.received, now)
            for callback in self._callbacks:
                self._guarded("callback", callback, frame, prediction)
            for sink in self._sinks:
                self._guarded(type(sink).__name__, sink.write, frame, prediction)
            if self.collector is not None and self._collect[frame.source]:
                self.collector.submit(frame, prediction, source=self._urls[frame.source],
                                      frame_id=frame.frame_id, captured_at=frame.captured_at)

    def _guarded(self, where: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s raised; the stream goes on", where)
            self.metrics.error(where)
