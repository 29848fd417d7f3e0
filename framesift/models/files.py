"""Where a model's ONNX file is: a path, or a model id looked up in the models folder; and what other model formats
are told (how to export them to ONNX).

The models folder (`--models DIR`; by default `$XDG_DATA_HOME/framesift/models`, else
`~/.local/share/framesift/models`) maps Roboflow-style ids to files, the id with `.onnx` added:
`<project>/<version>` is `DIR/<project>/<version>.onnx`, a bare id such as `yolov8n-640` is `DIR/yolov8n-640.onnx`.
An id is one or two names of letters, digits, `-`, `_` and `.` (not starting with `.`) joined by one `/`, so it
never names a path outside the folder. `<dataset>/0` is a dataset's null model (the stub): no file.

Example:
    >>> is_model_id("people/3"), is_model_id("yolov8n-640"), is_model_id("../people/3"), is_null_model("people/0")
    (True, True, False, True)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from framesift.errors import ModelError

MODEL_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)?")
# What Ultralytics exports besides ONNX (suffixes of files and of folders), and what each is
OTHER_FORMATS = {".pt": "a PyTorch model", ".pth": "a PyTorch model", ".torchscript": "a TorchScript model",
                 ".engine": "a TensorRT engine", ".tflite": "a TensorFlow Lite model", ".pb": "a TensorFlow graph",
                 ".mlpackage": "a CoreML model", ".mlmodel": "a CoreML model", ".mnn": "an MNN model",
                 ".rknn": "an RKNN model", ".pte": "an ExecuTorch model", "_openvino_model": "an OpenVINO model",
                 "_saved_model": "a TensorFlow SavedModel", "_web_model": "a TensorFlow.js model",
                 "_ncnn_model": "an NCNN model", "_paddle_model": "a PaddlePaddle model",
                 "_imx_model": "an IMX model", "_rknn_model": "an RKNN model"}


def default_models_folder() -> Path:
    """`$XDG_DATA_HOME/framesift/models`, else `~/.local/share/framesift/models`."""
    root = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(root) / "framesift" / "models"


def is_model_id(value: str) -> bool:
    """Whether `value` has the shape of a model id (not of a file name with a model format's suffix)."""
    return MODEL_ID.fullmatch(value) is not None and _format(value) is None \
        and not value.lower().endswith(".onnx")


def is_null_model(value: str) -> bool:
    """`<dataset>/0`: the documented way to ask for a dataset's null model."""
    return re.fullmatch(r"[^/]+/0", value) is not None


def locate_model(spec: str, models: str | os.PathLike[str] | None = None) -> tuple[Path, str | None]:
    """The ONNX file `spec` names, and the model id it was found by (None for a path): an existing file is itself,
    else a model id is looked up in `models` (default: `default_models_folder()`). `ModelError` in one sentence
    when nothing is found, or when the file is another format than ONNX (saying how to export it)."""
    path = Path(spec)
    model_id = None
    if not path.exists():
        if not is_model_id(spec):
            raise ModelError(f"model file not found: {spec} (nor is it a model id: <project>/<version>, or a name "
                             "such as yolov8n-640)")
        folder = Path(models) if models is not None else default_models_folder()
        path, model_id = folder / f"{spec}.onnx", spec
        if not path.is_file():
            raise ModelError(f"model id {spec!r} names no model on this machine: there is no {path} (export the "
                             "model to ONNX there, or give the models folder with --models DIR)")
    kind = _format(path.name)
    if kind is not None:
        weights = spec if kind == "a PyTorch model" else f"{path.name[:-len(_suffix(path.name))]}.pt"
        raise ModelError(f"{spec} is {kind}, and framesift runs ONNX files: export one with `yolo export "
                         f"model={weights} format=onnx` (framesift builds TensorRT engines itself with "
                         "--device tensorrt)")
    if not path.is_file():
        raise ModelError(f"{spec} is a folder, not an ONNX model file")
    return path, model_id


def _suffix(name: str) -> str:
    return next((s for s in OTHER_FORMATS if name.lower().endswith(s)), "")


def _format(name: str) -> str | None:
    suffix = _suffix(name.rstrip("/"))
    return OTHER_FORMATS[suffix] if suffix else None
