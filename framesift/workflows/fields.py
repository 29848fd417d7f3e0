"""What a workflow step's fields hold: names, selectors (`$inputs.<name>`, `$steps.<name>.<output>`), and values
that may also be a parameter (`Fraction`: a number from 0 to 1 or `$inputs.<name>`), each refused in one sentence.

Example:
    >>> named_step("$steps.det.predictions")
    'det'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

NAME_PATTERN = r"^[A-Za-z0-9_\-]+$"
# \Z, not $: `$` also matches before a final newline, and `$steps.det.predictions\n` names no output
SELECTOR = re.compile(r"^\$(inputs|steps)\.([A-Za-z0-9_\-]+)(?:\.([A-Za-z0-9_\-]+|\*))?\Z")
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


class Strict(BaseModel):
    """A part of a definition: unknown fields refused, types not coerced, frozen once valid."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def named_step(selector: str) -> str:
    """The step a validated `$steps.<name>.<output>` selector names."""
    match = SELECTOR.match(selector)
    assert match is not None and match.group(1) == "steps", selector
    return match.group(2)


def or_parameter(kind: str, accepts: Callable[[Any], bool]) -> AfterValidator:
    """The check of a field that holds `kind` (what `accepts` accepts) or a parameter selector (`$inputs.<name>`)."""

    def check(value: Any) -> Any:
        if (isinstance(value, str) and value.startswith("$")) or accepts(value):
            return value
        raise ValueError(f"must be {kind} or a parameter ($inputs.<name>)")

    return AfterValidator(check)


def number(low: float, high: float, *, integer: bool = False, low_open: bool = False) -> Callable[[Any], bool]:
    """What accepts a number (a whole one with `integer`) from `low` (excluded with `low_open`) to `high`."""
    def accepts(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            return False
        return (low < value if low_open else low <= value) and value <= high
    return accepts


Fraction = Annotated[Any, or_parameter("a number from 0 to 1", number(0, 1))]
Size = Annotated[Any, or_parameter("a number above 0, at most 1", number(0, 1, low_open=True))]
Pixels = Annotated[Any, or_parameter("a whole number of pixels, 0 or more", number(0, float("inf"), integer=True))]
PositivePixels = Annotated[Any, or_parameter("a whole number of pixels above 0",
                                             number(0, float("inf"), integer=True, low_open=True))]
Count = Annotated[Any, or_parameter("a whole number above 0", number(0, float("inf"), integer=True, low_open=True))]
Flag = Annotated[Any, or_parameter("true or false", lambda value: isinstance(value, bool))]
Text = Annotated[Any, or_parameter("a text", lambda value: isinstance(value, str) and value != "")]
Classes = Annotated[Any, or_parameter("a list of class names", lambda value: isinstance(value, list)
                                      and all(isinstance(v, str) for v in value))]
