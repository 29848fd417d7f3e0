"""The answers a request can get instead of a prediction: an HTTP status and one sentence."""

from __future__ import annotations

from framesift.errors import FramesiftError


class HttpError(FramesiftError):
    """A refused request: `status` and the sentence saying why (never a traceback)."""

    status = 400

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status
        self.retry_after = retry_after


class BadRequest(HttpError):
    status = 400


class Unauthorized(HttpError):
    status = 401


class UnknownModel(HttpError):
    status = 404


class TooLarge(HttpError):
    status = 413


class Overloaded(HttpError):
    """Every slot of the inference queue is taken: come back after `retry_after` seconds."""

    status = 503
