"""`close_to_threshold` (SPEC §3): a confidence within `epsilon` of `threshold` — for detection, at least
`minimum_objects_close_to_threshold` eligible boxes; for classification, the top class (`only_top_classes`, the
predicted classes when multi-label) or any eligible class."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from framesift.collectors.sampling.strategies.base import Probability, Strategy, eligible
from framesift.collectors.sampling.strategies.registry import register
from framesift.predictions import ClassificationPrediction, DetectionPrediction, Prediction


@register
class CloseToThresholdStrategy(Strategy):
    type: Literal["close_to_threshold"]
    threshold: Probability
    epsilon: Probability
    probability: Probability
    selected_class_names: list[str] | None = None
    minimum_objects_close_to_threshold: Annotated[int, Field(ge=1)] = 1
    only_top_classes: bool = True

    def evidence(self, prediction: Prediction, state: Any) -> dict[str, Any] | None:
        seen = {"threshold": self.threshold, "epsilon": self.epsilon}
        if isinstance(prediction, DetectionPrediction):
            hits = eligible(self.selected_class_names, prediction.class_name) & self._close(prediction.confidence)
            if int(hits.sum()) < self.minimum_objects_close_to_threshold:
                return None
            return {**seen, "boxes": np.flatnonzero(hits).tolist()}
        if not isinstance(prediction, ClassificationPrediction):
            return None
        names, confidences = prediction.class_names, prediction.confidences
        if self.only_top_classes and not prediction.multi_label:
            top = int(np.argmax(confidences))
            holds = bool(eligible(self.selected_class_names, [names[top]])[0]
                         and self._close(confidences[top:top + 1])[0])
            return {**seen, "classes": [names[top]]} if holds else None
        considered = eligible(self.selected_class_names, names)
        if self.only_top_classes:  # multi-label: only the predicted classes count
            considered &= eligible(prediction.predicted_classes, names)
        hits = considered & self._close(confidences)
        return {**seen, "classes": [names[i] for i in np.flatnonzero(hits)]} if hits.any() else None

    def _close(self, confidences: np.ndarray) -> np.ndarray:
        return np.abs(confidences - self.threshold) < self.epsilon
