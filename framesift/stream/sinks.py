"""Sinks: where every inferred frame can go besides the collector.

Each sink does its I/O on its own thread behind a bounded queue (`BackgroundSink`), so the inference thread
never waits for a disk or an encoder; a full queue drops the frame for that sink and counts it (the pipeline's
snapshot and `--summary` show `sinks: {name: {dropped, failed}}`).

- `PredictionsFile(path)`: one JSON line per inferred frame (`--predictions FILE.jsonl`);
- `AnnotatedVideo(path)`: the frames with boxes and labels drawn by supervision, encoded to H.264 (`--save-video`);
  with several sources, one file per source (`out-<source>.mp4`).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from pathlib import Path
from typing import Any

from framesift.predictions import DetectionPrediction, Prediction
from framesift.stream.frames import Frame

log = logging.getLogger(__name__)


class PredictionsFile:
    def __init__(self, path: str | Path):
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, frame: Frame, prediction: Prediction) -> None:
        record = {"source": frame.source, "frame_id": frame.frame_id,
                  "captured_at": frame.captured_at.isoformat().replace("+00:00", "Z"),
                  "video_time": frame.video_time, "prediction": prediction.to_json()}
        self._file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self._file.close()


class AnnotatedVideo:
    def __init__(self, path: str | Path, fps: int = 30, several_sources: bool = False):
        self._path, self._fps, self._several = Path(path), fps, several_sources
        self._outputs: dict[str, tuple[Any, Any]] = {}
        self._boxes = self._labels = None

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
        for container, stream in self._outputs.values():
            for packet in stream.encode(None):
                container.mux(packet)
            container.close()


class BackgroundSink:
    """Runs a sink on its own thread behind a queue of `capacity` frames; overflow is counted in `dropped`."""

    def __init__(self, sink: Any, capacity: int = 64):
        self.sink = sink
        self.dropped = 0
        self.failed = 0
        self._queue: queue.Queue = queue.Queue(capacity)
        self._thread = threading.Thread(target=self._run, name=f"framesift-sink-{type(sink).__name__}", daemon=True)
        self._thread.start()

    def write(self, frame: Frame, prediction: Prediction) -> None:
        try:
            self._queue.put_nowait((frame, prediction))
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self.sink.close()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self.sink.write(*item)
            except Exception:
                self.failed += 1
                if self.failed == 1:
                    log.exception("%s failed; later failures are counted only", type(self.sink).__name__)
