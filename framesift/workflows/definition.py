"""A workflow definition, in the shape Roboflow's workflows used when the `ActiveLearningDataCollector` block
existed, validated as strictly as an active-learning configuration.

```json
{"version": "1.0",
 "inputs": [{"type": "InferenceImage", "name": "image"},
            {"type": "InferenceParameter", "name": "al_off", "default_value": false}],
 "steps": [{"type": "ObjectDetectionModel", "name": "det", "image": "$inputs.image", "model_id": "det.onnx"},
           {"type": "Crop", "name": "crop", "image": "$inputs.image", "predictions": "$steps.det.predictions"},
           {"type": "ClassificationModel", "name": "cls", "image": "$steps.crop.crops", "model_id": "cls.onnx"},
           {"type": "ActiveLearningDataCollector", "name": "al", "image": "$steps.crop.crops",
            "predictions": "$steps.cls.top", "target_dataset": "crops", "disable_active_learning": "$inputs.al_off",
            "active_learning_configuration": {...}}],
 "outputs": [{"type": "JsonField", "name": "classes", "selector": "$steps.cls.top"}]}
```

The step types are those of the registry (`framesift.workflows.step`: framesift's kinds in
`framesift.workflows.steps`, one file each, and any registered from outside). A bare `{"specification": {...}}`
wrapper is accepted, and so are the later names `WorkflowImage`, `WorkflowParameter` and `Roboflow...Model`. Besides
model, crop, filter and collector steps, the block's other prediction sources: `DetectionsConsensus`, `YoloWorld`
and `MultiLabelClassificationModel`. Every problem is listed by its path (`steps[3].predictions: ...`): unknown step
types and fields, duplicate names, selectors that name nothing or the wrong kind of thing, a collector whose
predictions were made on another image than the one it collects, cycles.

Example:
    >>> definition = parse_workflow({"version": "1.0", "inputs": [{"type": "InferenceImage", "name": "image"}],
    ...     "steps": [{"type": "ObjectDetectionModel", "name": "det", "image": "$inputs.image", "model_id": "stub"}],
    ...     "outputs": []})
    >>> [step.name for step in definition.order]
    ['det']
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, ValidationError, create_model

from framesift.collectors.config.schema import (
    ActiveLearningConfig,
    Tagged,
    parse_config,
    validation_problems,
)
from framesift.documents import read_document
from framesift.errors import ConfigError
from framesift.workflows import steps as _registered  # noqa: F401 (the step kinds framesift ships)
from framesift.workflows.checks import Checker, strings
from framesift.workflows.fields import SELECTOR, Name, named_step
from framesift.workflows.fields import Strict as _Strict
from framesift.workflows.step import Step, crop_types, detection_like, step_kinds, step_types
from framesift.workflows.steps.active_learning_data_collector import CollectorStep
from framesift.workflows.steps.model import MODEL_TASKS, ModelStep

__all__ = ["SELECTOR", "CollectorStep", "ModelStep", "WorkflowDefinition", "is_workflow", "load_workflow_definition",
           "named_step", "parse_workflow", "single_definition"]


# -- inputs and outputs ---------------------------------------------------------------------------------------------
class ImageInput(_Strict):
    type: Literal["InferenceImage", "WorkflowImage"]
    name: Name


class ParameterInput(_Strict):
    type: Literal["InferenceParameter", "WorkflowParameter"]
    name: Name
    default_value: Any = None
    kind: list[Any] = []  # the later format's type hints: accepted, not checked


class JsonField(_Strict):
    type: Literal["JsonField"]
    name: Name
    selector: str


Input = Annotated[Union[ImageInput, ParameterInput], Field(discriminator="type")]  # noqa: UP007
INPUT_TYPES = ("InferenceImage", "WorkflowImage", "InferenceParameter", "WorkflowParameter")
PATTERNS = {"name": "must be 1 or more characters from A-Z a-z 0-9 _ -"}


class _Document(_Strict):
    """A definition as written, before the checks that need all of it; its `steps` are of the registered kinds
    (`_document` makes the model of the kinds registered now)."""

    version: str = "1.0"
    inputs: list[Input]
    steps: list[Step]
    outputs: list[JsonField] = []


@functools.cache
def _document(kinds: tuple[type[Step], ...]) -> type[_Document]:
    """The document whose steps are of `kinds`, told apart by their `type`."""
    step = Annotated[Union[kinds], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
    return create_model("_Document", __base__=_Document, steps=(list[step], ...))


def _lists(kinds: Sequence[type[Step]]) -> dict[str, Tagged]:
    """The fields holding items told apart by `type`, for messages (`unknown step type 'X' (expected one of ...)`)."""
    tagged = {field: Tagged(noun, types) for kind in kinds for field, (noun, types) in kind.TAGGED.items()}
    return {"steps": Tagged("step", step_types()), "inputs": Tagged("input", INPUT_TYPES),
            "outputs": Tagged("output", ("JsonField",)), **tagged}


# -- the validated definition ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkflowDefinition:
    """A valid definition: its image input, parameters (with defaults), steps in an order that runs each after
    what it reads, outputs, and the active-learning configuration of each collector step."""

    image: str  # the name of the image input
    parameters: dict[str, Any]
    order: tuple[Any, ...]  # the steps, each after the steps it reads
    outputs: tuple[JsonField, ...]
    configurations: dict[str, ActiveLearningConfig]  # collector step -> its inline configuration (the others: a store)

    def step(self, name: str) -> Any:
        return self._steps[name]

    @functools.cached_property
    def _steps(self) -> dict[str, Any]:
        return {step.name: step for step in self.order}


def load_workflow_definition(path: str | os.PathLike[str]) -> WorkflowDefinition:
    """Read and validate a workflow definition file (JSON or YAML); raises `ConfigError` listing every problem."""
    return parse_workflow(read_document(Path(path)), str(path))


def is_workflow(data: Any) -> bool:
    """Whether a parsed file is a workflow definition rather than an active-learning configuration."""
    return isinstance(data, Mapping) and ("steps" in data or "specification" in data)


def parse_workflow(data: Any, source: str = "workflow") -> WorkflowDefinition:
    """Validate a workflow definition; raises `ConfigError` listing every problem by its path."""
    if isinstance(data, Mapping) and set(data) == {"specification"}:
        data = data["specification"]
    if not isinstance(data, Mapping):
        raise ConfigError([f"(top level): must be a mapping, got {type(data).__name__}"], source)
    kinds = step_kinds()
    model = _document(kinds)
    try:
        document = model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(list(dict.fromkeys(validation_problems(error, _lists(kinds), PATTERNS, model))),
                          source) from None
    except RecursionError:
        raise ConfigError(["(top level): nested too deeply to be a workflow"], source) from None
    images = [i.name for i in document.inputs if isinstance(i, ImageInput)]
    parameters = {i.name: i.default_value for i in document.inputs if isinstance(i, ParameterInput)}
    checker = Checker(document.steps, images, parameters, detection_like(), crop_types())
    problems = [*_names(document), *checker.problems([output.selector for output in document.outputs])]
    configurations = {}
    for i, step in enumerate(document.steps):
        if isinstance(step, CollectorStep) and step.active_learning_configuration is not None:
            try:
                configurations[step.name] = _configuration(step, i)
            except ConfigError as error:
                problems += error.problems
    order = _order(document.steps) if checker.names_unique else ()
    if isinstance(order, str):
        problems.append(order)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)), source)
    assert not isinstance(order, str)
    return WorkflowDefinition(images[0], parameters, order, tuple(document.outputs), configurations)


def single_definition(task_type: str, model_id: str, collect: bool) -> WorkflowDefinition:
    """One model step (`model`) on every frame and, with `collect`, one collector step (`collect`) on its
    predictions: the workflow that `--model` and `--al-config` run."""
    step_type = next(name for name, task in MODEL_TASKS.items() if task == task_type)
    steps: list[Any] = [ModelStep(type=step_type, name="model", image="$inputs.image", model_id=model_id)]
    if collect:
        output = "top" if task_type == "classification" else "predictions"
        steps.append(CollectorStep.model_validate({
            "type": "ActiveLearningDataCollector", "name": "collect", "image": "$inputs.image",
            "predictions": f"$steps.model.{output}", "target_dataset": "dataset"}))
    return WorkflowDefinition("image", {}, tuple(steps), (), {})


def _configuration(step: CollectorStep, index: int) -> ActiveLearningConfig:
    where = f"steps[{index}].active_learning_configuration"
    assert step.active_learning_configuration is not None
    try:
        return parse_config(step.active_learning_configuration)
    except ConfigError as error:
        raise ConfigError([f"{where}{'' if p.startswith('(top level)') else '.'}{p.replace('(top level)', '')}"
                           for p in error.problems]) from None


def _order(steps: list[Any]) -> tuple[Any, ...] | str:
    """The steps in an order that runs each after the steps it reads — level by level (first the steps that read no
    step, then those that read only them, ...), each level in the order of definition — or a sentence naming a
    cycle. Kahn's topological sort over the step names: linear in the steps and what they read."""
    names = {step.name for step in steps}
    reads = {step.name: {m.group(2) for m in map(SELECTOR.match, _selectors(step))
                         if m and m.group(1) == "steps" and m.group(2) in names} for step in steps}
    readers: dict[str, list[str]] = {name: [] for name in reads}
    for name, read in reads.items():
        for other in read:
            readers[other].append(name)
    unread = {name: len(read) for name, read in reads.items()}  # how many of its reads have not run yet
    level = dict.fromkeys(reads, 0)
    ready = [name for name, count in unread.items() if count == 0]
    while ready:
        name = ready.pop()
        for reader in readers[name]:
            level[reader] = max(level[reader], level[name] + 1)
            unread[reader] -= 1
            if unread[reader] == 0:
                ready.append(reader)
    stuck = [step.name for step in steps if unread[step.name]]
    if stuck:
        return f"steps: {' -> '.join(_cycle(reads, stuck))} form a cycle"
    position = {step.name: i for i, step in enumerate(steps)}
    return tuple(sorted(steps, key=lambda step: (level[step.name], position[step.name])))


def _cycle(reads: Mapping[str, set[str]], stuck: list[str]) -> list[str]:
    """One cycle among the `stuck` steps (each of which reads another of them), as a path that ends where it
    starts."""
    among = set(stuck)
    path = [stuck[0]]
    at = {stuck[0]: 0}
    while True:
        following = min(reads[path[-1]] & among)
        if following in at:
            return [*path[at[following]:], following]
        at[following] = len(path)
        path.append(following)


def _selectors(step: Step) -> Iterator[str]:
    """Every selector a step holds (image, predictions, parameters, a filter's reference values)."""
    for _, value in strings(step.model_dump(exclude=set(type(step).UNREAD))):
        if value.startswith("$"):
            yield value


def _names(document: _Document) -> Iterator[str]:
    """A name given twice among the steps, the inputs or the outputs."""
    for kind, items in (("steps", document.steps), ("inputs", document.inputs), ("outputs", document.outputs)):
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            if item.name in seen:
                yield f"{kind}[{i}].name: {item.name!r} is the name of {kind}[{seen[item.name]}] too"
            seen.setdefault(item.name, i)
