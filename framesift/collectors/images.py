"""Image preparation for a collected datapoint (SPEC §5): downscale to fit, JPEG-encode.

Example:
    >>> import numpy as np
    >>> prepared = prepare_image(np.zeros((1080, 1920, 3), np.uint8), max_size=(480, 640), quality=90)
    >>> (prepared.width, prepared.height, round(prepared.scale_x, 4))
    (640, 360, 0.3333)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PreparedImage:
    jpeg: bytes
    width: int
    height: int
    scale_x: float  # saved width / original width
    scale_y: float  # saved height / original height


def fitted_size(width: int, height: int, max_size: Sequence[int] | None) -> tuple[int, int]:
    """The size that fits inside `max_size = (max_h, max_w)` keeping the aspect ratio; never upscaled."""
    if max_size is None:
        return width, height
    max_h, max_w = max_size
    if width <= max_w and height <= max_h:
        return width, height
    scale = min(max_w / width, max_h / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def prepare_image(frame: np.ndarray, max_size: Sequence[int] | None, quality: int) -> PreparedImage:
    """Resize a BGR frame to fit `max_size` (height, width) and encode it as JPEG at `quality` (1..100)."""
    import cv2

    height, width = frame.shape[:2]
    new_width, new_height = fitted_size(width, height, max_size)
    if (new_width, new_height) != (width, height):
        frame = cv2.resize(frame, (new_width, new_height), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"could not JPEG-encode a frame of shape {frame.shape}")
    return PreparedImage(encoded.tobytes(), new_width, new_height, new_width / width, new_height / height)
