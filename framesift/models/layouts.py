"""Recognise the output layout of an Ultralytics export from its shapes and metadata.

| task | outputs |
|---|---|
| detection | `[B, 4+nc, N]` |
| instance segmentation | `[B, 4+nc+P, N]` and mask prototypes `[B, P, H/4, W/4]` |
| keypoint detection | `[B, 4+nc+K*D, N]` with `kpt_shape = [K, D]` |
| classification | `[B, nc]` |

Anything else is refused with a message that names the shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from framesift.errors import ModelError
from framesift.models.metadata import ModelMetadata

Shape = Sequence[int | str | None]

DEFAULT_IMGSZ = (640, 640)  # (height, width) of a dynamic-size input whose metadata says nothing
MAX_DYNAMIC_BATCH = 16  # the most images one call gives a model whose batch axis is dynamic


@dataclass(frozen=True)
class InputGeometry:
    """What the model is fed: up to `max_batch` images of `height` × `width`; `static_batch` when it takes
    exactly that many."""

    max_batch: int
    height: int
    width: int
    static_batch: bool


def input_geometry(shape: Shape, meta: ModelMetadata) -> InputGeometry:
    """The geometry of an image input `[B, 3, H, W]`: dynamic sizes from the `imgsz` metadata (else 640)."""
    batch, _, height, width = shape
    if not (isinstance(height, int) and isinstance(width, int)):
        height, width = meta.imgsz or DEFAULT_IMGSZ
    static = isinstance(batch, int)
    return InputGeometry(batch if isinstance(batch, int) else MAX_DYNAMIC_BATCH, height, width, static)


@dataclass(frozen=True)
class Layout:
    task_type: str
    num_classes: int
    num_prototypes: int = 0  # instance segmentation
    kpt_shape: tuple[int, int] | None = None  # keypoint detection


def identify_layout(inputs: Sequence[Shape], outputs: Sequence[Shape], meta: ModelMetadata) -> Layout:
    """The layout of a model, or `ModelError` naming its shapes."""
    layout = _identify(inputs, outputs, meta)
    if layout is None:
        raise ModelError(
            f"unknown model layout: inputs {_shapes(inputs)}, outputs {_shapes(outputs)}; "
            "expected an Ultralytics export (detection [B, 4+nc, N], segmentation [B, 4+nc+32, N] + [B, 32, h, w], "
            "pose [B, 4+nc+K*3, N], classification [B, nc]) with one image input [B, 3, H, W]")
    if meta.names is not None and len(meta.names) != layout.num_classes:
        raise ModelError(f"the model has {layout.num_classes} classes but its names metadata lists {len(meta.names)}")
    return layout


def _shapes(shapes: Sequence[Shape]) -> str:
    return "[" + ", ".join("[" + ", ".join("?" if d is None else str(d) for d in s) + "]" for s in shapes) + "]"


def _identify(inputs: Sequence[Shape], outputs: Sequence[Shape], meta: ModelMetadata) -> Layout | None:
    if len(inputs) != 1 or len(inputs[0]) != 4 or inputs[0][1] != 3:
        return None
    nc = len(meta.names) if meta.names is not None else None
    first = outputs[0] if outputs else ()
    channels = first[1] if len(first) >= 2 and isinstance(first[1], int) else None
    if channels is None:
        return None
    task = meta.task_type
    if len(outputs) == 1 and len(first) == 2 and task in (None, "classification"):
        return Layout("classification", channels)
    if len(first) != 3:
        return None
    if len(outputs) == 2 and len(outputs[1]) == 4 and task in (None, "instance-segmentation"):
        prototypes = outputs[1][1]
        if not isinstance(prototypes, int) or channels - 4 - prototypes < 1:
            return None
        return Layout("instance-segmentation", channels - 4 - prototypes, num_prototypes=prototypes)
    if len(outputs) != 1:
        return None
    if meta.kpt_shape is not None and task in (None, "keypoint-detection"):
        k, d = meta.kpt_shape
        classes = channels - 4 - k * d
        return Layout("keypoint-detection", classes, kpt_shape=(k, d)) if classes >= 1 and d in (2, 3) else None
    if task in (None, "object-detection") and channels > 4 and (nc is None or channels == 4 + nc):
        return Layout("object-detection", channels - 4)
    return None
