"""The stub model: predicts nothing and costs nothing, for dataset bootstrapping before any model exists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from framesift.errors import ModelError
from framesift.predictions import TASK_TYPES, Prediction, StubPrediction


class StubModel:
    """`stub` or `stub:<task type>`. Only a `random` strategy ever matches its predictions."""

    input_size = None  # needs no model input: the stream prepares nothing for it
    max_batch = 64
    device = "none"

    def __init__(self, task_type: str = "object-detection", model_id: str = "stub",
                 class_names: Sequence[str] = ()):
        if task_type not in TASK_TYPES:
            raise ModelError(f"unknown task type {task_type!r} for the stub (expected one of {', '.join(TASK_TYPES)})")
        self.task_type = task_type
        self.model_id = model_id
        self.class_names = list(class_names)  # never predicted; they set up a new labeling project

    def prepare(self, frame: Any) -> None:
        return None

    def infer(self, prepared: Sequence[Any]) -> list[Prediction]:
        return [StubPrediction(self.model_id, self.task_type) for _ in prepared]

    def predict(self, frames: Sequence[Any]) -> list[Prediction]:
        return self.infer(frames)
