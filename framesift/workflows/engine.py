"""Running a validated workflow: what the inference thread does with each batch of frames.

Each step runs once per batch, over everything the batch holds: a model step on the frames infers all of them in
one call (as many as the model's batch axis takes), a model step on crops infers the crops of every frame of the
batch together, a collector step offers each image it names to its collector (microseconds each; the collector's
own thread does the rest). Values flow per frame as lists aligned with the images they belong to: the frame is
one image; a crop step turns each image into the crops cut from it; a model step gives one prediction per image.

What each step does is its kind's (`framesift.workflows.steps`, one file each, found through the registry of
`framesift.workflows.step`); the engine keeps what the steps share: the models on the frames, their inputs prepared
ahead, the parameters' values, and which images each step's values align with.

Example:
    >>> workflow = Workflow.single(load_model("demo"), collector)   # doctest: +SKIP
    >>> results = workflow.run(frames, {"cam1": SourceSpec(...)})   # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

import numpy as np

from framesift.models.model import GpuModel, Model
from framesift.models.stub import StubModel
from framesift.predictions import Prediction, StubPrediction
from framesift.resources import Service
from framesift.stats import CollectorStats
from framesift.workflows.definition import WorkflowDefinition, single_definition
from framesift.workflows.fields import SELECTOR, named_step
from framesift.workflows.regions import Region
from framesift.workflows.step import Batch, Step, StepFailed
from framesift.workflows.steps.active_learning_data_collector import CollectorStep
from framesift.workflows.steps.model import Inferring, ModelStep

if TYPE_CHECKING:
    from framesift.collectors.collector import Collector
    from framesift.frames import DrawAhead, Frame, SourceSpec

__all__ = ["FrameResult", "Region", "StepFailed", "Workflow"]

log = logging.getLogger(__name__)

class Closeable(Protocol):
    def close(self) -> None: ...


DEFAULT_BATCH = 64  # frames per call when no model step runs on the frames (the stub's batch)


@dataclass
class FrameResult:
    """What a workflow made of one frame: the prediction callbacks and sinks get (the first model step's on the
    whole frame), and the declared outputs as JSON."""

    prediction: Prediction
    outputs: dict[str, Any] = field(default_factory=dict)


class Workflow(Service):
    """A validated definition with its models loaded and its collectors open; owns the collectors, starts them
    (`start()`: entering it, or the pipeline that runs it), and closes them, then what else it was given to own
    (`owned`: the limit store they share, their configuration store).

    `parameters` are the run's values of the definition's parameters; a source's own (`SourceSpec.parameters`)
    win for that source.
    """

    def __init__(self, definition: WorkflowDefinition, models: Mapping[str, Model],
                 collectors: Mapping[str, Collector] = {}, *, parameters: Mapping[str, Any] = {},
                 owned: Sequence[Closeable] = ()):
        self.definition, self.models, self.collectors = definition, dict(models), dict(collectors)
        self._parameters = {**definition.parameters, **parameters}
        self._owned = list(owned)
        self._frame_models = [step.name for step in definition.order
                              if isinstance(step, Inferring) and step.image == f"$inputs.{definition.image}"]
        self.max_batch = min((self.models[name].max_batch for name in self._frame_models), default=DEFAULT_BATCH)
        for name, model in self.models.items():  # crops come in every shape: one square keeps their batches whole
            if name not in self._frame_models and hasattr(model, "fit_frames"):
                model.fit_frames = False
        # a model on the frames runs on the CPU, where a batch of N frames takes about N times as long as one
        self.on_cpu = any(getattr(self.models[name], "device", None) == "cpu" and not _on_gpu(self.models[name])
                          for name in self._frame_models)
        self._prepared = [name for name in self._frame_models if self.models[name].input_size is not None]
        # every model given the frame's input runs on a GPU, where nearly every live frame is inferred
        self.on_gpu = bool(self._prepared) and all(_on_gpu(self.models[name]) for name in self._prepared)
        self._aligned = _alignments(definition)
        self._cut_from = _cut_from(definition)
        self._by_source: dict[str, dict[str, Any]] = {}
        self._closed = False

    @property
    def device(self) -> str:
        """Where the models run: `cpu`, `cuda:0`, `tensorrt:0`, `none` (the stub); several joined by `,`."""
        return ",".join(sorted({str(getattr(model, "device", "none")) for model in self.models.values()})) or "none"

    def fix_batches(self, sources: int) -> None:
        """Give each model on a GPU one batch size for every call, warmed now: the number of sources (at most the
        model's maximum, and for a model on the frames the most frames a call takes; a static export's N), the
        model filling a call up. Frames then go in one call whichever sources are ready, crops in chunks of that
        size. ONNX Runtime's CUDA provider plans its convolutions again whenever an input's shape differs from the
        last call's: a batch of changing size cost 120-900 ms a call where a steady one cost 3-20 ms (issue 21,
        README "On a GPU, one batch size")."""
        for name, model in self.models.items():
            if _on_gpu(model):
                model.fix_batch(min(sources, self.max_batch) if name in self._frame_models else sources)

    @classmethod
    def single(cls, model: Model, collector: Collector | None = None, owned: Sequence[Closeable] = ()) -> Workflow:
        """One model on every frame and, when given, one collector on its predictions: what `--model` and
        `--al-config` run."""
        definition = single_definition(model.task_type, model.model_id, collect=collector is not None)
        collectors = {} if collector is None else {"collect": collector}
        return cls(definition, {"model": model}, collectors, owned=owned)

    # -- in the source threads -------------------------------------------------------------------------------------
    @property
    def needs_input(self) -> bool:
        """Whether a replayed source's thread prepares anything (a model input) for the frames it decodes."""
        return bool(self._prepared)

    def prepare(self, image: Any) -> dict[str, Any]:
        """The inputs of the model steps that run on the whole frame, made from a decoded frame."""
        return {name: self.models[name].prepare(image) for name in self._prepared}

    def draws_ahead(self, source: SourceSpec) -> DrawAhead | None:
        """What draws the next frame of `source` before it is decoded, when that can be done: the workflow is one
        model on the frame and one collector on its predictions, collecting from this source
        (`Collector.draw_ahead` then says, frame by frame, whether its configuration allows it). Else None."""
        frame = f"$inputs.{self.definition.image}"
        match self.definition.order:
            case (ModelStep(image=image) as model, CollectorStep() as collect) if image == collect.image == frame:
                collector = self.collectors.get(collect.name)
                if collector is None or not self.collecting(collect, source):
                    return None
                return functools.partial(collector.draw_ahead, isinstance(self.models[model.name], StubModel))
        return None

    # -- in the inference thread -----------------------------------------------------------------------------------
    def run(self, frames: Sequence[Frame], sources: Mapping[str, SourceSpec]) -> list[FrameResult]:
        """Run every step on a batch of frames (of any sources); raises `StepFailed` when a model raised."""
        values: list[dict[str, list[Any]]] = [{f"$inputs.{self.definition.image}": [Region(f)]} for f in frames]
        batch = Batch(frames, values, sources, self)
        for step in self.definition.order:
            step.run(batch)
        return [self._result(frame_values) for frame_values in values]

    def aligned(self, step: str) -> str:
        """The images a step's values align with (`$inputs.<image>`: one per frame; else its crops)."""
        return self._aligned.get(step, "")

    def on_image(self, image: np.ndarray, source: str = "image", frame_id: int = 0) -> FrameResult:
        """Run the workflow on one BGR image (outside any stream); its collectors collect from it as from a frame
        of `source`."""
        import av

        from framesift.frames import Frame, SourceSpec

        decoded = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame = Frame(source, frame_id, datetime.now(timezone.utc), time.monotonic(), None, decoded, _bgr=image)
        frame.model_input = self.prepare(decoded) if self.needs_input else None
        return self.run([frame], {source: SourceSpec(source, source)})[0]

    def parameter(self, value: Any, source: SourceSpec | None = None) -> Any:
        """A field's value: itself, or, for a `$inputs.<name>` selector, the parameter's value (the source's own
        first)."""
        if not (isinstance(value, str) and value.startswith("$inputs.")):
            return value
        name = value.removeprefix("$inputs.")
        if source is not None and name in source.parameters:
            return source.parameters[name]
        return self._parameters[name]

    def model_input(self, name: str, region: Region) -> Any:
        """What model step `name`'s model is given for an image: the frame's input prepared in a replayed source's
        thread, or prepared now."""
        model = self.models[name]
        if region.box is None and name in self._prepared:
            prepared = region.frame.model_input
            if isinstance(prepared, dict) and name in prepared:
                return prepared[name]  # made in a replayed source's thread
            return model.prepare(region.frame.image)  # a live frame: prepared only now that it is inferred
        return model.prepare(region.bgr()) if model.input_size is not None else None

    def gives_ids(self, name: str) -> bool:
        """Whether model step `name`'s detections need their ids (a crop step names the detection it cut)."""
        return name in self._cut_from

    def collecting(self, step: CollectorStep, source: SourceSpec | None) -> bool:
        """Whether a collector step collects from a source: not switched off for it, nor by its parameter."""
        if source is not None and source.disable_active_learning:
            return False
        key = "" if source is None else source.name
        cache = self._by_source.setdefault(key, {})
        if step.name not in cache:  # checked to be true or false when the workflow was built
            cache[step.name] = not self.parameter(step.disable_active_learning, source)
        return bool(cache[step.name])

    def _result(self, frame_values: dict[str, list[Any]]) -> FrameResult:
        primary = next((frame_values[f"$steps.{name}.predictions"][0] for name in self._frame_models), None)
        outputs = {output.name: _output(output.selector, frame_values, self) for output in self.definition.outputs}
        return FrameResult(primary if primary is not None else StubPrediction("workflow"), outputs)

    def start(self) -> None:
        """Start the collectors (their threads, their targets' senders); idempotent."""
        for collector in self.collectors.values():
            collector.start()

    def when_written(self, callback: Callable[[], None]) -> None:
        """Call `callback` once every collector has written (`Collector.when_written`) what was submitted to it so
        far: at once without collectors, else on the thread of the last collector to get there."""
        collectors = list(self.collectors.values())
        if not collectors:
            callback()
            return
        left, lock = [len(collectors)], threading.Lock()

        def arrived() -> None:
            with lock:
                left[0] -= 1
                if left[0]:
                    return
            callback()

        for collector in collectors:
            collector.when_written(arrived)

    # -- statistics and the end ------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, CollectorStats]:
        return {name: collector.snapshot() for name, collector in self.collectors.items()}

    def check(self) -> None:
        """Raise `WorkerFailed` when a thread of a collector (its own, its follower, its outbox sender) died."""
        for collector in self.collectors.values():
            collector.check()

    def close(self, drain_timeout: float = 10.0) -> None:
        """Close every collector (each gets `drain_timeout` to write what it holds), then what the workflow owns;
        idempotent. A collector's `WorkerFailed` is raised once all are closed."""
        if self._closed:
            return
        self._closed = True
        failure: Exception | None = None
        for collector in self.collectors.values():
            try:
                collector.close(drain_timeout)
            except Exception as error:
                failure = failure or error
        for resource in self._owned:
            resource.close()
        if failure is not None:
            raise failure


def _on_gpu(model: Model) -> TypeGuard[GpuModel]:
    """Whether a model takes the GPU's batching (`GpuModel`: an `OnnxModel` on a GPU)."""
    return bool(getattr(model, "on_gpu", False))


def _cut_from(definition: WorkflowDefinition) -> set[str]:
    """The steps whose detections a crop step cuts out (directly, or through steps that keep some of them)."""
    cut = set()
    for step in definition.order:
        if "crops" in step.outputs() and isinstance(getattr(step, "predictions", None), str):
            source = definition.step(named_step(step.predictions))
            while source.FILTERS:
                source = definition.step(named_step(source.made_from()[0]))
            cut.add(source.name)
    return cut


def _alignments(definition: WorkflowDefinition) -> dict[str, str]:
    """Step name -> the images its values align with: a step made from others', theirs (one image, validated); a
    crop step's, its crops; else its image."""
    aligned: dict[str, str] = {}
    for step in definition.order:
        if step.made_from():
            aligned[step.name] = aligned[named_step(step.made_from()[0])]
        elif "crops" in step.outputs():
            aligned[step.name] = step.output("crops")
        else:
            aligned[step.name] = getattr(step, "image", "")
    return aligned


def _output(selector: str, values: dict[str, list[Any]], workflow: Workflow) -> Any:
    """A declared output of one frame, as JSON: one item for a step on the whole frame, a list (one item per
    crop) for a step on crops or a crop step."""
    match = SELECTOR.match(selector)
    assert match is not None  # validated
    if match.group(1) == "inputs":
        return workflow.parameter(selector)
    step: Step = workflow.definition.step(match.group(2))
    names = [o for o in step.outputs() if o != "image"] if match.group(3) == "*" else [match.group(3)]
    columns = {name: step.output_items(name, values) for name in names}
    items = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)] \
        if match.group(3) == "*" else columns[match.group(3)]
    on_frame = workflow.aligned(step.name) == f"$inputs.{workflow.definition.image}"
    return items[0] if on_frame else items
