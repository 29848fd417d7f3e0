"""What an inference request asks, read from the bodies Roboflow's `inference_sdk` client sends.

- API v1 (the client's default against a server of its own): `POST /infer/<task>` with a JSON body `{"model_id",
  "image": {"type": "base64", "value": ...} | [...], "confidence", "iou_threshold", "class_filter",
  "disable_active_learning", "active_learning_target_dataset", "api_key", ...}`; fields the client may send that
  framesift does not use (`disable_preproc_*`, `source_info`, `fix_batch_size`, ...) are ignored.
- API v0 (the legacy route): `POST /<project>/<version>?api_key=...&confidence=...&overlap=...` with the base64
  image as the whole body.

Images come as base64 (the client encodes arrays, PIL images, files and URLs as base64 itself); an image of type
`url` is refused (the server fetches nothing a request names), as is `numpy` (a pickle). Anything malformed is
`BadRequest` in one sentence.

Example:
    >>> request = parse_v1({"model_id": "people/3", "image": {"type": "base64", "value": TINY_PNG}})
    >>> request.model_id, request.images[0].shape, request.confidence
    ('people/3', (1, 1, 3), None)
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from framesift.paths import dataset_name_refusal
from framesift.serve.errors import BadRequest

MAX_IMAGES = 64  # images in one request
TINY_PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")


@dataclass(frozen=True)
class InferRequest:
    """One request's model, images (BGR arrays) and options; None: the server's default."""

    model_id: str
    images: list[np.ndarray]
    confidence: float | None = None
    iou: float | None = None
    class_filter: frozenset[str] | None = None
    disable_active_learning: bool = False
    target_dataset: str | None = None
    source: str | None = None
    batch: bool = False  # the images came as a list: the answer is a list


def parse_v1(body: Any) -> InferRequest:
    """The request of a v1 route's JSON body."""
    if not isinstance(body, Mapping):
        raise BadRequest("the request body must be a JSON object with model_id and image")
    model_id = body.get("model_id")
    if not isinstance(model_id, str) or not model_id:
        raise BadRequest("model_id is missing: name the model (<project>/<version>)")
    image = body.get("image")
    if image is None:
        raise BadRequest("image is missing: send {\"type\": \"base64\", \"value\": ...}")
    items = image if isinstance(image, list) else [image]
    if not items or len(items) > MAX_IMAGES:
        raise BadRequest(f"a request holds 1 to {MAX_IMAGES} images, not {len(items)}")
    images = [image_item(item, f"image {k}") for k, item in enumerate(items)]
    return InferRequest(model_id, images, _threshold(body.get("confidence"), "confidence"),
                        _threshold(body.get("iou_threshold"), "iou_threshold"), _class_filter(body.get("class_filter")),
                        _flag(body.get("disable_active_learning"), "disable_active_learning"),
                        _dataset(body.get("active_learning_target_dataset")), _text(body.get("source"), "source"),
                        isinstance(image, list))


def parse_v0(model_id: str, query: Mapping[str, str], body: bytes) -> InferRequest:
    """The request of the legacy route: its query parameters and the base64 image that is its body."""
    if query.get("image"):
        raise BadRequest("images given by URL are not fetched: send the image's base64 as the request body")
    if not body.strip():
        raise BadRequest("the request body is empty: send the image's base64 as the body")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest("the request body is not base64 text: send the image's base64 as the body") from None
    return InferRequest(model_id, [decode_image(text, "the image")], _threshold(query.get("confidence"), "confidence"),
                        _threshold(query.get("overlap"), "overlap"), None,
                        _flag(query.get("disable_active_learning"), "disable_active_learning"),
                        _dataset(query.get("active_learning_target_dataset")), _text(query.get("source"), "source"))


def decode_image(value: str, what: str) -> np.ndarray:
    """A BGR array from base64 (a `data:...;base64,` prefix allowed) of any format OpenCV reads."""
    import cv2

    _, comma, data = value.partition(",") if value.startswith("data:") else ("", "", value)
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{what} is not valid base64") from None
    decoded = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR) if raw else None
    if decoded is None:
        raise BadRequest(f"{what} is not an image OpenCV can read (JPEG, PNG, BMP, WebP, ...)")
    return decoded


def image_item(item: Any, what: str) -> np.ndarray:
    """The BGR array of one `{"type": "base64", "value": ...}` (`what` names it in a refusal)."""
    if not isinstance(item, Mapping):
        raise BadRequest(f"{what} must be an object {{\"type\": \"base64\", \"value\": ...}}")
    kind, value = item.get("type"), item.get("value")
    if kind == "url":
        raise BadRequest(f"{what} is a URL, and this server fetches no URL a request names: send its base64")
    if kind != "base64":
        raise BadRequest(f"{what} has type {kind!r}: this server reads base64 images only")
    if not isinstance(value, str):
        raise BadRequest(f"{what} has no base64 text as its value")
    return decode_image(value, what)


def _threshold(value: Any, name: str) -> float | None:
    if value is None or value in ("default", "best"):  # the client's named confidences: the server's default
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a number from 0 to 1, not {str(value)[:40]!r}") from None
    if not (math.isfinite(number) and 0 <= number <= 1) or isinstance(value, bool):
        raise BadRequest(f"{name} must be a number from 0 to 1, not {str(value)[:40]!r}")
    return number


def _flag(value: Any, name: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BadRequest(f"{name} must be true or false")


def _class_filter(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise BadRequest("class_filter must be a list of class names")
    return frozenset(value)


def _dataset(value: Any) -> str | None:
    if value is None:
        return None
    refused = dataset_name_refusal(value)
    if refused is not None:
        raise BadRequest(f"active_learning_target_dataset: {refused}")
    return str(value)


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 256:
        raise BadRequest(f"{name} must be a text of at most 256 characters")
    return value
