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

A bare `{"specification": {...}}` wrapper is accepted, and so are the later names `WorkflowImage`,
`WorkflowParameter` and `Roboflow...Model`. Besides model, crop, filter and collector steps, the block's other
prediction sources: `DetectionsConsensus`, `YoloWorld` and `MultiLabelClassificationModel`. Every problem is
listed by its path (`steps[3].predictions: ...`):
unknown step types and fields, duplicate names, selectors that name nothing or the wrong kind of thing, a collector
whose predictions were made on another image than the one it collects, cycles.

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
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from framesift.collectors.config.schema import (
    ActiveLearningConfig,
    Tagged,
    parse_config,
    validation_problems,
)
from framesift.documents import read_document
from framesift.errors import ConfigError
from framesift.paths import dataset_name_refusal

NAME_PATTERN = r"^[A-Za-z0-9_\-]+$"
# \Z, not $: `$` also matches before a final newline, and `$steps.det.predictions\n` names no output
SELECTOR = re.compile(r"^\$(inputs|steps)\.([A-Za-z0-9_\-]+)(?:\.([A-Za-z0-9_\-]+|\*))?\Z")
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


def _or_parameter(kind: str, accepts: Callable[[Any], bool]) -> AfterValidator:
    """The check of a field that holds `kind` (what `accepts` accepts) or a parameter selector (`$inputs.<name>`)."""

    def check(value: Any) -> Any:
        if (isinstance(value, str) and value.startswith("$")) or accepts(value):
            return value
        raise ValueError(f"must be {kind} or a parameter ($inputs.<name>)")

    return AfterValidator(check)


def _number(low: float, high: float, *, integer: bool = False, low_open: bool = False) -> Callable[[Any], bool]:
    def accepts(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            return False
        return (low < value if low_open else low <= value) and value <= high
    return accepts


Fraction = Annotated[Any, _or_parameter("a number from 0 to 1", _number(0, 1))]
Size = Annotated[Any, _or_parameter("a number above 0, at most 1", _number(0, 1, low_open=True))]
Pixels = Annotated[Any, _or_parameter("a whole number of pixels, 0 or more", _number(0, float("inf"), integer=True))]
PositivePixels = Annotated[Any, _or_parameter("a whole number of pixels above 0",
                                              _number(0, float("inf"), integer=True, low_open=True))]
Count = Annotated[Any, _or_parameter("a whole number above 0", _number(0, float("inf"), integer=True, low_open=True))]
Flag = Annotated[Any, _or_parameter("true or false", lambda value: isinstance(value, bool))]
Text = Annotated[Any, _or_parameter("a text", lambda value: isinstance(value, str) and value != "")]
Classes = Annotated[Any, _or_parameter("a list of class names", lambda value: isinstance(value, list)
                                       and all(isinstance(v, str) for v in value))]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


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


# -- steps ----------------------------------------------------------------------------------------------------------
DETECTION_MODELS = {"ObjectDetectionModel": "object-detection", "RoboflowObjectDetectionModel": "object-detection",
                    "InstanceSegmentationModel": "instance-segmentation",
                    "RoboflowInstanceSegmentationModel": "instance-segmentation",
                    "KeypointsDetectionModel": "keypoint-detection",
                    "RoboflowKeypointDetectionModel": "keypoint-detection"}
CLASSIFICATION_MODELS = {"ClassificationModel": "classification", "RoboflowClassificationModel": "classification"}
MULTI_LABEL_MODELS = {"MultiLabelClassificationModel": "classification",
                      "RoboflowMultiLabelClassificationModel": "classification"}
MODEL_TASKS = {**DETECTION_MODELS, **CLASSIFICATION_MODELS, **MULTI_LABEL_MODELS}
DECODE_MODES = ("accurate", "tradeoff", "fast")
# Roboflow's fields each model step type carries beyond `image`, `model_id`, `confidence` and the AL fields
_DETECTION_FIELDS = {"iou_threshold", "class_filter", "max_detections", "class_agnostic_nms", "max_candidates"}
_TYPE_FIELDS = {**{t: _DETECTION_FIELDS for t in DETECTION_MODELS},
                **{t: _DETECTION_FIELDS | {"keypoint_confidence"} for t in DETECTION_MODELS
                   if DETECTION_MODELS[t] == "keypoint-detection"},
                **{t: _DETECTION_FIELDS | {"mask_decode_mode", "tradeoff_factor"} for t in DETECTION_MODELS
                   if DETECTION_MODELS[t] == "instance-segmentation"},
                **{t: {"iou_threshold", "class_filter", "max_detections"} for t in CLASSIFICATION_MODELS},
                **{t: set() for t in MULTI_LABEL_MODELS}}


class ModelStep(_Strict):
    """Runs a model on an image or on crops. `model_id`: an ONNX file, `demo`, `stub`, or `<dataset>/0` (the
    documented way to ask for a dataset's null model). `class_agnostic_nms`, `max_candidates` and
    `keypoint_confidence` are honoured; `disable_active_learning`, `active_learning_target_dataset`,
    `mask_decode_mode` and `tradeoff_factor` are accepted and have no effect: framesift's model steps never collect
    by themselves, and masks are always decoded at full resolution. Each field only on the step types Roboflow gave
    it (`keypoint_confidence` on keypoint models, ...)."""

    type: Literal[tuple(MODEL_TASKS)]  # type: ignore[valid-type]
    name: Name
    image: str
    model_id: Text
    confidence: Fraction = None
    iou_threshold: Fraction = None
    class_filter: Classes = None
    max_detections: Count = None
    class_agnostic_nms: Flag = False
    max_candidates: Count = None
    keypoint_confidence: Fraction = None
    mask_decode_mode: Annotated[Any, _or_parameter("accurate, tradeoff or fast", DECODE_MODES.__contains__)] = None
    tradeoff_factor: Fraction = None
    disable_active_learning: Flag = False
    active_learning_target_dataset: Text = None

    @model_validator(mode="after")
    def _fields_of_its_type(self) -> ModelStep:
        common = {"type", "name", "image", "model_id", "confidence", "disable_active_learning",
                  "active_learning_target_dataset"}
        foreign = sorted(self.model_fields_set - common - _TYPE_FIELDS[self.type])
        if foreign:
            raise ValueError(f"{self.type} has no field {foreign[0]!r}")
        return self

    @property
    def task_type(self) -> str:
        return MODEL_TASKS[self.type]

    @property
    def multi_label(self) -> bool:
        return self.type in MULTI_LABEL_MODELS


YOLO_WORLD_VERSIONS = ("s", "m", "l", "x", "v2-s", "v2-m", "v2-l", "v2-x")


class YoloWorldStep(_Strict):
    """An open-vocabulary detector exported to ONNX for `class_names`. Its model is `yolo_world/<version>` (resolved
    as any model id is), or framesift's own `model_id` (an ONNX file, or any id) when given; the model's class names
    must be `class_names`."""

    type: Literal["YoloWorld", "YoloWorldModel"]
    name: Name
    image: str = Field(validation_alias=AliasChoices("image", "images"))
    class_names: Classes
    version: Annotated[Any, _or_parameter(f"one of {', '.join(YOLO_WORLD_VERSIONS)}",
                                          YOLO_WORLD_VERSIONS.__contains__)] = "l"
    confidence: Fraction = None
    model_id: Text = None  # framesift's own

    @property
    def task_type(self) -> str:
        return "object-detection"


AGGREGATIONS = ("average", "max", "min")
RequiredObjects = Annotated[Any, _or_parameter(
    "a whole number above 0 or a mapping of class names to whole numbers above 0",
    lambda value: _number(0, float("inf"), integer=True, low_open=True)(value) or (
        isinstance(value, dict) and all(_number(0, float("inf"), integer=True, low_open=True)(v)
                                        for v in value.values())))]


class ConsensusStep(_Strict):
    """`DetectionsConsensus`: the detections of several detection-like steps (made on one image) merged where
    `required_votes` of them overlap by more than `iou_threshold`; `object_present` and `presence_confidence` say
    whether `required_objects` were found. Fields, defaults and semantics as Roboflow documented them."""

    type: Literal["DetectionsConsensus"]
    name: Name
    predictions_batches: Annotated[list[str], Field(min_length=1)] = Field(
        validation_alias=AliasChoices("predictions_batches", "predictions"))
    required_votes: Count
    class_aware: Flag = True
    iou_threshold: Fraction = 0.3
    confidence: Fraction = 0.0
    classes_to_consider: Classes = None
    required_objects: RequiredObjects = None
    presence_confidence_aggregation: Literal[AGGREGATIONS] = "max"  # type: ignore[valid-type]
    detections_merge_confidence_aggregation: Literal[AGGREGATIONS] = "average"  # type: ignore[valid-type]
    detections_merge_coordinates_aggregation: Literal[AGGREGATIONS] = "average"  # type: ignore[valid-type]


class CropStep(_Strict):
    """Cuts each detection out of the image; `padding` (pixels on every side) is framesift's own; `detections` is
    the old name of `predictions`."""

    type: Literal["Crop"]
    name: Name
    image: str
    predictions: str = Field(validation_alias=AliasChoices("predictions", "detections"))
    padding: Annotated[int, Field(ge=0)] = 0


class AbsoluteStaticCrop(_Strict):
    type: Literal["AbsoluteStaticCrop"]
    name: Name
    image: str
    x_center: Pixels
    y_center: Pixels
    width: PositivePixels
    height: PositivePixels


class RelativeStaticCrop(_Strict):
    type: Literal["RelativeStaticCrop"]
    name: Name
    image: str
    x_center: Fraction
    y_center: Fraction
    width: Size
    height: Size


FILTER_FIELDS = ("class_name", "confidence", "x_min", "y_min", "x_max", "y_max", "width", "height")
FILTER_OPERATORS = ("equal", "not_equal", "lower_than", "greater_than", "lower_or_equal_than",
                    "greater_or_equal_than", "in", "str_starts_with", "str_ends_with", "str_contains")


class DetectionFilterDefinition(_Strict):
    type: Literal["DetectionFilterDefinition"]
    field_name: Literal[FILTER_FIELDS]  # type: ignore[valid-type]
    operator: Literal[FILTER_OPERATORS]  # type: ignore[valid-type]
    reference_value: Any


class CompoundDetectionFilterDefinition(_Strict):
    type: Literal["CompoundDetectionFilterDefinition"]
    left: FilterDefinition
    operator: Literal["and", "or"]
    right: FilterDefinition


FilterDefinition = Annotated[Union[DetectionFilterDefinition, CompoundDetectionFilterDefinition],  # noqa: UP007
                             Field(discriminator="type")]
CompoundDetectionFilterDefinition.model_rebuild()


class DetectionFilterStep(_Strict):
    """Keeps the detections for which `filter_definition` holds (by class, confidence or box)."""

    type: Literal["DetectionFilter"]
    name: Name
    predictions: str
    filter_definition: FilterDefinition


class CollectorStep(_Strict):
    """The `ActiveLearningDataCollector` block: samples the image (or crops) it names with the predictions it
    names into `target_dataset`; no outputs."""

    type: Literal["ActiveLearningDataCollector"]
    name: Name
    image: str = Field(validation_alias=AliasChoices("image", "images"))
    predictions: str
    prediction_type: str | None = None  # the block format's `$steps.<model>.prediction_type`
    target_dataset: Text
    target_dataset_api_key: SecretStr | None = None
    disable_active_learning: Flag = False
    active_learning_configuration: dict[str, Any] | None = None


Step = Annotated[Union[ModelStep, YoloWorldStep, ConsensusStep, CropStep, AbsoluteStaticCrop,  # noqa: UP007
                       RelativeStaticCrop, DetectionFilterStep, CollectorStep], Field(discriminator="type")]
Input = Annotated[Union[ImageInput, ParameterInput], Field(discriminator="type")]  # noqa: UP007
STEP_TYPES = (*MODEL_TASKS, "YoloWorld", "YoloWorldModel", "DetectionsConsensus", "Crop", "AbsoluteStaticCrop",
              "RelativeStaticCrop", "DetectionFilter", "ActiveLearningDataCollector")
CROP_TYPES = ("Crop", "AbsoluteStaticCrop", "RelativeStaticCrop")
LISTS = {"steps": Tagged("step", STEP_TYPES),
         "inputs": Tagged("input", ("InferenceImage", "WorkflowImage", "InferenceParameter", "WorkflowParameter")),
         "outputs": Tagged("output", ("JsonField",)),
         "filter_definition": Tagged("filter", ("DetectionFilterDefinition", "CompoundDetectionFilterDefinition")),
         "left": Tagged("filter", ("DetectionFilterDefinition", "CompoundDetectionFilterDefinition")),
         "right": Tagged("filter", ("DetectionFilterDefinition", "CompoundDetectionFilterDefinition"))}
PATTERNS = {"name": "must be 1 or more characters from A-Z a-z 0-9 _ -"}
YOLO_WORLD_TYPES = ("YoloWorld", "YoloWorldModel")
OUTPUTS = {**{t: ("predictions", "image", "parent_id", "prediction_type") for t in (*DETECTION_MODELS,
                                                                                     *YOLO_WORLD_TYPES)},
           **{t: ("predictions", "top", "confidence", "parent_id", "prediction_type") for t in CLASSIFICATION_MODELS},
           **{t: ("predictions", "predicted_classes", "parent_id", "prediction_type") for t in MULTI_LABEL_MODELS},
           **{t: ("crops", "parent_id") for t in CROP_TYPES},
           "DetectionsConsensus": ("predictions", "image", "parent_id", "object_present", "presence_confidence",
                                   "prediction_type"),
           "DetectionFilter": ("predictions", "parent_id", "image"), "ActiveLearningDataCollector": ()}
DETECTION_LIKE = (*DETECTION_MODELS, *YOLO_WORLD_TYPES, "DetectionsConsensus", "DetectionFilter")
COLLECTED_OUTPUTS = {**{t: ("predictions",) for t in DETECTION_LIKE}, **{t: ("top",) for t in CLASSIFICATION_MODELS},
                     **{t: ("predictions", "predicted_classes") for t in MULTI_LABEL_MODELS}}


class _Document(_Strict):
    version: str = "1.0"
    inputs: list[Input]
    steps: list[Step]
    outputs: list[JsonField] = []


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


def named_step(selector: str) -> str:
    """The step a validated `$steps.<name>.<output>` selector names."""
    match = SELECTOR.match(selector)
    assert match is not None and match.group(1) == "steps", selector
    return match.group(2)


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
    try:
        document = _Document.model_validate(data)
    except ValidationError as error:
        raise ConfigError(list(dict.fromkeys(validation_problems(error, LISTS, PATTERNS, _Document))), source) from None
    except RecursionError:
        raise ConfigError(["(top level): nested too deeply to be a workflow"], source) from None
    checker = _Checker(document)
    problems = list(checker.problems())
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
    [image] = [i.name for i in document.inputs if isinstance(i, ImageInput)]
    parameters = {i.name: i.default_value for i in document.inputs if isinstance(i, ParameterInput)}
    return WorkflowDefinition(image, parameters, order, tuple(document.outputs), configurations)


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


def _selectors(step: Any) -> Iterator[str]:
    """Every selector a step holds (image, predictions, parameters, a filter's reference values)."""
    for _, value in _strings(step.model_dump(exclude={"active_learning_configuration"})):
        if value.startswith("$"):
            yield value


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, text) of every string in a dumped step, nested ones included."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


class _Checker:
    """The checks that need the whole document: names, selectors, images, a single image input."""

    def __init__(self, document: _Document):
        self.document = document
        self.steps = {step.name: step for step in document.steps}
        self.images = [i.name for i in document.inputs if isinstance(i, ImageInput)]
        self.parameters = {i.name: i.default_value for i in document.inputs if isinstance(i, ParameterInput)}
        self.names_unique = len(self.steps) == len(document.steps)
        self.secrets = {step.target_dataset_api_key.get_secret_value().removeprefix("$inputs.")
                        for step in document.steps if isinstance(step, CollectorStep) and step.target_dataset_api_key}
        self._made_on: dict[str, str | None] = {}  # filter -> the image its predictions are made on

    def problems(self) -> Iterator[str]:
        yield from self._names()
        if len(self.images) != 1:
            yield (f"inputs: framesift feeds each frame to one image input; this workflow declares "
                   f"{len(self.images)}")
        for i, step in enumerate(self.document.steps):
            yield from self._step(f"steps[{i}]", step)
        for i, output in enumerate(self.document.outputs):
            yield from self._output(f"outputs[{i}].selector", output.selector)

    def _names(self) -> Iterator[str]:
        for kind, items in (("steps", self.document.steps), ("inputs", self.document.inputs),
                            ("outputs", self.document.outputs)):
            seen: dict[str, int] = {}
            for i, item in enumerate(items):
                if item.name in seen:
                    yield f"{kind}[{i}].name: {item.name!r} is the name of {kind}[{seen[item.name]}] too"
                seen.setdefault(item.name, i)

    def _step(self, where: str, step: Any) -> Iterator[str]:
        fields = step.model_dump(exclude={"image", "predictions", "predictions_batches", "prediction_type", "type",
                                          "name", "active_learning_configuration"})
        for path, value in _strings(fields):
            if value.startswith("$"):
                yield from self._parameter(f"{where}.{path}", value)
        if hasattr(step, "image"):
            yield from self._image(f"{where}.image", step.image)
        if isinstance(step, (CropStep, DetectionFilterStep)):
            yield from self._predictions(f"{where}.predictions", step.predictions, DETECTION_LIKE, "predictions")
        if isinstance(step, CropStep):
            yield from self._same_image(where, step, "cuts")
        if isinstance(step, CollectorStep):
            yield from self._collector(where, step)
        if isinstance(step, ConsensusStep):
            yield from self._consensus(where, step)

    def _consensus(self, where: str, step: ConsensusStep) -> Iterator[str]:
        """Each source: the predictions of a detection-like step; all of them made on one image."""
        images = {}
        for i, selector in enumerate(step.predictions_batches):
            problems = list(self._predictions(f"{where}.predictions[{i}]", selector, DETECTION_LIKE, "predictions"))
            yield from problems
            if not problems:
                images[selector] = self._image_of(self.steps[named_step(selector)])
        if len(set(images.values()) - {None}) > 1:
            made_on = ", ".join(f"{selector} on {image}" for selector, image in images.items())
            yield f"{where}.predictions: DetectionsConsensus {step.name!r} merges predictions made on one image; " \
                  f"these were made on different ones ({made_on})"

    def _collector(self, where: str, step: CollectorStep) -> Iterator[str]:
        yield from self._dataset(f"{where}.target_dataset", step.target_dataset)
        wanted = ("the predictions of a detection-like step, the top of a ClassificationModel or the predictions "
                  "of a MultiLabelClassificationModel")
        key = step.target_dataset_api_key.get_secret_value() if step.target_dataset_api_key else ""
        if key.startswith("$"):
            yield from self._parameter(f"{where}.target_dataset_api_key", key)
        match = SELECTOR.match(step.predictions)
        source = self.steps.get(match.group(2)) if match and match.group(1) == "steps" else None
        if source is None or not _predicts(source, match.group(3) if match else None):
            yield from self._dangling(f"{where}.predictions", step.predictions, wanted)
            return
        if step.prediction_type is not None and step.prediction_type != f"$steps.{source.name}.prediction_type":
            yield f"{where}.prediction_type: must be $steps.{source.name}.prediction_type (the step its predictions " \
                  f"come from)"
        yield from self._same_image(where, step, "collects")

    def _dataset(self, where: str, value: Any) -> Iterator[str]:
        """A dataset name becomes a folder: the rule every run applies to it (a parameter's: to its default)."""
        if isinstance(value, str) and value.startswith("$"):
            name = value.removeprefix("$inputs.")
            if name not in self.parameters or self.parameters[name] is None:
                return  # no parameter (said by `_parameter`), or no default: checked when the run gives its value
            refused = dataset_name_refusal(self.parameters[name])
            where = f"{where}: the default of {value}"
        else:
            refused = dataset_name_refusal(value)
        if refused is not None:
            yield f"{where}: {refused}"

    def _same_image(self, where: str, step: Any, verb: str) -> Iterator[str]:
        """A step that takes an image and predictions must take the predictions made on that image."""
        match = SELECTOR.match(step.predictions)
        source = self.steps.get(match.group(2)) if match else None
        made_on = None if source is None else self._image_of(source)
        if source is not None and made_on is not None and made_on != step.image:
            yield (f"{where}.image: {step.type} {step.name!r} {verb} {step.image}, but its predictions come from "
                   f"{source.name!r}, which ran on {made_on}")

    def _image_of(self, step: Any) -> str | None:
        """The image a step's predictions are made on (a filter's: its source's, through any chain of filters; a
        consensus: its first source's, all sharing one image); None where that is unclear. Each filter is walked
        once, however many steps read it."""
        chain: dict[str, None] = {}  # the filters walked this time, in order
        while isinstance(step, (DetectionFilterStep, ConsensusStep)) and step.name not in self._made_on \
                and step.name not in chain:
            chain[step.name] = None
            match = SELECTOR.match(step.predictions_batches[0] if isinstance(step, ConsensusStep) else step.predictions)
            step = self.steps.get(match.group(2)) if match and match.group(1) == "steps" else None
        if step is None or step.name in chain:  # a filter of nothing, or a cycle
            image = None
        else:  # a step that takes an image, or a filter walked before
            image = self._made_on.get(step.name, getattr(step, "image", None))
        self._made_on.update(dict.fromkeys(chain, image))
        return image

    def _image(self, where: str, selector: str) -> Iterator[str]:
        match = SELECTOR.match(selector)
        if match and match.group(1) == "inputs" and match.group(2) in self.images and match.group(3) is None:
            return
        if match and match.group(1) == "steps" and match.group(3) == "crops" and \
                getattr(self.steps.get(match.group(2)), "type", None) in CROP_TYPES:
            return
        yield from self._dangling(where, selector, "an image input ($inputs.<name>) or the crops of a Crop, "
                                                   "AbsoluteStaticCrop or RelativeStaticCrop step")

    def _predictions(self, where: str, selector: str, types: tuple[str, ...], output: str) -> Iterator[str]:
        match = SELECTOR.match(selector)
        step = self.steps.get(match.group(2)) if match and match.group(1) == "steps" else None
        if step is None or step.type not in types or match is None or match.group(3) != output:
            yield from self._dangling(where, selector, f"the {output} of a detection-like step "
                                                       f"({', '.join(sorted(set(types)))})")

    def _parameter(self, where: str, selector: str) -> Iterator[str]:
        match = SELECTOR.match(selector)
        if not (match and match.group(1) == "inputs" and match.group(2) in self.parameters and not match.group(3)):
            yield from self._dangling(where, selector, "a parameter input ($inputs.<name>)")

    def _output(self, where: str, selector: str) -> Iterator[str]:
        match = SELECTOR.match(selector)
        step = self.steps.get(match.group(2)) if match and match.group(1) == "steps" else None
        if step is not None and match is not None and (match.group(3) == "*" or match.group(3) in OUTPUTS[step.type]):
            return
        if match and match.group(1) == "inputs" and match.group(2) in self.secrets:
            yield f"{where}: {selector} is a collector's target_dataset_api_key, a secret: never an output"
            return
        if match and match.group(1) == "inputs" and match.group(2) in self.parameters and not match.group(3):
            return
        yield from self._dangling(where, selector, "an output of a step ($steps.<name>.<output>) or a parameter")

    def _dangling(self, where: str, selector: str, wanted: str) -> Iterator[str]:
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


def _predicts(step: Any, output: str | None) -> bool:
    """Whether `$steps.<step>.<output>` is what a collector samples with."""
    return output in COLLECTED_OUTPUTS.get(step.type, ())
