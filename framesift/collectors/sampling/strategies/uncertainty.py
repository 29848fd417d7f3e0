"""`uncertainty`, framesift's own: what the model computed before its confidence threshold and NMS."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from framesift.collectors.sampling.strategies.base import Probability, Strategy, eligible
from framesift.collectors.sampling.strategies.registry import register
from framesift.predictions import ClassificationPrediction, DetectionPrediction, Prediction


@register
class UncertaintyStrategy(Strategy):
    """framesift's own: matches on what the model computed before its confidence threshold and NMS — for
    detection, `minimum_candidates` candidates of eligible classes whose best class score lies in `score_band`
    (below the threshold too: the objects the model almost missed); for classification, a top-two margin below
    `max_margin` or a normalised entropy of at least `min_entropy`. Never matches a stub."""

    type: Literal["uncertainty"]
    probability: Probability
    score_band: Annotated[list[Probability], Field(min_length=2, max_length=2)] | None = None
    minimum_candidates: Annotated[int, Field(ge=1)] = 1
    selected_class_names: list[str] | None = None
    max_margin: Probability | None = None
    min_entropy: Probability | None = None

    @model_validator(mode="after")
    def _something_to_match(self) -> UncertaintyStrategy:
        if self.score_band is None and self.max_margin is None and self.min_entropy is None:
            raise ValueError("give score_band (detection), max_margin or min_entropy (classification)")
        if self.score_band is not None and self.score_band[0] >= self.score_band[1]:
            raise ValueError("score_band is [low, high] with low < high")
        return self

    def evidence(self, prediction: Prediction, state: Any) -> dict[str, Any] | None:
        if isinstance(prediction, DetectionPrediction):
            return self._candidates(prediction)
        if isinstance(prediction, ClassificationPrediction):
            return self._torn(prediction)
        return None

    def _candidates(self, prediction: DetectionPrediction) -> dict[str, Any] | None:
        if self.score_band is None:
            return None
        scores, names = prediction.candidate_score, prediction.candidate_class
        if scores is None or names is None:  # read from JSON: only what passed the threshold is known
            scores, names = prediction.confidence, prediction.class_name
        low, high = self.score_band
        hits = eligible(self.selected_class_names, names) & (scores >= low) & (scores < high)
        found = int(hits.sum())
        if found < self.minimum_candidates:
            return None
        shown = eligible(self.selected_class_names, prediction.class_name) & \
            (prediction.confidence >= low) & (prediction.confidence < high)  # those that passed the threshold
        return {"candidates_in_band": found, "scores": sorted((round(float(v), 4) for v in scores[hits]),
                                                              reverse=True)[:5],
                "band": [low, high], "boxes": np.flatnonzero(shown).tolist()}

    def _torn(self, prediction: ClassificationPrediction) -> dict[str, Any] | None:
        confidences = np.sort(prediction.confidences)[::-1]
        margin = float(confidences[0] - confidences[1]) if confidences.size > 1 else 1.0
        p = confidences[confidences > 0] / max(float(confidences.sum()), 1e-12)
        entropy = float(-(p * np.log(p)).sum() / math.log(confidences.size)) if confidences.size > 1 else 0.0
        if (self.max_margin is not None and margin < self.max_margin) or \
                (self.min_entropy is not None and entropy >= self.min_entropy):
            return {"margin": round(margin, 4), "entropy": round(entropy, 4)}
        return None
