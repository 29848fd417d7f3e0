"""The models a server answers with: found by id in the models folder, loaded on first use, and run by one
inference thread that batches the requests waiting for the same model.

A model id is resolved only inside the models folder (`<project>/<version>` is `<models>/<project>/<version>.onnx`):
a request's id never names a path. `<dataset>/0` is the dataset's null model, the stub, whose task type is the
server's `stub_tasks` entry for that dataset, else `stub_task` (Roboflow's server asks its API for the project's type;
framesift is told).

The inference queue holds at most `max_pending` requests; a request finding it full is `Overloaded` (503). The
thread takes the oldest request and, when `batch_wait` is above 0 (on a GPU), waits up to that long for more
requests of the same model and thresholds, up to the model's batch (on a GPU, the one size `GPU_BATCH` each model
is warmed for): one model call for them all.

Example:
    >>> registry = ModelRegistry("models", stub_tasks={"asl": "instance-segmentation"})  # doctest: +SKIP
    >>> registry.get("asl/0").task_type                                                # doctest: +SKIP
    'instance-segmentation'
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framesift.errors import ModelError
from framesift.models import StubModel, default_models_folder, load_model
from framesift.models.files import is_model_id, is_null_model
from framesift.models.model import Model
from framesift.predictions import Prediction
from framesift.resources import Resource, Service
from framesift.serve.errors import HttpError, Overloaded, UnknownModel
from framesift.workers import Worker

GPU_BATCH = 8  # images per model call on a GPU: requests waiting together share one call of this size


class ModelRegistry(Resource):
    """The loaded models by id; `get` loads one on first use (one load at a time)."""

    def __init__(self, models: str | os.PathLike[str] | None = None, *, device: str = "auto",
                 confidence: float = 0.25, iou: float = 0.45, stub_task: str = "object-detection",
                 stub_tasks: dict[str, str] | None = None, batch: int = GPU_BATCH):
        self.folder = Path(models) if models is not None else default_models_folder()
        self.device, self.confidence, self.iou, self.batch = device, confidence, iou, batch
        self.stub_task, self.stub_tasks = stub_task, dict(stub_tasks or {})
        for task in (stub_task, *self.stub_tasks.values()):
            StubModel(task)  # refuses an unknown task type now
        self._loaded: dict[str, Model] = {}
        self._lock = threading.Lock()

    def get(self, model_id: str) -> Model:
        """The model of `model_id`, loaded now if it is not yet; `UnknownModel` (404) when there is none."""
        model = self._loaded.get(model_id)
        if model is not None:
            return model
        if not is_model_id(model_id):
            raise UnknownModel(f"{model_id[:80]!r} is no model id (<project>/<version>, or a name such as "
                               "yolov8n-640)")
        with self._lock:
            if model_id not in self._loaded:
                self._loaded[model_id] = self._load(model_id)
            return self._loaded[model_id]

    def _load(self, model_id: str) -> Model:
        if is_null_model(model_id):
            dataset = model_id.partition("/")[0]
            return StubModel(self.stub_tasks.get(dataset, self.stub_task), model_id)
        path = self.folder / f"{model_id}.onnx"
        if not path.is_file():
            raise UnknownModel(f"model {model_id!r} is not in this server's models folder (it looks for "
                               f"<models>/{model_id}.onnx)")
        try:
            model = load_model(str(path), device=self.device, confidence=self.confidence, iou=self.iou,
                               model_id=model_id)
        except ModelError as error:
            raise HttpError(f"model {model_id!r} cannot be loaded: {error}", status=422) from None
        if getattr(model, "on_gpu", False) and hasattr(model, "fix_batch"):
            model.fix_batch(min(self.batch, model.max_batch))  # one warmed shape: no request waits for planning
        return model

    def loaded(self) -> list[dict[str, Any]]:
        """What `/model/registry` lists: each loaded model's id, task type, batch size and input size."""
        return [describe(model) for model in list(self._loaded.values())]

    def remove(self, model_id: str) -> None:
        with self._lock:
            self._loaded.pop(model_id, None)

    def close(self) -> None:
        with self._lock:
            self._loaded.clear()


def describe(model: Model) -> dict[str, Any]:
    """A model as the client's `ModelDescription` reads it."""
    size = model.input_size
    return {"model_id": model.model_id, "task_type": model.task_type, "batch_size": model.max_batch,
            "input_height": size[1] if size else None, "input_width": size[0] if size else None}


@dataclass
class _Job:
    model: Model
    inputs: list[Any]
    confidence: float
    iou: float
    done: Future[list[Prediction]] = field(default_factory=Future)

    def joins(self, other: _Job) -> bool:
        return other.model is self.model and (other.confidence, other.iou) == (self.confidence, self.iou)


class InferenceQueue(Service):
    """One thread running the models, fed by a bounded queue of requests (`submit`); started by `start()` (`with`),
    or else by the first request."""

    def __init__(self, max_pending: int = 64, batch_wait: float = 0.0):
        self.max_pending, self.batch_wait = max_pending, batch_wait
        self.overloaded = 0  # requests refused because the queue was full
        self.batches = 0  # model calls
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = Worker("serve inference", self._run)

    def start(self) -> None:
        """Start the inference thread (idempotent)."""
        self._thread.start_once()

    def submit(self, model: Model, inputs: list[Any], confidence: float, iou: float) -> Future[list[Prediction]]:
        """Queue prepared inputs of `model`; the future holds their predictions. `Overloaded` when full."""
        job = _Job(model, inputs, confidence, iou)
        if not self._thread.started and not self._closed:
            self.start()
        with self._cond:
            if self._closed or not self._thread.is_alive():
                raise HttpError("the server is stopping", status=503, retry_after=1)
            if len(self._jobs) >= self.max_pending:
                self.overloaded += 1
                raise Overloaded(f"all {self.max_pending} places of the inference queue are taken: retry later",
                                 retry_after=1)
            self._jobs.append(job)
            self._cond.notify_all()
        return job.done

    def depth(self) -> int:
        return len(self._jobs)

    def check(self) -> None:
        """Raise `WorkerFailed` when the inference thread has died."""
        self._thread.check()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            first = batch[0]
            model = first.model
            try:
                if hasattr(model, "confidence"):  # thresholds are the request's; only this thread runs models
                    model.confidence, model.iou = first.confidence, first.iou  # type: ignore[attr-defined]
                predictions = list(model.infer([item for job in batch for item in job.inputs]))
                self.batches += 1
            except Exception as error:  # a model failing on an input fails those requests, not the server
                for job in batch:
                    job.done.set_exception(error)
                continue
            start = 0
            for job in batch:
                job.done.set_result(predictions[start:start + len(job.inputs)])  # type: ignore[arg-type]
                start += len(job.inputs)

    def _next_batch(self) -> list[_Job] | None:
        """The oldest job and, within `batch_wait`, the later ones of the same model and thresholds that fit."""
        with self._cond:
            while not self._jobs:
                if self._closed:
                    return None
                self._cond.wait()
            batch = [self._jobs.popleft()]
            model = batch[0].model
            room = (getattr(model, "call_batch", None) or model.max_batch) - len(batch[0].inputs)
            deadline = time.monotonic() + self.batch_wait
            while room > 0:
                joining = next((job for job in self._jobs if batch[0].joins(job) and len(job.inputs) <= room), None)
                if joining is not None:
                    self._jobs.remove(joining)
                    batch.append(joining)
                    room -= len(joining.inputs)
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    break
                self._cond.wait(left)
            return batch

    def close(self) -> None:
        """Answer what is queued, then stop (idempotent)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.started:
            self._thread.join(30)
