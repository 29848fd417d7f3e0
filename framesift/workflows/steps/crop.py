"""`Crop`: each detection cut out of the image its detections were made on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import AliasChoices, Field

from framesift.predictions import DetectionPrediction
from framesift.workflows.step import Batch, Step, register_step

if TYPE_CHECKING:
    from framesift.workflows.checks import Checker


@register_step
class CropStep(Step):
    """Cuts each detection out of the image; `padding` (pixels on every side) is framesift's own; `detections` is
    the old name of `predictions`."""

    type: Literal["Crop"]
    image: str
    predictions: str = Field(validation_alias=AliasChoices("predictions", "detections"))
    padding: Annotated[int, Field(ge=0)] = 0

    OUTPUTS: ClassVar[tuple[str, ...]] = ("crops", "parent_id")

    def problems(self, where: str, checker: Checker) -> Iterator[str]:
        yield from checker.predictions(f"{where}.predictions", self.predictions)
        yield from checker.same_image(where, self, "cuts")

    def run(self, batch: Batch) -> None:
        for values in batch.values:
            crops = []
            for region, prediction in zip(values[self.image], values[self.predictions], strict=True):
                if not isinstance(prediction, DetectionPrediction):
                    continue  # the stub found nothing to cut
                for k in range(len(prediction)):
                    x1, y1, x2, y2 = prediction.xyxy[k]
                    pad = self.padding
                    crop = region.crop(x1 - pad, y1 - pad, x2 + pad, y2 + pad,
                                       detection_id=None if prediction.detection_id is None
                                       else prediction.detection_id[k],
                                       class_name=prediction.class_name[k],
                                       confidence=float(prediction.confidence[k]))
                    if crop is not None:
                        crops.append(crop)
            values[self.output("crops")] = crops
