"""`detections_number_based` (SPEC §3): a detection whose count of eligible boxes is above `more_than` and below
`less_than` (each when given)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from framesift.collectors.sampling.strategies.base import Probability, Strategy, eligible
from framesift.collectors.sampling.strategies.registry import register
from framesift.predictions import DetectionPrediction, Prediction


@register
class DetectionsNumberBasedStrategy(Strategy):
    type: Literal["detections_number_based"]
    probability: Probability
    selected_class_names: list[str] | None = None
    more_than: Annotated[int, Field(ge=0)] | None = None
    less_than: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _bounds_ordered(self) -> DetectionsNumberBasedStrategy:
        if self.more_than is not None and self.less_than is not None and self.more_than >= self.less_than:
            raise ValueError("more_than must be smaller than less_than")
        return self

    def evidence(self, prediction: Prediction, state: Any) -> dict[str, Any] | None:
        if not isinstance(prediction, DetectionPrediction):
            return None
        counted = eligible(self.selected_class_names, prediction.class_name)
        n = int(counted.sum())
        if self.more_than is not None and n <= self.more_than:
            return None
        if self.less_than is not None and n >= self.less_than:
            return None
        return {"objects": n, "boxes": np.flatnonzero(counted).tolist()}
