"""`DetectionFilter`: the detections for which its `filter_definition` holds, as a boolean mask.

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

import functools
import operator
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, Union

import numpy as np
from pydantic import Field

from framesift.predictions import DetectionPrediction
from framesift.workflows.fields import Strict
from framesift.workflows.step import Batch, Filtering, register_step

FILTER_FIELDS = ("class_name", "confidence", "x_min", "y_min", "x_max", "y_max", "width", "height")
FILTER_OPERATORS = ("equal", "not_equal", "lower_than", "greater_than", "lower_or_equal_than",
                    "greater_or_equal_than", "in", "str_starts_with", "str_ends_with", "str_contains")
FILTER_TYPES = ("DetectionFilterDefinition", "CompoundDetectionFilterDefinition")
Mask = Callable[[DetectionPrediction], np.ndarray]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "equal": operator.eq, "not_equal": operator.ne, "lower_than": operator.lt, "greater_than": operator.gt,
    "lower_or_equal_than": operator.le, "greater_or_equal_than": operator.ge,
    "in": lambda value, reference: value in reference,
    "str_starts_with": lambda value, reference: str(value).startswith(str(reference)),
    "str_ends_with": lambda value, reference: str(value).endswith(str(reference)),
    "str_contains": lambda value, reference: str(reference) in str(value),
}


class DetectionFilterDefinition(Strict):
    type: Literal["DetectionFilterDefinition"]
    field_name: Literal[FILTER_FIELDS]  # type: ignore[valid-type]
    operator: Literal[FILTER_OPERATORS]  # type: ignore[valid-type]
    reference_value: Any


class CompoundDetectionFilterDefinition(Strict):
    type: Literal["CompoundDetectionFilterDefinition"]
    left: FilterDefinition
    operator: Literal["and", "or"]
    right: FilterDefinition


FilterDefinition = Annotated[Union[DetectionFilterDefinition, CompoundDetectionFilterDefinition],  # noqa: UP007
                             Field(discriminator="type")]
CompoundDetectionFilterDefinition.model_rebuild()


@register_step
class DetectionFilterStep(Filtering):
    """Keeps the detections for which `filter_definition` holds (by class, confidence or box)."""

    type: Literal["DetectionFilter"]
    filter_definition: FilterDefinition

    TAGGED: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = dict.fromkeys(
        ("filter_definition", "left", "right"), ("filter", FILTER_TYPES))

    def run(self, batch: Batch) -> None:
        for _, source, values in batch.each():
            keep = detection_filter(self.filter_definition, functools.partial(batch.workflow.parameter,
                                                                              source=source))
            values[self.output("predictions")] = [p.subset(keep(p)) if isinstance(p, DetectionPrediction) else p
                                                  for p in values[self.predictions]]


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
