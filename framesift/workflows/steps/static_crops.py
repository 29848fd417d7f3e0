"""`AbsoluteStaticCrop` and `RelativeStaticCrop`: one fixed part of every image, in pixels or in fractions of the
image's size — one concept, two step kinds."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from framesift.workflows.fields import Fraction, Pixels, PositivePixels, Size
from framesift.workflows.regions import Region
from framesift.workflows.step import Batch, Step, register_step


class StaticCrop(Step):
    """A box centred on (`x_center`, `y_center`), `width` by `height`, cut from every image `image` names."""

    image: str
    x_center: Any
    y_center: Any
    width: Any
    height: Any

    OUTPUTS: ClassVar[tuple[str, ...]] = ("crops", "parent_id")

    def box(self, region: Region, cx: float, cy: float, w: float, h: float) -> tuple[float, float, float, float]:
        """The box's centre and size in the region's pixels."""
        return cx, cy, w, h

    def run(self, batch: Batch) -> None:
        for _, source, values in batch.each():
            given = [float(batch.workflow.parameter(v, source)) for v in (self.x_center, self.y_center, self.width,
                                                                          self.height)]
            crops = []
            for region in values[self.image]:
                cx, cy, w, h = self.box(region, *given)
                crop = region.crop(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                if crop is not None:
                    crops.append(crop)
            values[self.output("crops")] = crops


@register_step
class AbsoluteStaticCrop(StaticCrop):
    type: Literal["AbsoluteStaticCrop"]
    x_center: Pixels
    y_center: Pixels
    width: PositivePixels
    height: PositivePixels


@register_step
class RelativeStaticCrop(StaticCrop):
    type: Literal["RelativeStaticCrop"]
    x_center: Fraction
    y_center: Fraction
    width: Size
    height: Size

    def box(self, region: Region, cx: float, cy: float, w: float, h: float) -> tuple[float, float, float, float]:
        width, height = region.size
        return cx * width, cy * height, w * width, h * height
