"""The checks of a workflow definition that need the whole document: unique names, one image input, and every
selector naming what its field needs — an image, the predictions of a step that makes them on the same image, an
output a step offers, a parameter. What each step kind needs of its selectors, it says itself
(`Step.problems`), with the helpers here; each problem is one sentence, by its path (`steps[3].predictions: ...`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import SecretStr

from framesift.workflows.fields import SELECTOR


class Checker:
    """The checks of one document's steps and outputs, given its image inputs, its parameters (with their
    defaults), and which step types make detections and which make crops."""

    def __init__(self, steps: Sequence[Any], images: list[str], parameters: Mapping[str, Any],
                 detection_like: tuple[str, ...], crop_types: tuple[str, ...]):
        self.all_steps = steps
        self.steps = {step.name: step for step in steps}
        self.images = images
        self.parameters = dict(parameters)
        self.detection_like, self.crop_types = detection_like, crop_types
        self.names_unique = len(self.steps) == len(steps)
        self.secrets = {value.get_secret_value().removeprefix("$inputs.") for step in steps
                        for value in dict(step).values() if isinstance(value, SecretStr)}
        self._made_on: dict[str, str | None] = {}  # a step made from others -> the image its predictions are made on

    def problems(self, outputs: Sequence[str]) -> Iterator[str]:
        """Every problem of the steps and of the `outputs`' selectors."""
        if len(self.images) != 1:
            yield (f"inputs: framesift feeds each frame to one image input; this workflow declares "
                   f"{len(self.images)}")
        for i, step in enumerate(self.all_steps):
            yield from self._step(f"steps[{i}]", step)
        for i, selector in enumerate(outputs):
            yield from self._output(f"outputs[{i}].selector", selector)

    def _step(self, where: str, step: Any) -> Iterator[str]:
        kind = type(step)
        fields = step.model_dump(exclude={"type", "name", *kind.READS, *kind.UNREAD})
        for path, value in strings(fields):
            if value.startswith("$"):
                yield from self.parameter(f"{where}.{path}", value)
        if hasattr(step, "image"):
            yield from self._image(f"{where}.image", step.image)
        yield from step.problems(where, self)

    def same_image(self, where: str, step: Any, verb: str) -> Iterator[str]:
        """A step that takes an image and predictions must take the predictions made on that image."""
        match = SELECTOR.match(step.predictions)
        source = self.steps.get(match.group(2)) if match else None
        made_on = None if source is None else self.image_of(source)
        if source is not None and made_on is not None and made_on != step.image:
            yield (f"{where}.image: {step.type} {step.name!r} {verb} {step.image}, but its predictions come from "
                   f"{source.name!r}, which ran on {made_on}")

    def image_of(self, step: Any) -> str | None:
        """The image a step's predictions are made on (a filter's: its source's, through any chain of filters; a
        consensus: its first source's, all sharing one image); None where that is unclear. Each step made from
        others is walked once, however many steps read it."""
        chain: dict[str, None] = {}  # the steps walked this time, in order
        while step.made_from() and step.name not in self._made_on and step.name not in chain:
            chain[step.name] = None
            match = SELECTOR.match(step.made_from()[0])
            step = self.steps.get(match.group(2)) if match and match.group(1) == "steps" else None
            if step is None:
                break
        if step is None or step.name in chain:  # made from nothing, or a cycle
            image = None
        else:  # a step that takes an image, or one walked before
            image = self._made_on.get(step.name, getattr(step, "image", None))
        self._made_on.update(dict.fromkeys(chain, image))
        return image

    def _image(self, where: str, selector: str) -> Iterator[str]:
        match = SELECTOR.match(selector)
        if match and match.group(1) == "inputs" and match.group(2) in self.images and match.group(3) is None:
            return
        if match and match.group(1) == "steps" and match.group(3) == "crops" and \
                getattr(self.steps.get(match.group(2)), "type", None) in self.crop_types:
            return
        croppers = f"{', '.join(self.crop_types[:-1])} or {self.crop_types[-1]}" if len(self.crop_types) > 1 \
            else "".join(self.crop_types)
        yield from self.dangling(where, selector, f"an image input ($inputs.<name>) or the crops of a {croppers} "
                                                  "step")

    def predictions(self, where: str, selector: str) -> Iterator[str]:
        """`selector` must be the predictions of a detection-like step."""
        match = SELECTOR.match(selector)
        step = self.steps.get(match.group(2)) if match and match.group(1) == "steps" else None
        if step is None or step.type not in self.detection_like or match is None or match.group(3) != "predictions":
            yield from self.dangling(where, selector, f"the predictions of a detection-like step "
                                                      f"({', '.join(sorted(set(self.detection_like)))})")

    def parameter(self, where: str, selector: str) -> Iterator[str]:
        """`selector` must name a parameter input."""
        match = SELECTOR.match(selector)
        if not (match and match.group(1) == "inputs" and match.group(2) in self.parameters and not match.group(3)):
            yield from self.dangling(where, selector, "a parameter input ($inputs.<name>)")

    def _output(self, where: str, selector: str) -> Iterator[str]:
        match = SELECTOR.match(selector)
        step = self.steps.get(match.group(2)) if match and match.group(1) == "steps" else None
        if step is not None and match is not None and (match.group(3) == "*" or match.group(3) in step.outputs()):
            return
        if match and match.group(1) == "inputs" and match.group(2) in self.secrets:
            yield f"{where}: {selector} is a collector's target_dataset_api_key, a secret: never an output"
            return
        if match and match.group(1) == "inputs" and match.group(2) in self.parameters and not match.group(3):
            return
        yield from self.dangling(where, selector, "an output of a step ($steps.<name>.<output>) or a parameter")

    def dangling(self, where: str, selector: str, wanted: str) -> Iterator[str]:
        """Why a selector is not what the field needs: malformed, naming nothing, or naming the wrong thing."""
        match = SELECTOR.match(selector)
        if match is None:
            yield f"{where}: {selector!r} is not a selector (expected {wanted})"
        elif match.group(1) == "steps" and match.group(2) not in self.steps:
            yield f"{where}: {selector} names no step (expected {wanted})"
        elif match.group(1) == "inputs" and match.group(2) not in {*self.images, *self.parameters}:
            yield f"{where}: {selector} names no input (expected {wanted})"
        else:
            named = self.steps[match.group(2)].type if match.group(1) == "steps" else "an input"
            yield f"{where}: {selector} is not {wanted} (it names {named})"


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, text) of every string in a dumped step, nested ones included."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from strings(item, f"{path}[{i}]")

