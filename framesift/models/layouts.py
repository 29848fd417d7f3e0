"""Recognise the output layout of an Ultralytics export from its shapes and metadata.

| task | outputs | end-to-end outputs (NMS in the graph) |
|---|---|---|
| detection | `[B, 4+nc, N]` | `[B, M, 6]`: x1, y1, x2, y2, score, class |
| instance segmentation | `[B, 4+nc+P, N]` and mask prototypes `[B, P, H/4, W/4]` | `[B, M, 6+P]` and the prototypes |
| keypoint detection | `[B, 4+nc+K*D, N]` with `kpt_shape = [K, D]` | `[B, M, 6+K*D]` |
| classification | `[B, nc]` | |

End-to-end exports are YOLO26's default and YOLOv10's (`end2end` metadata; older YOLOv10 exports say nothing) and
`nms=True` exports of YOLOv8/YOLO11 (`nms` in the `args` metadata); with neither, the shapes decide: the M rows of
an end-to-end output have 6 + extras columns, where a plain output has 4 + nc + extras rows. Their class count is
not in their shapes: it comes from the `names` metadata (or a classes file). Anything else is refused with a
message that names the shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from framesift.errors import ModelError
from framesift.models.metadata import ModelMetadata

Shape = Sequence[int | str | None]

DEFAULT_IMGSZ = (640, 640)  # (height, width) of a dynamic-size input whose metadata says nothing
MAX_DYNAMIC_BATCH = 16  # the most images one call gives a model whose batch axis is dynamic


@dataclass(frozen=True)
class InputGeometry:
    """What the model is fed: up to `max_batch` images of `height` × `width`; `static_batch` when it takes
    exactly that many; `dynamic_size` when its image axes are symbolic (then `height` × `width` is the size it was
    exported for, from its metadata, and a frame may go in at its own aspect ratio within it)."""

    max_batch: int
    height: int
    width: int
    static_batch: bool
    dynamic_size: bool = False


def input_geometry(shape: Shape, meta: ModelMetadata) -> InputGeometry:
    """The geometry of an image input `[B, 3, H, W]`: dynamic sizes from the `imgsz` metadata (else 640)."""
    batch, _, height, width = shape
    max_batch, static = (batch, True) if isinstance(batch, int) else (MAX_DYNAMIC_BATCH, False)
    if isinstance(height, int) and isinstance(width, int):
        return InputGeometry(max_batch, height, width, static)
    height, width = meta.imgsz or DEFAULT_IMGSZ
    return InputGeometry(max_batch, height, width, static, dynamic_size=True)


@dataclass(frozen=True)
class Layout:
    task_type: str
    num_classes: int | None  # None: an end-to-end export without names metadata (its shapes do not say)
    num_prototypes: int = 0  # instance segmentation
    kpt_shape: tuple[int, int] | None = None  # keypoint detection
    end_to_end: bool = False  # rows of x1, y1, x2, y2, score, class and the extras: no NMS to apply


def identify_layout(inputs: Sequence[Shape], outputs: Sequence[Shape], meta: ModelMetadata) -> Layout:
    """The layout of a model, or `ModelError` naming its shapes."""
    layout = _identify(inputs, outputs, meta)
    if layout is None:
        raise ModelError(
            f"unknown model layout: inputs {_shapes(inputs)}, outputs {_shapes(outputs)}; "
            "expected an Ultralytics export (detection [B, 4+nc, N], segmentation [B, 4+nc+32, N] + [B, 32, h, w], "
            "pose [B, 4+nc+K*3, N], classification [B, nc]; end-to-end [B, 300, 6], [B, 300, 6+32] + [B, 32, h, w], "
            "[B, 300, 6+K*3]) with one image input [B, 3, H, W]")
    if meta.names is not None and layout.num_classes is not None and len(meta.names) != layout.num_classes:
        raise ModelError(f"the model has {layout.num_classes} classes but its names metadata lists {len(meta.names)}")
    return layout


def _shapes(shapes: Sequence[Shape]) -> str:
    return "[" + ", ".join("[" + ", ".join("?" if d is None else str(d) for d in s) + "]" for s in shapes) + "]"


def _identify(inputs: Sequence[Shape], outputs: Sequence[Shape], meta: ModelMetadata) -> Layout | None:
    if len(inputs) != 1 or len(inputs[0]) != 4 or inputs[0][1] != 3 or not outputs:
        return None
    first, task = outputs[0], meta.task_type
    if len(outputs) == 1 and len(first) == 2 and task in (None, "classification"):
        return Layout("classification", first[1]) if isinstance(first[1], int) else None
    if len(first) != 3 or len(outputs) > 2:
        return None
    if len(outputs) == 2:  # instance segmentation: the prototypes say how many coefficients each row carries
        prototypes = outputs[1][1] if len(outputs[1]) == 4 else None
        if not isinstance(prototypes, int) or task not in (None, "instance-segmentation"):
            return None
        layout = Layout("instance-segmentation", None, num_prototypes=prototypes)
    elif meta.kpt_shape is not None and task in (None, "keypoint-detection"):
        if meta.kpt_shape[1] not in (2, 3):
            return None
        layout = Layout("keypoint-detection", None, kpt_shape=meta.kpt_shape)
    elif task in (None, "object-detection"):
        layout = Layout("object-detection", None)
    else:
        return None
    extras = layout.num_prototypes + (layout.kpt_shape[0] * layout.kpt_shape[1] if layout.kpt_shape else 0)
    nc = len(meta.names) if meta.names is not None else None
    channels = first[1] if isinstance(first[1], int) else None
    classes = channels - 4 - extras if channels is not None else 0
    matches_names = classes >= 1 and (nc is None or classes == nc)
    columns = first[2]  # symbolic in a dynamic end-to-end export
    rows_fit = columns == 6 + extras or (not isinstance(columns, int) and meta.end_to_end is True)
    if rows_fit and (meta.end_to_end is True or not matches_names):
        return replace(layout, num_classes=nc, end_to_end=True)
    detection = layout.task_type == "object-detection"
    if matches_names or (classes >= 1 and not detection):  # identify_layout names a mismatch with the names
        return replace(layout, num_classes=classes)
    return None
