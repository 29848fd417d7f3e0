"""`random` (SPEC §3): a share of all frames, whatever they show — its rule never reads the prediction, so a frame
can be drawn before it is decoded."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from framesift.collectors.sampling.strategies.base import Probability, Strategy
from framesift.collectors.sampling.strategies.registry import register
from framesift.predictions import Prediction


@register
class RandomStrategy(Strategy):
    needs_image: ClassVar[bool] = False
    chance_field: ClassVar[str] = "traffic_percentage"

    type: Literal["random"]
    traffic_percentage: Probability

    def evidence(self, prediction: Prediction, state: Any) -> dict[str, Any] | None:
        return {}
