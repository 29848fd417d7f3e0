"""The report's charts of what a dataset holds: datapoints over time per strategy and per source, the classes of
the pre-annotations and their confidences.

Each chart is a `Chart`: a title, a Chart.js configuration (plain JSON: the page hands it to `new Chart` as it is),
a note and an optional table. The numbers are counted here, in Python, so the page only draws them.

Example:
    >>> bar(["a", "b"], [("count", [3, 5], colour(0))])["data"]["datasets"][0]["data"]
    [3, 5]
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from framesift.annotations import PALETTE
from framesift.report.gallery import Gallery

MAX_SERIES = 10  # series of a chart over time; the rest is added up as "other"
MAX_BINS = 72  # bars over time at most
MAX_CLASSES = 30  # classes shown, the most frequent
# The bin widths a chart over time picks from (seconds, in words): the narrowest that gives at most MAX_BINS bars.
TIME_STEPS = ((1, "second"), (10, "10 seconds"), (60, "minute"), (300, "5 minutes"), (900, "15 minutes"),
              (3600, "hour"), (6 * 3600, "6 hours"), (86400, "day"), (7 * 86400, "week"))


@dataclass
class Chart:
    """One chart of the page: `config` is Chart.js's (None: the note alone), `rows` a small table under it (its
    first row the header)."""

    key: str
    title: str
    config: dict[str, Any] | None
    note: str = ""
    rows: list[list[str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def bar(labels: Sequence[str], datasets: Sequence[tuple[str, Sequence[float], str | Sequence[str]]], *,
        stacked: bool = False, horizontal: bool = False, value_title: str = "",
        label_title: str = "") -> dict[str, Any]:
    """A Chart.js bar chart: `datasets` are (name, values, colour or one colour per bar)."""
    value_axis, label_axis = ("x", "y") if horizontal else ("y", "x")
    return {
        "type": "bar",
        "data": {"labels": list(labels), "datasets": [{"label": name, "data": list(values), "backgroundColor": c}
                                                      for name, values, c in datasets]},
        "options": {
            "indexAxis": "y" if horizontal else "x",
            "scales": {value_axis: {"stacked": stacked, "beginAtZero": True, "ticks": {"precision": 0},
                                    "title": {"display": bool(value_title), "text": value_title}},
                       label_axis: {"stacked": stacked, "title": {"display": bool(label_title), "text": label_title}}},
            "plugins": {"legend": {"display": len(datasets) > 1}},
        },
    }


def dataset_charts(gallery: Gallery) -> list[Chart]:
    """The charts of what the dataset holds."""
    return [over_time(gallery, 1, gallery.strategies.names, "strategy"),
            over_time(gallery, 2, gallery.sources.names, "source"),
            classes_chart(gallery), confidence_chart(gallery)]


def over_time(gallery: Gallery, field_index: int, names: list[str], what: str) -> Chart:
    """Datapoints per time bin, stacked by the item field at `field_index` (a strategy, a source)."""
    key, title = f"time_{what}", f"Datapoints over time, per {what}"
    timed = [(item[4], item[field_index]) for item in gallery.items if item[4] is not None]
    if not timed:
        return Chart(key, title, None, "No datapoint has a capture time.")
    times = np.array([t for t, _ in timed], dtype=np.float64)
    series = np.array([s for _, s in timed], dtype=np.int64)
    step, unit = time_step(float(times.max() - times.min()))
    start = math.floor(times.min() / step) * step
    bins = ((times - start) // step).astype(np.int64)
    count = int(bins.max()) + 1
    per_series = [np.bincount(bins[series == s], minlength=count) for s in range(len(names))]
    order = sorted(range(len(names)), key=lambda s: -int(per_series[s].sum()))
    shown, rest = (order[:MAX_SERIES - 1], order[MAX_SERIES - 1:]) if len(order) > MAX_SERIES else (order, [])
    datasets = [(names[s], per_series[s].tolist(), colour(s)) for s in shown]
    if rest:
        others = np.sum([per_series[s] for s in rest], axis=0)
        datasets.append((f"{len(rest)} other {what}s", others.tolist(), "#888888"))
    fmt = "%H:%M:%S" if step < 60 else "%m-%d %H:%M" if step < 86400 else "%Y-%m-%d"
    labels = [_utc(start + k * step).strftime(fmt) for k in range(count)]
    first, last = _utc(times.min()).date(), _utc(times.max()).date()
    dates = f"{first}" if first == last else f"{first} to {last}"
    return Chart(key, title, bar(labels, datasets, stacked=True, value_title="datapoints",
                                 label_title=f"capture time (UTC, {dates}), per {unit}"))


def time_step(span: float) -> tuple[int, str]:
    """The width of a time bin (seconds) and its name in words, for a span of `span` seconds.

    >>> time_step(30), time_step(86400)
    ((1, 'second'), (3600, 'hour'))
    """
    for step, unit in TIME_STEPS:
        if span / step < MAX_BINS:
            return step, unit
    days = math.ceil(span / 86400 / MAX_BINS)
    return days * 86400, f"{days} days"


def classes_chart(gallery: Gallery) -> Chart:
    """How many times each class appears in the pre-annotations (objects, or a classification's classes)."""
    counts: Counter[int] = Counter()
    for item in gallery.items:
        annotation = item[9]
        if annotation is not None:  # objects ("d", none when the model found nothing) or a classification's classes
            counts.update(entry[0] for key in ("d", "c") for entry in annotation.get(key) or ())
    title = "Classes in the pre-annotations"
    if not counts:
        return Chart("classes", title, None, "No datapoint has a pre-annotation (a stub model's, or predictions not "
                                             "persisted).")
    top = counts.most_common(MAX_CLASSES)
    names = gallery.classes.names
    note = "" if len(counts) <= MAX_CLASSES else f"The {MAX_CLASSES} most frequent of {len(counts)} classes."
    return Chart("classes", title, bar([names[c] for c, _ in top], [("objects or labels", [n for _, n in top],
                                                                    [colour(c) for c, _ in top])],
                                       horizontal=True, value_title="objects (detections) or labels (classification)"),
                 note)


def confidence_chart(gallery: Gallery) -> Chart:
    """A histogram of the pre-annotations' confidences, in 5 % bins: objects and classifications apart."""
    objects, labels = np.zeros(20, np.int64), np.zeros(20, np.int64)
    for item in gallery.items:
        annotation = item[9]
        if annotation is not None:
            for entry in annotation.get("d") or ():
                objects[min(max(entry[1], 0) // 5, 19)] += 1
            for entry in annotation.get("c") or ():
                labels[min(max(entry[1], 0) // 5, 19)] += 1
    title = "Confidence of the pre-annotations"
    if not objects.any() and not labels.any():
        return Chart("confidence", title, None, "No pre-annotation to show.")
    datasets = [(name, values.tolist(), c) for name, values, c in
                (("objects", objects, PALETTE[0]), ("classifications", labels, PALETTE[1])) if values.any()]
    return Chart("confidence", title, bar([f"{5 * k}–{5 * k + 5}%" for k in range(20)], datasets, stacked=True,
                                          value_title="count", label_title="confidence"))


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)
