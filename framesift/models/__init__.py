"""Models: Ultralytics ONNX exports run by ONNX Runtime, and the stub.

Example:
    >>> model = load_model("stub")
    >>> model.predict([None])[0].to_json()["is_stub"]
    True
"""

from __future__ import annotations

import os
from pathlib import Path

from framesift import defaults
from framesift.errors import ModelError
from framesift.models.files import default_models_folder, is_null_model, locate_model
from framesift.models.metadata import read_classes_file
from framesift.models.model import Model
from framesift.models.stub import StubModel

DEMO_MODEL = Path(__file__).parent / "assets" / "demo-shapes.onnx"


def load_model(spec: str, *, device: str = defaults.DEVICE, confidence: float = defaults.CONFIDENCE,
               iou: float = defaults.IOU, classes: str | os.PathLike[str] | None = None, model_id: str | None = None,
               max_detections: int = defaults.MAX_DETECTIONS, class_agnostic: bool = False,
               max_candidates: int = defaults.MAX_CANDIDATES,
               multi_label: bool = False, models: str | os.PathLike[str] | None = None) -> Model:
    """A model from `spec`: a path to an `.onnx` file, a model id found in the models folder `models` (see
    `framesift.models.files`: `<project>/<version>` is `<models>/<project>/<version>.onnx`), `<dataset>/0` (that
    dataset's null model: the stub), `stub`, `stub:<task type>` or `demo` (the bundled one).

    Returns a `Model`: `task_type`, `class_names`, `input_size` (None for the stub), `max_batch`, `prepare(frame)`,
    `infer(prepared)`; and `predict(frames)`, which does both. A model found by its id records that id.
    `class_agnostic` (NMS across classes), `max_candidates` (the most boxes entering NMS) and `multi_label` (a
    classifier's scores read per class) are `OnnxModel`'s.
    """
    names = read_classes_file(classes) if classes is not None else None
    if spec == "stub" or spec.startswith("stub:"):
        task = spec.partition(":")[2] or "object-detection"
        return StubModel(task, model_id or "stub", names or ())
    if is_null_model(spec) and not Path(spec).exists():
        return StubModel("object-detection", model_id or spec, names or ())
    from framesift.models.onnx_model import OnnxModel

    path, found_by = (DEMO_MODEL, "demo-shapes") if spec == "demo" else locate_model(spec, models)
    return OnnxModel(str(path), device=device, confidence=confidence, iou=iou, class_names=names,
                     model_id=model_id or found_by, max_detections=max_detections,
                     class_agnostic=class_agnostic, max_candidates=max_candidates, multi_label=multi_label)


__all__ = ["DEMO_MODEL", "Model", "ModelError", "StubModel", "default_models_folder", "load_model"]
