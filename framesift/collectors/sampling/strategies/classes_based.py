"""`classes_based` (SPEC §3): a classification whose top class (the predicted classes when multi-label) is one of
`selected_class_names`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from framesift.collectors.sampling.strategies.base import Probability, Strategy
from framesift.collectors.sampling.strategies.registry import register
from framesift.predictions import ClassificationPrediction, Prediction


@register
class ClassesBasedStrategy(Strategy):
    type: Literal["classes_based"]
    selected_class_names: Annotated[list[str], Field(min_length=1)]
    probability: Probability

    def evidence(self, prediction: Prediction, state: Any) -> dict[str, Any] | None:
        if not isinstance(prediction, ClassificationPrediction):
            return None
        selected = set(self.selected_class_names)
        chosen = prediction.predicted_classes if prediction.multi_label else [prediction.top]
        found = [name for name in chosen if name in selected]
        return {"classes": found} if found else None
