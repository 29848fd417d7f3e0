"""Signatures of frames for the near-duplicate gate: a 64-bit difference hash (dHash) of the brightness.

The hash is made from the decoder's luma plane, sampled down before anything is resized (the Y plane of a 1080p
frame sampled 1/15 is about 128×72 pixels), so it costs a fraction of a millisecond and no colour conversion; a
BGR array (`Collector.submit` from Python) is sampled down first, then made grey. Two frames of the same scene differ
in a few bits (noise, compression); a scene that changed differs in many.

Example:
    >>> import numpy as np
    >>> frame = np.zeros((1080, 1920, 3), np.uint8); frame[:, 960:] = 255
    >>> f"{signature(frame):016x}", distance(signature(frame), signature(frame))
    ('1818181818181818', 0)
"""

from __future__ import annotations

from typing import Any

import numpy as np

_SIDE = 72  # rows kept before resizing: enough for a 9×8 hash, small enough to be cheap
LUMA_FORMATS = ("yuv420p", "yuvj420p", "nv12", "yuv422p", "yuvj422p", "yuv444p", "gray")


def signature(frame: Any) -> int:
    """The 64-bit dHash of a frame: a BGR array, or an object with a decoded PyAV frame as `image` (the stream's
    `Frame`) or with `bgr()`."""
    import cv2

    grey = _luma(frame)
    step = max(1, grey.shape[0] // _SIDE)
    small = cv2.resize(np.ascontiguousarray(grey[::step, ::step]), (9, 8), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def distance(a: int, b: int) -> int:
    """How many of the 64 bits differ."""
    return (a ^ b).bit_count()


def _luma(frame: Any) -> np.ndarray:
    import cv2

    decoded = getattr(frame, "image", None)
    if decoded is not None and getattr(getattr(decoded, "format", None), "name", None) in LUMA_FORMATS:
        plane = decoded.planes[0]
        return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:decoded.height, :decoded.width]
    bgr = frame if isinstance(frame, np.ndarray) else frame.bgr()
    step = max(1, bgr.shape[0] // _SIDE)
    return cv2.cvtColor(np.ascontiguousarray(bgr[::step, ::step]), cv2.COLOR_BGR2GRAY)
