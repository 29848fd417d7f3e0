"""The `DetectionFilter` step's definitions as boolean masks over a prediction's detections.

A `DetectionFilterDefinition` compares one field of each detection (`class_name`, `confidence`, the box's `x_min`,
`y_min`, `x_max`, `y_max`, `width`, `height`) with a reference value (or a parameter); a
`CompoundDetectionFilterDefinition` joins two with `and` / `or`.

Example:
    >>> from framesift.predictions import DetectionPrediction
    >>> p = DetectionPrediction.from_lists("object-detection", "m", (100, 100), xyxy=[[0, 0, 10, 10], [0, 0, 50, 50]],
    ...                                    confidence=[0.9, 0.4], class_name=["car", "car"])
    >>> keep = detection_filter(DetectionFilterDefinition(type="DetectionFilterDefinition", field_name="confidence",
    ...                                                   operator="greater_or_equal_than", reference_value=0.5))
    >>> keep(p).tolist()
    [True, False]
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from framesift.predictions import DetectionPrediction
from framesift.workflows.definition import CompoundDetectionFilterDefinition, DetectionFilterDefinition

Mask = Callable[[DetectionPrediction], np.ndarray]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "equal": operator.eq, "not_equal": operator.ne, "lower_than": operator.lt, "greater_than": operator.gt,
    "lower_or_equal_than": operator.le, "greater_or_equal_than": operator.ge,
    "in": lambda value, reference: value in reference,
    "str_starts_with": lambda value, reference: str(value).startswith(str(reference)),
    "str_ends_with": lambda value, reference: str(value).endswith(str(reference)),
    "str_contains": lambda value, reference: str(reference) in str(value),
}


def detection_filter(definition: DetectionFilterDefinition | CompoundDetectionFilterDefinition,
                     resolve: Callable[[Any], Any] = lambda value: value) -> Mask:
    """The mask of the detections `definition` keeps; `resolve` turns a parameter selector into its value."""
    if isinstance(definition, CompoundDetectionFilterDefinition):
        left, right = detection_filter(definition.left, resolve), detection_filter(definition.right, resolve)
        join = np.logical_and if definition.operator == "and" else np.logical_or
        return lambda prediction: join(left(prediction), right(prediction))
    compare, reference = _COMPARE[definition.operator], resolve(definition.reference_value)

    def mask(prediction: DetectionPrediction) -> np.ndarray:
        return np.array([compare(value, reference) for value in _field(prediction, definition.field_name)],
                        dtype=bool)

    return mask


def _field(prediction: DetectionPrediction, name: str) -> list[Any]:
    if name == "class_name":
        return list(prediction.class_name)
    if name == "confidence":
        return prediction.confidence.tolist()
    x1, y1, x2, y2 = prediction.xyxy.reshape(-1, 4).T
    columns = {"x_min": x1, "y_min": y1, "x_max": x2, "y_max": y2, "width": x2 - x1, "height": y2 - y1}
    return columns[name].tolist()
