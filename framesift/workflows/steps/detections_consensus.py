"""`DetectionsConsensus`: the detections of several detection-like steps (made on one image) merged by IoU voting
(`framesift.workflows.consensus`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import AliasChoices, Field

from framesift.predictions import DetectionPrediction
from framesift.workflows.consensus import Rules, consensus
from framesift.workflows.fields import Classes, Count, Flag, Fraction, named_step, number, or_parameter
from framesift.workflows.step import Batch, Step, register_step

if TYPE_CHECKING:
    from framesift.workflows.checks import Checker

AGGREGATIONS = ("average", "max", "min")
RULES = [f.name for f in dataclasses.fields(Rules)]  # a consensus step's fields of the same names
RequiredObjects = Annotated[Any, or_parameter(
    "a whole number above 0 or a mapping of class names to whole numbers above 0",
    lambda value: number(0, float("inf"), integer=True, low_open=True)(value) or (
        isinstance(value, dict) and all(number(0, float("inf"), integer=True, low_open=True)(v)
                                        for v in value.values())))]


@register_step
class ConsensusStep(Step):
    """`DetectionsConsensus`: the detections of several detection-like steps (made on one image) merged where
    `required_votes` of them overlap by more than `iou_threshold`; `object_present` and `presence_confidence` say
    whether `required_objects` were found. Fields, defaults and semantics as Roboflow documented them."""

    type: Literal["DetectionsConsensus"]
    predictions_batches: Annotated[list[str], Field(min_length=1)] = Field(
        validation_alias=AliasChoices("predictions_batches", "predictions"))
    required_votes: Count
    class_aware: Flag = True
    iou_threshold: Fraction = 0.3
    confidence: Fraction = 0.0
    classes_to_consider: Classes = None
    required_objects: RequiredObjects = None
    presence_confidence_aggregation: Literal[AGGREGATIONS] = "max"  # type: ignore[valid-type]
    detections_merge_confidence_aggregation: Literal[AGGREGATIONS] = "average"  # type: ignore[valid-type]
    detections_merge_coordinates_aggregation: Literal[AGGREGATIONS] = "average"  # type: ignore[valid-type]

    OUTPUTS: ClassVar[tuple[str, ...]] = ("predictions", "image", "parent_id", "object_present",
                                          "presence_confidence", "prediction_type")
    DETECTIONS: ClassVar[bool] = True
    READS: ClassVar[frozenset[str]] = frozenset({"predictions_batches"})

    def made_from(self) -> tuple[str, ...]:
        return tuple(self.predictions_batches)

    def problems(self, where: str, checker: Checker) -> Iterator[str]:
        """Each source: the predictions of a detection-like step; all of them made on one image."""
        images = {}
        for i, selector in enumerate(self.predictions_batches):
            problems = list(checker.predictions(f"{where}.predictions[{i}]", selector))
            yield from problems
            if not problems:
                images[selector] = checker.image_of(checker.steps[named_step(selector)])
        if len(set(images.values()) - {None}) > 1:
            made_on = ", ".join(f"{selector} on {image}" for selector, image in images.items())
            yield f"{where}.predictions: DetectionsConsensus {self.name!r} merges predictions made on one image; " \
                  f"these were made on different ones ({made_on})"

    def run(self, batch: Batch) -> None:
        """The consensus of its sources' predictions on each image (a source that predicted nothing, the stub,
        counts as no detections)."""
        for _, source, values in batch.each():
            rules = Rules(**{name: batch.workflow.parameter(getattr(self, name), source) for name in RULES})
            results = []
            for k, region in enumerate(values[batch.workflow.aligned(self.name)]):
                predictions = [values[selector][k] for selector in self.predictions_batches]
                results.append(consensus([p for p in predictions if isinstance(p, DetectionPrediction)], rules,
                                         self.name, region.size))
            values[self.output("predictions")] = [r.prediction for r in results]
            values[self.output("object_present")] = [r.object_present for r in results]
            values[self.output("presence_confidence")] = [r.presence_confidence for r in results]
