"""A datapoint accepted for labeling, ready for a target: the encoded image, its persisted prediction, metadata."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class NotOurs(Exception):
    """A datapoint of a fleet's recording whose box lost its lease on it before the datapoint was written."""


@dataclass(frozen=True)
class Datapoint:
    id: str
    batch: str
    jpeg: bytes
    width: int
    height: int
    original_width: int
    original_height: int
    prediction: dict[str, Any] | None  # SPEC §2 JSON in saved-image pixels; None when not persisted
    tags: list[str]
    strategy: str
    source: str  # already redacted
    frame_id: int
    captured_at: datetime
    model_id: str
    task_type: str
    extra: dict[str, Any] | None = None  # recorded as-is (target_workspace, target_project)
    still_ours: Callable[[], bool] | None = field(default=None, compare=False, repr=False)  # a fleet's frame: a
    # local target asks it just before the record is appended (`NotOurs` when false), a remote one does not

    def record(self, image: str, prediction: str | None) -> dict[str, Any]:
        """The `datapoints.jsonl` record, given the paths of the image and prediction relative to the dataset."""
        return {
            "id": self.id,
            "batch": self.batch,
            "image": image,
            "prediction": prediction,
            "tags": self.tags,
            "strategy": self.strategy,
            "source": self.source,
            "frame_id": self.frame_id,
            "captured_at": iso_utc(self.captured_at),
            "width": self.width,
            "height": self.height,
            "original_width": self.original_width,
            "original_height": self.original_height,
            "model_id": self.model_id,
            "task_type": self.task_type,
            **(self.extra or {}),
        }


def iso_utc(moment: datetime) -> str:
    """A UTC time as records write it: ISO 8601 with `Z`."""
    return moment.isoformat().replace("+00:00", "Z")
