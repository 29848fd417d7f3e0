"""What a workflow step kind is, and the registry of them: each kind is one class — its fields (the schema, a
pydantic model), the selectors it offers (`$steps.<name>.<output>`), and how it runs on a batch of frames —
registered with `register_step`. The definition's step types, its messages and the engine's dispatch all come
from the registry; a kind registered from outside the package is a step type like any other.

A worked example, one kind in one file with its test: docs/plugins/step.md.

Example:
    >>> [kind.__name__ for kind in step_kinds()][:3]
    ['ModelStep', 'YoloWorldStep', 'ConsensusStep']
    >>> crop_types()
    ('Crop', 'AbsoluteStaticCrop', 'RelativeStaticCrop')
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, get_args

from framesift.errors import InputError
from framesift.plugins import PluginGroup
from framesift.workflows.fields import Name, Strict
from framesift.workflows.regions import Region

if TYPE_CHECKING:
    from framesift.collectors.collector import Collector
    from framesift.frames import Frame, SourceSpec
    from framesift.models.model import Model
    from framesift.workflows.checks import Checker

# what the engine derives from the predictions a step makes (`$steps.<name>.predictions`), for any output so named
PREDICTION_OUTPUTS = ("predictions", "top", "confidence", "predicted_classes", "prediction_type")


class StepFailed(Exception):
    """A model step's model raised: the batch's frames are dropped and counted (`model_error`), the stream goes
    on. Anything else that raises in a workflow is a bug, and ends the run."""

    def __init__(self, step: str, error: Exception):
        super().__init__(f"{step}: {type(error).__name__}: {error}")
        self.step = step


class Running(Protocol):
    """What a step sees of the workflow running it (`framesift.workflows.Workflow`)."""

    models: dict[str, Model]
    collectors: dict[str, Collector]

    def parameter(self, value: Any, source: SourceSpec | None = None) -> Any:
        """A field's value: itself, or the value of the parameter its `$inputs.<name>` names (a source's own
        first)."""

    def aligned(self, step: str) -> str:
        """The images a step's values align with (`$inputs.<image>`: one per frame; else a crop step's crops)."""

    def model_input(self, name: str, region: Region) -> Any:
        """What a model step's model is given for an image (prepared ahead in a source's thread when it could)."""

    def gives_ids(self, name: str) -> bool:
        """Whether a model step's detections need their ids (a crop step names the detection it cut)."""

    def collecting(self, step: Any, source: SourceSpec | None) -> bool:
        """Whether a collector step collects from a source."""


@dataclass(frozen=True)
class Batch:
    """A batch of frames (of any sources) as its steps see it. `values[i]` holds frame i's values by selector
    (`$inputs.<image>`, `$steps.<name>.<output>`), each a list aligned with the images it belongs to: the frame
    (`[Region(frame)]`), or a crop step's crops. A step reads the selectors its fields name and adds its own."""

    frames: Sequence[Frame]
    values: list[dict[str, list[Any]]]
    sources: Mapping[str, SourceSpec]
    workflow: Running

    def each(self) -> Iterator[tuple[Frame, SourceSpec | None, dict[str, list[Any]]]]:
        """Each frame with its source (None for a frame of no known source) and its values."""
        for frame, values in zip(self.frames, self.values, strict=True):
            yield frame, self.sources.get(frame.source), values


class Step(Strict, ABC):
    """A step kind: subclass it with a `type` (a `Literal` of its type names), the fields it takes, what it offers
    (`OUTPUTS`) and `run`, then `register_step` it. Fields are strict (a value of the wrong type, or an unknown
    field, is refused by its path); a field named `image` or `predictions` holds a selector of what it reads
    (`image`: checked to be an image for every kind); any other text starting with `$` is a parameter."""

    type: str
    name: Name

    OUTPUTS: ClassVar[tuple[str, ...]] = ()  # the outputs it offers, `$steps.<name>.<output>`
    DETECTIONS: ClassVar[bool] = False  # its `predictions` are detections, which crops, filters, consensus read
    COLLECTED: ClassVar[tuple[str, ...]] = ()  # its outputs a collector samples with (detections: `predictions`)
    FILTERS: ClassVar[bool] = False  # its detections are some of those of `made_from()[0]`, ids and all
    READS: ClassVar[frozenset[str]] = frozenset({"image", "predictions"})  # selectors it checks in `problems`
    UNREAD: ClassVar[frozenset[str]] = frozenset()  # fields whose texts are no selectors at all
    ONCE: ClassVar[tuple[str, ...]] = ()  # fields set up once per run: a parameter for them has no value per source
    # fields holding items told apart by their `type`: field -> (what messages call one, the types it knows)
    TAGGED: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {}

    @classmethod
    def outputs_of(cls, type: str) -> tuple[str, ...]:
        """The outputs a step of this `type` offers (a kind of several types may offer each its own)."""
        return cls.OUTPUTS

    @classmethod
    def detections_of(cls, type: str) -> bool:
        return cls.DETECTIONS

    @classmethod
    def collected_of(cls, type: str) -> tuple[str, ...]:
        return cls.COLLECTED or (("predictions",) if cls.detections_of(type) else ())

    def outputs(self) -> tuple[str, ...]:
        return type(self).outputs_of(self.type)

    def output(self, name: str) -> str:
        """The selector of one of its outputs, the key of its values in a batch."""
        return f"$steps.{self.name}.{name}"

    def made_from(self) -> tuple[str, ...]:
        """The predictions (selectors) its own are made from, on the same images: a filter's source, a consensus's
        sources; none for a step that makes its own."""
        return ()

    def problems(self, where: str, checker: Checker) -> Iterator[str]:
        """What is wrong with its selectors in this definition (`checker` knows the other steps), each as
        `<where>.<field>: ...`; its `image` and its parameters are checked for every kind."""
        return iter(())

    def output_items(self, name: str, values: Mapping[str, list[Any]]) -> list[Any]:
        """An output's JSON per image of one frame: a crop step's crops (and the detection each was cut from,
        `parent_id`); what the engine reads off its predictions (`top`, ...); else its values as they are."""
        if "crops" in self.outputs():
            regions = values[self.output("crops")]
            return [region.record() if name == "crops" else region.detection_id for region in regions]
        if name not in PREDICTION_OUTPUTS and self.output(name) in values:
            return values[self.output(name)]
        predictions = values[self.output("predictions")]
        if name == "predicted_classes":
            return [getattr(p, "predicted_classes", None) for p in predictions]
        if name == "predictions":
            return [p.to_json() for p in predictions]
        if name == "top":
            return [getattr(p, "top", None) for p in predictions]
        if name == "confidence":
            return [getattr(p, "top_confidence", None) for p in predictions]
        if name == "prediction_type":
            return [p.task_type for p in predictions]
        return [getattr(p, "detection_id", None) for p in predictions]  # parent_id

    @abstractmethod
    def run(self, batch: Batch) -> None:
        """Make its values for every frame of `batch` (`batch.values[i][self.output(...)]`)."""


class Filtering(Step):
    """The base of a step that keeps some of the detections of one detection-like step (its `predictions`), ids and
    all: its own `predictions` are detections on the same images, which crops, filters and collectors read."""

    predictions: str

    OUTPUTS: ClassVar[tuple[str, ...]] = ("predictions", "parent_id", "image")
    DETECTIONS: ClassVar[bool] = True
    FILTERS: ClassVar[bool] = True

    def made_from(self) -> tuple[str, ...]:
        return (self.predictions,)

    def problems(self, where: str, checker: Checker) -> Iterator[str]:
        yield from checker.predictions(f"{where}.predictions", self.predictions)


K = TypeVar("K", bound=Step)
ENTRY_POINTS = "framesift.workflow_steps"  # a package's entry points here name the modules registering its kinds
_KINDS: dict[str, type[Step]] = {}  # every step type -> its kind, in the order registered
_PLUGINS = PluginGroup(ENTRY_POINTS, "workflow step", InputError)


def register_step(kind: type[K]) -> type[K]:
    """Make a step kind (a `Step` subclass) known to every workflow definition parsed from now on, under each name
    of its `type`; usable as a decorator. A type registered by another kind is refused (`ValueError`)."""
    if not (isinstance(kind, type) and issubclass(kind, Step)) or "type" not in kind.model_fields:
        raise TypeError(f"{kind!r} is no step kind: subclass framesift.workflows.Step with a `type` field")
    types = get_args(kind.model_fields["type"].annotation)
    if not types or not all(isinstance(name, str) for name in types):
        raise TypeError(f"{kind.__name__}.type must be a Literal of its type names")
    if inspect.isabstract(kind):
        raise TypeError(f"{kind.__name__} does not say how it runs: give it a run(self, batch) method")
    taken = [name for name in types if _KINDS.get(name, kind) is not kind]
    if taken:
        raise ValueError(f"step type {taken[0]!r} is registered already, by {_KINDS[taken[0]].__name__}")
    _KINDS.update(dict.fromkeys(types, kind))
    return kind


def _kinds() -> dict[str, type[Step]]:
    """Every step type -> its kind; the modules the `framesift.workflow_steps` entry points name are imported the
    first time (`InputError` when one cannot be: a plug-in missing is no step type unknown)."""
    _PLUGINS.load()
    return _KINDS


def step_kinds() -> tuple[type[Step], ...]:
    """Every registered kind, in the order registered."""
    return tuple(dict.fromkeys(_kinds().values()))


def step_types() -> tuple[str, ...]:
    """Every registered step type name."""
    return tuple(_kinds())


def detection_like() -> tuple[str, ...]:
    """The step types whose `predictions` are detections."""
    return tuple(name for name, kind in _kinds().items() if kind.detections_of(name))


def crop_types() -> tuple[str, ...]:
    """The step types that offer `crops` (an image other steps may take)."""
    return tuple(name for name, kind in _kinds().items() if "crops" in kind.outputs_of(name))
