"""`ActiveLearningDataCollector`: the block Roboflow shipped, sampling the image (or crops) it names with the
predictions it names into `target_dataset`. Its collector is opened once per run (`framesift.workflows.build`); on
a batch it offers each image to it (microseconds each; the collector's own thread does the rest)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr

from framesift.paths import dataset_name_refusal
from framesift.workflows.fields import SELECTOR, Flag, Text, named_step
from framesift.workflows.step import Batch, Step, register_step

if TYPE_CHECKING:
    from framesift.workflows.checks import Checker

WANTED = ("the predictions of a detection-like step, the top of a ClassificationModel or the predictions of a "
          "MultiLabelClassificationModel")


@register_step
class CollectorStep(Step):
    """The `ActiveLearningDataCollector` block: samples the image (or crops) it names with the predictions it
    names into `target_dataset`; no outputs."""

    type: Literal["ActiveLearningDataCollector"]
    image: str = Field(validation_alias=AliasChoices("image", "images"))
    predictions: str
    prediction_type: str | None = None  # the block format's `$steps.<model>.prediction_type`
    target_dataset: Text
    target_dataset_api_key: SecretStr | None = None
    disable_active_learning: Flag = False
    active_learning_configuration: dict[str, Any] | None = None

    READS: ClassVar[frozenset[str]] = frozenset({"image", "predictions", "prediction_type"})
    UNREAD: ClassVar[frozenset[str]] = frozenset({"active_learning_configuration"})
    ONCE: ClassVar[tuple[str, ...]] = ("target_dataset", "target_dataset_api_key")

    def problems(self, where: str, checker: Checker) -> Iterator[str]:
        yield from _dataset(checker, f"{where}.target_dataset", self.target_dataset)
        key = self.target_dataset_api_key.get_secret_value() if self.target_dataset_api_key else ""
        if key.startswith("$"):
            yield from checker.parameter(f"{where}.target_dataset_api_key", key)
        match = SELECTOR.match(self.predictions)
        source = checker.steps.get(match.group(2)) if match and match.group(1) == "steps" else None
        if source is None or match is None or match.group(3) not in type(source).collected_of(source.type):
            yield from checker.dangling(f"{where}.predictions", self.predictions, WANTED)
            return
        if self.prediction_type is not None and self.prediction_type != f"$steps.{source.name}.prediction_type":
            yield f"{where}.prediction_type: must be $steps.{source.name}.prediction_type (the step its predictions " \
                  f"come from)"
        yield from checker.same_image(where, self, "collects")

    def run(self, batch: Batch) -> None:
        collector = batch.workflow.collectors.get(self.name)
        if collector is None:
            return
        predictions = f"$steps.{named_step(self.predictions)}.predictions"  # a classifier's top: its prediction
        for frame, source, values in batch.each():
            if not batch.workflow.collecting(self, source):
                continue
            url = frame.recording or (frame.source if source is None else source.url)
            for region, prediction in zip(values[self.image], values[predictions], strict=True):
                if region.box is None:
                    collector.submit(frame, prediction, source=url, frame_id=frame.frame_id,
                                     captured_at=frame.captured_at, recorded=frame.recorded, drawn=frame.drawn,
                                     known_as=frame.known_as, still_ours=frame.still_ours)
                else:
                    collector.submit(region.bgr(), prediction, source=url, frame_id=frame.frame_id,
                                     captured_at=frame.captured_at, extra={"crop": region.record()},
                                     recorded=frame.recorded, still_ours=frame.still_ours)


def _dataset(checker: Checker, where: str, value: Any) -> Iterator[str]:
    """A dataset name becomes a folder: the rule every run applies to it (a parameter's: to its default)."""
    if isinstance(value, str) and value.startswith("$"):
        name = value.removeprefix("$inputs.")
        if name not in checker.parameters or checker.parameters[name] is None:
            return  # no parameter (said by `parameter`), or no default: checked when the run gives its value
        refused = dataset_name_refusal(checker.parameters[name])
        where = f"{where}: the default of {value}"
    else:
        refused = dataset_name_refusal(value)
    if refused is not None:
        yield f"{where}: {refused}"
