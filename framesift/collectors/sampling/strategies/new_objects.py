"""`new_objects`, framesift's own: an object that was not in the source's previous frames (a new track). It keeps
one tracker per source (`new_state`), which sees every frame of that source; a new track is itself the proof that
a frame is no copy of one collected lately, so its match gets past the near-duplicate gate."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from framesift.collectors.sampling.strategies.base import Probability, Strategy, eligible
from framesift.collectors.sampling.strategies.registry import register
from framesift.collectors.sampling.tracking import IouTracker
from framesift.predictions import DetectionPrediction, Prediction


@register
class NewObjectsStrategy(Strategy):
    """framesift's own: matches a frame on which an object of an eligible class appears that was not in the
    previous frames of that source — a new track (`framesift.collectors.sampling.tracking`), reported once, after it was
    seen `min_frames` frames in a row — so each object that passes is sampled about once."""

    passes_near_duplicates: ClassVar[bool] = True

    type: Literal["new_objects"]
    probability: Probability
    selected_class_names: list[str] | None = None
    min_iou: Annotated[float, Field(gt=0.0, le=1.0)] = 0.3
    max_missed_frames: Annotated[int, Field(ge=0)] = 30
    min_frames: Annotated[int, Field(ge=1)] = 2

    def new_state(self) -> IouTracker:
        return IouTracker(self.min_iou, self.max_missed_frames, self.min_frames)

    def evidence(self, prediction: Prediction, state: IouTracker | None) -> dict[str, Any] | None:
        if state is None or not isinstance(prediction, DetectionPrediction):
            return None
        keep = eligible(self.selected_class_names, prediction.class_name)
        names = [name for name, kept in zip(prediction.class_name, keep, strict=True) if kept]
        new = state.update(prediction.xyxy[keep], names)  # every frame: the tracks must see them all
        if not new:
            return None
        indexes = np.flatnonzero(keep)
        return {"track_ids": new, "classes": [state.class_of(track) for track in new],
                "boxes": [int(indexes[state.detection_of[track]]) for track in new]}
