"""What the stream needs of a model: `load_model` returns one (an ONNX model or the stub), and a model of your own
works as well when it has this shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from framesift.predictions import PredictionLike


class Model(Protocol):
    """A model the pipeline can run.

    `prepare(frame)` makes the model input from a decoded frame (a PyAV `VideoFrame` or a BGR array): on the
    source's thread for a replayed file, on the inference thread for a live frame once it is taken; `infer(inputs)`
    returns one prediction per input, in order, on the inference thread, for up to `max_batch` inputs at once:
    a `Prediction`, or what `as_prediction` converts (`supervision.Detections` or `Classifications`, named by
    `class_names` when they carry no names and recorded with `model_id`; Roboflow Inference JSON).
    `input_size` (width, height) is None for a model that needs no input (the stub): then nothing is prepared.
    """

    @property
    def task_type(self) -> str: ...

    @property
    def model_id(self) -> str: ...

    @property
    def class_names(self) -> list[str]: ...

    @property
    def input_size(self) -> tuple[int, int] | None: ...

    @property
    def max_batch(self) -> int: ...

    def prepare(self, frame: Any) -> Any: ...

    def infer(self, inputs: Sequence[Any]) -> Sequence[PredictionLike]: ...
