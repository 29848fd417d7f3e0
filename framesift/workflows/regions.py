"""The images a workflow's steps work on: a whole frame, or a crop of it.

A crop is a `Region` of its frame: a box, kept in the frame's pixels (a crop of a crop too), and the detection it
was cut from. Its pixels are a view of the frame's BGR image, made only when a model or a collector needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from framesift.frames import Frame


@dataclass(frozen=True)
class Region:
    """An image a step works on: a whole frame, or a crop of it (`box`: x1, y1, x2, y2 in the frame's pixels)."""

    frame: Frame
    box: tuple[int, int, int, int] | None = None
    detection_id: str | None = None  # the detection it was cut from (none for a static crop)
    class_name: str | None = None
    confidence: float | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        if self.box is None:
            return self.frame.width, self.frame.height
        x1, y1, x2, y2 = self.box
        return x2 - x1, y2 - y1

    def bgr(self) -> np.ndarray:
        whole = self.frame.bgr()
        if self.box is None:
            return whole
        x1, y1, x2, y2 = self.box
        return whole[y1:y2, x1:x2]

    def crop(self, x1: float, y1: float, x2: float, y2: float, **origin: Any) -> Region | None:
        """The part of this image within (x1, y1, x2, y2) of its own pixels, clipped; None when nothing is left."""
        width, height = self.size
        left, top = (0, 0) if self.box is None else self.box[:2]
        box = (left + max(0, int(np.floor(x1))), top + max(0, int(np.floor(y1))),
               left + min(width, int(np.ceil(x2))), top + min(height, int(np.ceil(y2))))
        if box[2] <= box[0] or box[3] <= box[1]:
            return None
        return Region(self.frame, box, **origin)

    def record(self) -> dict[str, Any]:
        """Where a crop came from, for its datapoint's record."""
        return {"box": list(self.box or (0, 0, self.frame.width, self.frame.height)),
                "detection_id": self.detection_id, "class": self.class_name, "confidence": self.confidence}

