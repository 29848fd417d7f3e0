"""Sinks: where every inferred frame can go besides the collector.

A sink is anything with `write(frame, prediction)` and `close()`. Each one does its I/O on its own thread behind a
bounded queue (`BackgroundSink`; a `Pipeline` wraps every sink it is given), so the inference thread never waits
for a disk or an encoder on a live frame: a full queue drops it for that sink and counts it (the pipeline's
snapshot and `--summary` show `sinks: {name: {dropped, failed}}`). A replayed file's frame waits for room instead,
as its thread waits for the model: the video and the predictions of a replay hold every frame.

- `PredictionsFile(path)`: one JSON line per inferred frame (`--predictions FILE.jsonl`);
- `AnnotatedVideo(path)`: the frames with boxes and labels drawn by supervision, encoded to H.264 (`--save-video`);
  with several sources, one file per source (`out-<source>.mp4`).
"""

from __future__ import annotations

import json
import logging
import queue
from pathlib import Path
from typing import Any, Protocol

from framesift.frames import Frame
from framesift.predictions import DetectionPrediction, Prediction
from framesift.resources import Resource, Service
from framesift.stats import SinkStats
from framesift.workers import Worker

log = logging.getLogger(__name__)


class Sink(Protocol):
    def write(self, frame: Frame, prediction: Prediction) -> None: ...

    def close(self) -> None: ...


class PredictionsFile(Resource):
    """One JSON line per inferred frame, appended to `path`."""

    def __init__(self, path: str | Path):
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, frame: Frame, prediction: Prediction) -> None:
        record = {"source": frame.source, "frame_id": frame.frame_id,
                  "captured_at": frame.captured_at.isoformat().replace("+00:00", "Z"),
                  "video_time": frame.video_time, "prediction": prediction.to_json()}
        if frame.outputs is not None:
            record["outputs"] = frame.outputs  # a workflow's declared outputs
        self._file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self._file.close()


class AnnotatedVideo(Resource):
    """The frames with their detections drawn, encoded to H.264 (one file per source with `several_sources`)."""

    def __init__(self, path: str | Path, fps: int = 30, several_sources: bool = False):
        self._path, self._fps, self._several = Path(path), fps, several_sources
        self._outputs: dict[str, tuple[Any, Any]] = {}
        self._boxes: Any = None  # supervision's annotators, made on the first frame with detections
        self._labels: Any = None

    def write(self, frame: Frame, prediction: Prediction) -> None:
        import av
        import supervision as sv

        image = frame.bgr().copy()
        if isinstance(prediction, DetectionPrediction) and len(prediction):
            if self._boxes is None:
                self._boxes, self._labels = sv.BoxAnnotator(), sv.LabelAnnotator()
            detections = prediction.to_detections()
            labels = [f"{n} {c:.2f}" for n, c in zip(prediction.class_name, prediction.confidence, strict=True)]
            image = self._labels.annotate(self._boxes.annotate(image, detections), detections, labels=labels)
        container, stream = self._output(frame)
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
            container.mux(packet)

    def _output(self, frame: Frame) -> tuple[Any, Any]:
        import av

        if frame.source not in self._outputs:
            path = self._path.with_name(f"{self._path.stem}-{frame.source}{self._path.suffix}") \
                if self._several else self._path
            container = av.open(str(path), "w")
            stream = container.add_stream("libx264", rate=self._fps)
            stream.width, stream.height, stream.pix_fmt = frame.width - frame.width % 2, \
                frame.height - frame.height % 2, "yuv420p"
            self._outputs[frame.source] = (container, stream)
        return self._outputs[frame.source]

    def close(self) -> None:
        outputs, self._outputs = self._outputs, {}
        for container, stream in outputs.values():
            for packet in stream.encode(None):
                container.mux(packet)
            container.close()


class BackgroundSink(Service):
    """Runs a sink on its own thread behind a queue of `capacity` frames; overflow is counted in `dropped`, writes
    that raised in `failed`. `write` raises `WorkerFailed` once the thread has died (also while it waits). The
    thread starts with `start()` (the pipeline's, or `with`), or else with the first `write`."""

    def __init__(self, sink: Sink, capacity: int = 64):
        self.sink = sink
        self.name = type(sink).__name__
        self.dropped = 0
        self.failed = 0
        self._queue: queue.Queue[tuple[Frame, Prediction] | None] = queue.Queue(capacity)
        self._thread = Worker(f"sink {self.name}", self._run)
        self._closed = False

    def start(self) -> None:
        """Start the sink's thread (idempotent)."""
        self._thread.start_once()

    def check(self) -> None:
        """Raise `WorkerFailed` when the sink's thread has died."""
        self._thread.check()

    def write(self, frame: Frame, prediction: Prediction, wait: bool = False) -> None:
        """Queue a frame; when the queue is full, drop it (counted), or with `wait` wait for room."""
        self.check()
        if not self._thread.started:
            self.start()  # never a queue that nothing empties
        if not wait:
            try:
                self._queue.put_nowait((frame, prediction))
            except queue.Full:
                self.dropped += 1
            return
        while True:
            try:
                self._queue.put((frame, prediction), timeout=0.1)
                return
            except queue.Full:
                self.check()  # a dead sink thread never makes room

    def stats(self) -> SinkStats:
        return SinkStats(dropped=self.dropped, failed=self.failed)

    def close(self) -> None:
        """Write what is queued, then close the sink; idempotent. Raises `WorkerFailed` when the sink's thread had
        died (what it was given after that was never written)."""
        if self._closed:
            return
        self._closed = True
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        if self._thread.started:
            self._thread.join()
        self.sink.close()
        self.check()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self.sink.write(*item)
            except Exception as error:
                self.failed += 1
                if self.failed == 1:
                    log.error("the %s sink failed (%s: %s); later failures are counted only", self.name,
                              type(error).__name__, error)
                    log.debug("the %s sink's traceback", self.name, exc_info=True)
