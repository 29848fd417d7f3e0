"""The compact pre-annotation that framesift's pages draw (the report's gallery, the live page) with one script,
`framesift/assets/overlay.js`.

A page may draw thousands of them, so an annotation is short JSON rather than the SPEC §2 prediction itself:
class names become indexes into a table (`Names`), coordinates whole pixels of the image drawn, confidences whole
percents. `compact(data, classes)` makes it from SPEC §2 JSON (`prediction.to_json()`, or a prediction file):
None for no annotation (a stub model's), `{"d": [detection, ...]}` with a detection `[class, confidence, x1, y1,
x2, y2, polygon, keypoints]` (the polygon a flat `[x, y, ...]` list and the keypoints a flat `[x, y, confidence,
...]` list, each None when absent), or `{"c": [[class, confidence], ...]}` for a classification (its top class,
or a multi-label prediction's predicted classes).

Example:
    >>> classes = Names()
    >>> compact({"predictions": [{"x": 50, "y": 40, "width": 20, "height": 10, "class": "car",
    ...                           "confidence": 0.91}]}, classes), classes.names
    ({'d': [[0, 91, 40, 35, 60, 45, None, None]]}, ['car'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from importlib import resources
from typing import Any

MAX_POLYGON_POINTS = 100  # a longer mask outline is thinned evenly to this many points: a page shows no more
# Tableau 10: distinct hues that stay readable on white, the first colours of a class, strategy or source.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")


class Names:
    """Distinct names in order of first appearance; calling it with a name gives that name's index."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}

    def __call__(self, name: str) -> int:
        index = self._index.get(name)
        if index is None:
            index = self._index[name] = len(self._index)
        return index

    @property
    def names(self) -> list[str]:
        return list(self._index)


def compact(data: Mapping[str, Any], classes: Names) -> dict[str, Any] | None:
    """The compact annotation of SPEC §2 JSON, its class names indexed by `classes`. Raises `KeyError`,
    `TypeError` or `ValueError` for JSON that is no prediction."""
    if data.get("is_stub"):
        return None
    predictions = data.get("predictions") or []
    if isinstance(predictions, dict):  # multi-label classification
        return {"c": [[classes(str(c)), _percent(predictions[c]["confidence"])]
                      for c in data.get("predicted_classes", []) if c in predictions]}
    if "top" in data:
        return {"c": [[classes(str(data["top"])), _percent(data.get("confidence", 1.0))]]}
    detections = []
    for p in predictions:
        x, y, w, h = p["x"], p["y"], p["width"], p["height"]
        points, keypoints = p.get("points"), p.get("keypoints")
        detections.append([classes(str(p["class"])), _percent(p.get("confidence", 1.0)), round(x - w / 2),
                           round(y - h / 2), round(x + w / 2), round(y + h / 2),
                           _polygon(points) if points else None,
                           [v for k in keypoints for v in (round(k["x"]), round(k["y"]),
                                                            _percent(k.get("confidence", 1.0)))]
                           if keypoints else None])
    return {"d": detections}


def overlay_script() -> str:
    """The script that draws a compact annotation over its image (`framesiftOverlay`), for a page to embed or
    serve."""
    return (resources.files("framesift") / "assets" / "overlay.js").read_text(encoding="utf-8")


def _polygon(points: list[dict[str, float]]) -> list[int]:
    step = math.ceil(len(points) / MAX_POLYGON_POINTS)
    return [v for point in points[::step] for v in (round(point["x"]), round(point["y"]))]


def _percent(confidence: float) -> int:
    return round(float(confidence) * 100)
