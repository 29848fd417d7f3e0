"""Letterboxing as Ultralytics does it: scale to fit, centre, pad with 114; and the way back to frame pixels.

Two ways to build the model input, giving the same geometry:
- `tensor_from_av(frame, box)`: a decoded PyAV frame is scaled first and converted to RGB at the model's size,
  with no full-resolution BGR copy (the stream's path). For `yuv420p` frames (what H.264/HEVC decoders give)
  OpenCV resizes the three planes and converts at the small size: 7x faster than swscale's scaled conversion at
  1080p here, which was itself slower than a full BGR conversion plus a resize (benchmarks/models.py). Other
  pixel formats go through swscale (`VideoFrame.reformat`) in one step;
- `tensor_from_bgr(image, box)`: a BGR array (what OpenCV and callbacks hold) is resized with OpenCV.

A model whose input size is dynamic is fed the frame's own aspect ratio (`rectangular_input`), as Ultralytics'
rectangular letterbox (`auto=True`) does: a 16:9 frame goes in as 640×384 instead of 640×640, 40 % fewer pixels.

Example:
    >>> box = Letterbox.fit(1920, 1080, 640, 640)
    >>> (box.resized_w, box.resized_h, box.left, box.top)
    (640, 360, 0, 140)
    >>> rectangular_input(1920, 1080, 640, 640, 32)
    (640, 384)
    >>> box = Letterbox.fit(1920, 1080, 640, 384)
    >>> (box.resized_w, box.resized_h, box.left, box.top)
    (640, 360, 0, 12)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from framesift.frames import scaled_i420

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """Where a frame of `frame_w × frame_h` sits inside a model input of `input_w × input_h`."""

    frame_w: int
    frame_h: int
    input_w: int
    input_h: int
    resized_w: int
    resized_h: int
    left: int
    top: int

    @classmethod
    def fit(cls, frame_w: int, frame_h: int, input_w: int, input_h: int) -> Letterbox:
        ratio = min(input_w / frame_w, input_h / frame_h)
        resized_w, resized_h = max(1, round(frame_w * ratio)), max(1, round(frame_h * ratio))
        left = round((input_w - resized_w) / 2 - 0.1)
        top = round((input_h - resized_h) / 2 - 0.1)
        return cls(frame_w, frame_h, input_w, input_h, resized_w, resized_h, left, top)

    @property
    def scale_x(self) -> float:
        return self.resized_w / self.frame_w

    @property
    def scale_y(self) -> float:
        return self.resized_h / self.frame_h

    def to_frame(self, xy: np.ndarray) -> np.ndarray:
        """Map points `(..., 2)` (or boxes `(N, 4)` as x1 y1 x2 y2) from input pixels to frame pixels, clipped."""
        out = np.array(xy, dtype=np.float32, copy=True)
        out[..., 0::2] = np.clip((out[..., 0::2] - self.left) / self.scale_x, 0, self.frame_w)
        out[..., 1::2] = np.clip((out[..., 1::2] - self.top) / self.scale_y, 0, self.frame_h)
        return out


def rectangular_input(frame_w: int, frame_h: int, width: int, height: int, stride: int) -> tuple[int, int]:
    """The (width, height) a dynamic-size model of `width` × `height` is fed a `frame_w` × `frame_h` frame at: the
    frame scaled to fit, each side rounded up to a multiple of `stride` (the model's; at most the full size)."""
    ratio = min(width / frame_w, height / frame_h)
    resized_w, resized_h = max(1, round(frame_w * ratio)), max(1, round(frame_h * ratio))
    return (min(width, math.ceil(resized_w / stride) * stride), min(height, math.ceil(resized_h / stride) * stride))


def tensor_from_av(frame: Any, box: Letterbox) -> np.ndarray:
    """The model input `(3, H, W)` float32 from a PyAV `VideoFrame`, scaled before it is converted."""
    if frame.format.name == "yuv420p" and box.resized_w % 2 == 0 and box.resized_h % 2 == 0:
        rgb = scaled_i420(frame, box.resized_w, box.resized_h)
    else:
        rgb = frame.reformat(width=box.resized_w, height=box.resized_h, format="rgb24",
                             interpolation="BILINEAR").to_ndarray()
    return _padded_tensor(rgb, box)


def tensor_from_bgr(image: np.ndarray, box: Letterbox) -> np.ndarray:
    """The model input `(3, H, W)` float32 from a BGR array."""
    import cv2

    if (image.shape[1], image.shape[0]) != (box.resized_w, box.resized_h):
        image = cv2.resize(image, (box.resized_w, box.resized_h), interpolation=cv2.INTER_LINEAR)
    return _padded_tensor(image[..., ::-1], box)


def _padded_tensor(rgb: np.ndarray, box: Letterbox) -> np.ndarray:
    tensor = np.empty((3, box.input_h, box.input_w), dtype=np.float32)
    tensor.fill(PAD_VALUE / 255.0)
    region = tensor[:, box.top:box.top + box.resized_h, box.left:box.left + box.resized_w]
    np.multiply(rgb.transpose(2, 0, 1), np.float32(1 / 255.0), out=region, casting="unsafe")
    return tensor
