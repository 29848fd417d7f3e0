"""What every sampling strategy is: a strict pydantic model of its configuration fields (`name`, `tags`, `limits`,
`type` and its own), its rule over one prediction (`evidence`), the probability of its draw (`chance`), whether it
needs the image (`needs_image`), what it keeps per source between frames (`new_state`) and whether its match gets
past the near-duplicate gate (`passes_near_duplicates`).

The models here are the strict ones of the whole configuration (`StrictModel`: an unknown field, a value of the
wrong type, a change after validation are refused), so a strategy's fields are validated as Roboflow's format is.

Example:
    >>> Limit(type="hourly", value=10).window_seconds
    3600
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from framesift.predictions import Prediction

TAG_PATTERN = r"^[a-zA-Z0-9\-_:/.\[\]<>{}@]{1,64}$"
LIMIT_WINDOWS = {"minutely": 60, "hourly": 3600, "daily": 86400}

Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class StrictModel(BaseModel):
    """A model of the configuration: unknown fields refused, no coercion (`"1"` is no number), frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Limit(StrictModel):
    """At most `value` datapoints of a strategy in any sliding window of the given length."""

    type: Literal["minutely", "hourly", "daily"]
    value: Annotated[int, Field(gt=0)]

    @property
    def window_seconds(self) -> int:
        return LIMIT_WINDOWS[self.type]


class Strategy(StrictModel):
    """A sampling strategy's configuration and rule. A subclass declares `type: Literal["<its type>"]`, its own
    fields (with the field named by `chance_field`, `probability` unless told otherwise) and `evidence`; `register`
    makes a configuration know it."""

    needs_image: ClassVar[bool] = True  # False: the rule never reads the prediction, so a frame can be drawn undecoded
    chance_field: ClassVar[str] = "probability"  # the field holding the probability of the draw
    passes_near_duplicates: ClassVar[bool] = False  # True: its match proves the frame no copy of one collected lately

    name: Annotated[str, StringConstraints(min_length=1)]
    tags: list[Tag] = []
    limits: list[Limit] = []
    type: str

    def chance(self) -> float:
        """The probability of the draw made once the rule holds."""
        return float(getattr(self, self.chance_field))

    def new_state(self) -> Any:
        """What the strategy keeps per source between frames (made on the source's first frame), or None."""
        return None

    @classmethod
    def keeps_state(cls) -> bool:
        """Whether it keeps something per source (`new_state` overridden): then its frames are never drawn before
        they are decoded, a draw made ahead knowing no source."""
        return cls.new_state is not Strategy.new_state

    def evidence(self, prediction: Prediction, state: Any) -> dict[str, Any] | None:
        """None when the rule fails on `prediction`; else what made it match (the record's `selected_because`:
        `boxes`, the indexes of the detections that decided, and what the strategy saw). `state` is this source's
        `new_state()`, None where no source's state is kept (a draw before decoding, `content_matches`). A
        strategy that `needs_image` never sees a `StubPrediction`; one that does not is also evaluated on one (a
        frame drawn before it is decoded) and must decide alike without the prediction."""
        raise NotImplementedError(f"{type(self).__qualname__} has no rule (define its evidence)")


def eligible(selected: Sequence[str] | None, names: Sequence[str]) -> np.ndarray:
    """Which of `names` a strategy's `selected_class_names` keeps (all of them when it names none)."""
    if selected is None:
        return np.ones(len(names), dtype=bool)
    chosen = set(selected)
    return np.fromiter((name in chosen for name in names), dtype=bool, count=len(names))
