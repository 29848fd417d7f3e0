"""A dataset folder's records (`datapoints.jsonl`), read back: safely while a run appends to it, and never
following a path that leaves the folder."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from framesift.durable import json_object
from framesift.paths import inside

RECORDS = "datapoints.jsonl"


def read_records(root: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records of a dataset folder (safe while a run appends to it), skipping any line that is not a complete
    JSON object."""
    path = Path(root) / RECORDS
    if not path.exists():
        return
    with open(path, "rb") as lines:
        for line in lines:
            record = json_object(line)
            if record is not None:
                yield record


class UnusableRecord(Exception):
    """A records line left out, and why; `name` is its record's id when it has one."""

    def __init__(self, name: str | None, reason: str):
        super().__init__(reason)
        self.name = name


def record_with_image(root: str | os.PathLike[str], line: bytes) -> dict[str, Any]:
    """One records line as a record whose image is in the dataset, and whose prediction (when it names one) is
    inside the dataset folder too; raises `UnusableRecord` saying why not. A path that leaves the folder (absolute,
    `..`, a link pointing out) is never followed: a record edited by hand cannot make an export or a report read
    files from elsewhere."""
    try:
        record: Any = json.loads(line)
    except ValueError:
        raise UnusableRecord(None, "not a complete JSON record") from None
    if not isinstance(record, dict):
        raise UnusableRecord(None, "not a JSON object")
    name = str(record["id"]) if "id" in record else None
    if not isinstance(record.get("image"), str):
        raise UnusableRecord(name, "no 'image' key")
    for key in ("image", "prediction"):
        if isinstance(record.get(key), str) and record[key] and not inside(root, record[key]):
            raise UnusableRecord(name, f"its {key} {record[key]} is outside the dataset folder")
    if not (Path(root) / record["image"]).is_file():
        raise UnusableRecord(name, f"its image {record['image']} is missing")
    return record


@dataclass(frozen=True)
class Item:
    """One exportable datapoint: its record, its image's path and its persisted prediction (JSON), if any."""

    name: str
    record: dict[str, Any]
    image: str
    prediction: dict[str, Any] | None
    captured_at: datetime
