"""A dataset folder read for the report: each record a compact gallery item, with its pre-annotation.

The page filters, pages and draws 100 000 items in the browser, so an item is a short JSON array rather than the
record itself: names (strategies, sources, batches, classes, tags, task types) become indexes into tables,
coordinates whole pixels of the saved image, confidences whole percents. Images are not read here, only checked to
exist: the page loads them by their path, page by page.

An item is `[image, strategy, source, batch, time, tags, width, height, task, annotation, why]`: `time` is the
capture time in seconds since the epoch (None when the record has none that parses), `tags` a list of tag
indexes, `annotation` None (a stub model's datapoint, or predictions not persisted) or the compact
pre-annotation of `framesift.annotations`, in the saved image's pixels; `why` is `[text, boxes]`: why the
strategy chose it in words (from the record's `selected_because` and `near_duplicates`) and the indexes of the
detections that decided.

Example:
    >>> gallery = read_gallery("framesift-data")  # doctest: +SKIP
    >>> len(gallery.items), gallery.strategies.names, gallery.skipped[:1]  # doctest: +SKIP
    (120, ['uncertain', 'random_sample'], [('line 7', "no 'image' key")])
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from framesift.annotations import Names, compact
from framesift.collectors.sampling.reasons import why
from framesift.dataset.records import RECORDS, UnusableRecord, record_with_image
from framesift.errors import InputError


@dataclass
class Gallery:
    """The datapoints of a dataset folder as gallery items (see the module's docstring), and the records left
    out, each as (its id or line, why)."""

    items: list[list[Any]] = field(default_factory=list)
    strategies: Names = field(default_factory=Names)
    sources: Names = field(default_factory=Names)
    batches: Names = field(default_factory=Names)
    classes: Names = field(default_factory=Names)
    tags: Names = field(default_factory=Names)
    tasks: Names = field(default_factory=Names)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def tables(self) -> dict[str, list[str]]:
        """The names each index of an item refers to, by table."""
        return {"strategies": self.strategies.names, "sources": self.sources.names, "batches": self.batches.names,
                "classes": self.classes.names, "tags": self.tags.names, "tasks": self.tasks.names}


def read_gallery(dataset: str | os.PathLike[str]) -> Gallery:
    """The datapoints of the dataset folder `dataset` as gallery items, in the order they were registered.

    A record that cannot be shown (a line that is not a JSON object, a key missing, its image or prediction file
    deleted or damaged) is left out and named in `skipped`. Raises `InputError` when `dataset` is no dataset.
    """
    root = str(dataset)
    if not os.path.isfile(os.path.join(root, RECORDS)):
        raise InputError(f"{dataset} is not a framesift dataset (no {RECORDS})")
    gallery = Gallery()
    with open(os.path.join(root, RECORDS), "rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                gallery.items.append(_item(root, line, gallery))
            except UnusableRecord as skip:
                gallery.skipped.append((skip.name or f"line {number}", str(skip)))
    return gallery


def _item(root: str, line: bytes, gallery: Gallery) -> list[Any]:
    record = record_with_image(root, line)
    name = str(record["id"]) if "id" in record else None
    image = record["image"]
    width, height = record.get("width"), record.get("height")
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise UnusableRecord(name, "no image size ('width', 'height')")
    annotation = None
    if record.get("prediction"):
        annotation = _annotation(root, str(record["prediction"]), name, gallery.classes)
    tags = record.get("tags")
    return [image, gallery.strategies(str(record.get("strategy", "?"))),
            gallery.sources(str(record.get("source", "?"))), gallery.batches(str(record.get("batch", "?"))),
            _seconds(record.get("captured_at")),
            [gallery.tags(str(t)) for t in tags] if isinstance(tags, list) else [], width, height,
            gallery.tasks(str(record.get("task_type", "?"))), annotation, why(record)]


def _seconds(captured_at: Any) -> float | None:
    """An ISO 8601 UTC time as seconds since the epoch, to the millisecond; None when it does not parse."""
    if not isinstance(captured_at, str):
        return None
    try:
        return round(datetime.fromisoformat(captured_at.replace("Z", "+00:00")).timestamp(), 3)
    except ValueError:
        return None


def _annotation(root: str, path: str, name: str | None, classes: Names) -> dict[str, Any] | None:
    """The compact pre-annotation of a prediction file (SPEC §2 JSON)."""
    try:
        with open(os.path.join(root, path), "rb") as f:
            data = json.loads(f.read())
        return compact(data, classes)
    except FileNotFoundError:
        raise UnusableRecord(name, f"its prediction {path} is missing") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UnusableRecord(name, f"its prediction {path} cannot be read ({type(error).__name__})") from None
