"""What an Ultralytics ONNX export says about itself: task, class names, input size, keypoint shape, and whether its
graph ends in its own NMS (end-to-end).

Ultralytics writes `names` as a Python dict literal (`{0: 'person', 1: 'car'}`); it is read with
`ast.literal_eval`, never `eval`.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framesift.errors import ModelError

ULTRALYTICS_TASKS = {"detect": "object-detection", "segment": "instance-segmentation",
                     "pose": "keypoint-detection", "classify": "classification"}
COCO_KEYPOINTS = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                  "right_knee", "left_ankle", "right_ankle"]


@dataclass(frozen=True)
class ModelMetadata:
    task_type: str | None  # None when the export does not say
    names: list[str] | None
    imgsz: tuple[int, int] | None  # (height, width)
    kpt_shape: tuple[int, int] | None
    kpt_names: list[str] | None
    # The graph selects its detections itself: `end2end: True` (YOLO26's default export, YOLOv10) or an `nms=True`
    # export (`args: {..., 'nms': True}`). False when it says it does not, None when it says nothing (older exports).
    end_to_end: bool | None = None
    stride: int | None = None  # the largest stride of the network (Ultralytics writes it; None when absent)

    @classmethod
    def from_map(cls, meta: Mapping[str, str]) -> ModelMetadata:
        names = _literal(meta.get("names"))
        if isinstance(names, Mapping):
            names = [str(names[k]) for k in sorted(names)]
        imgsz = _literal(meta.get("imgsz"))
        if isinstance(imgsz, int):
            imgsz = [imgsz, imgsz]
        kpt_shape = _literal(meta.get("kpt_shape"))
        kpt_names = _literal(meta.get("kpt_names"))
        if isinstance(kpt_names, Mapping):  # Ultralytics writes {class id: [names]}
            kpt_names = next(iter(kpt_names.values()), None)
        args = _literal(meta.get("args"))
        nms = isinstance(args, Mapping) and args.get("nms") is True
        end2end = _literal(meta.get("end2end"))
        stride = _literal(meta.get("stride"))
        return cls(
            task_type=ULTRALYTICS_TASKS.get(str(meta.get("task", "")).strip()),
            names=list(names) if isinstance(names, list) else None,
            imgsz=(int(imgsz[0]), int(imgsz[1])) if isinstance(imgsz, (list, tuple)) and len(imgsz) == 2 else None,
            kpt_shape=(int(kpt_shape[0]), int(kpt_shape[1])) if isinstance(kpt_shape, (list, tuple)) else None,
            kpt_names=[str(n) for n in kpt_names] if isinstance(kpt_names, (list, tuple)) else None,
            end_to_end=True if nms or end2end is True else False if end2end is False else None,
            stride=stride if isinstance(stride, int) and not isinstance(stride, bool) and stride > 0 else None,
        )


def keypoint_names(meta: ModelMetadata, count: int) -> list[str]:
    if meta.kpt_names and len(meta.kpt_names) == count:
        return meta.kpt_names
    return COCO_KEYPOINTS if count == len(COCO_KEYPOINTS) else [str(i) for i in range(count)]


def read_classes_file(path: str | os.PathLike[str]) -> list[str]:
    """Class names, one per line, in class-id order (blank lines ignored); `ModelError` when unreadable or empty."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"cannot read the classes file {path}: {getattr(error, 'strerror', None) or error}") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ModelError(f"classes file {path} holds no class names")
    return names


def _literal(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
