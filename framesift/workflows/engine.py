"""Running a validated workflow: what the inference thread does with each batch of frames.

Each step runs once per batch, over everything the batch holds: a model step on the frames infers all of them in
one call (as many as the model's batch axis takes), a model step on crops infers the crops of every frame of the
batch together, a collector step offers each image it names to its collector (microseconds each; the collector's
own thread does the rest). Values flow per frame as lists aligned with the images they belong to: the frame is
one image; a crop step turns each image into the crops cut from it; a model step gives one prediction per image.

A crop is a `Region` of its frame: a box, kept in the frame's pixels (a crop of a crop too), and the detection it
was cut from. Its pixels are a view of the frame's BGR image, made only when a model or a collector needs them.

Example:
    >>> workflow = Workflow.single(load_model("demo"), collector)   # doctest: +SKIP
    >>> results = workflow.run(frames, {"cam1": SourceSpec(...)})   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

import numpy as np

from framesift.models.model import GpuModel, Model
from framesift.models.stub import StubModel
from framesift.predictions import DetectionPrediction, Prediction, StubPrediction, as_prediction
from framesift.resources import Service
from framesift.stats import CollectorStats
from framesift.workflows.consensus import Rules, consensus
from framesift.workflows.definition import (
    CROP_TYPES,
    OUTPUTS,
    SELECTOR,
    AbsoluteStaticCrop,
    CollectorStep,
    ConsensusStep,
    CropStep,
    DetectionFilterStep,
    ModelStep,
    RelativeStaticCrop,
    WorkflowDefinition,
    YoloWorldStep,
    named_step,
    single_definition,
)
from framesift.workflows.filters import detection_filter

if TYPE_CHECKING:
    from framesift.collectors.collector import Collector
    from framesift.frames import DrawAhead, Frame, SourceSpec

log = logging.getLogger(__name__)
MODEL_STEPS = (ModelStep, YoloWorldStep)
RULES = [f.name for f in dataclasses.fields(Rules)]  # a consensus step's fields of the same names

class Closeable(Protocol):
    def close(self) -> None: ...


DEFAULT_BATCH = 64  # frames per call when no model step runs on the frames (the stub's batch)


class StepFailed(Exception):
    """A model step's model raised: the batch's frames are dropped and counted (`model_error`), the stream goes
    on. Anything else that raises in a workflow is a bug, and ends the run."""

    def __init__(self, step: str, error: Exception):
        super().__init__(f"{step}: {type(error).__name__}: {error}")
        self.step = step


@dataclass(frozen=True)
class Region:
    """An image a step works on: a whole frame, or a crop of it (`box`: x1, y1, x2, y2 in the frame's pixels)."""

    frame: Frame
    box: tuple[int, int, int, int] | None = None
    detection_id: str | None = None  # the detection it was cut from (none for a static crop)
    class_name: str | None = None
    confidence: float | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        if self.box is None:
            return self.frame.width, self.frame.height
        x1, y1, x2, y2 = self.box
        return x2 - x1, y2 - y1

    def bgr(self) -> np.ndarray:
        whole = self.frame.bgr()
        if self.box is None:
            return whole
        x1, y1, x2, y2 = self.box
        return whole[y1:y2, x1:x2]

    def crop(self, x1: float, y1: float, x2: float, y2: float, **origin: Any) -> Region | None:
        """The part of this image within (x1, y1, x2, y2) of its own pixels, clipped; None when nothing is left."""
        width, height = self.size
        left, top = (0, 0) if self.box is None else self.box[:2]
        box = (left + max(0, int(np.floor(x1))), top + max(0, int(np.floor(y1))),
               left + min(width, int(np.ceil(x2))), top + min(height, int(np.ceil(y2))))
        if box[2] <= box[0] or box[3] <= box[1]:
            return None
        return Region(self.frame, box, **origin)

    def record(self) -> dict[str, Any]:
        """Where a crop came from, for its datapoint's record."""
        return {"box": list(self.box or (0, 0, self.frame.width, self.frame.height)),
                "detection_id": self.detection_id, "class": self.class_name, "confidence": self.confidence}


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
                              if isinstance(step, MODEL_STEPS) and step.image == f"$inputs.{definition.image}"]
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
        self._runners = [self._runner(step) for step in definition.order]
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
                if collector is None or not self._collecting(collect, source):
                    return None
                return functools.partial(collector.draw_ahead, isinstance(self.models[model.name], StubModel))
        return None

    # -- in the inference thread -----------------------------------------------------------------------------------
    def run(self, frames: Sequence[Frame], sources: Mapping[str, SourceSpec]) -> list[FrameResult]:
        """Run every step on a batch of frames (of any sources); raises `StepFailed` when a model raised."""
        values: list[dict[str, list[Any]]] = [{f"$inputs.{self.definition.image}": [Region(f)]} for f in frames]
        for run_step in self._runners:
            run_step(frames, values, sources)
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

    def _runner(self, step: Any) -> Callable[[Sequence[Frame], list[dict[str, list[Any]]], Mapping[str, SourceSpec]],
                                             None]:
        if isinstance(step, MODEL_STEPS):
            return lambda frames, values, sources: self._infer(step, frames, values)
        if isinstance(step, ConsensusStep):
            return lambda frames, values, sources: self._agree(step, frames, values, sources)
        if isinstance(step, CropStep):
            return lambda frames, values, sources: self._cut(step, values)
        if isinstance(step, (AbsoluteStaticCrop, RelativeStaticCrop)):
            return lambda frames, values, sources: self._cut_static(step, frames, values, sources)
        if isinstance(step, DetectionFilterStep):
            return lambda frames, values, sources: self._filter(step, frames, values, sources)
        return lambda frames, values, sources: self._collect(step, frames, values, sources)

    def _infer(self, step: ModelStep | YoloWorldStep, frames: Sequence[Frame], values: list[dict[str, list[Any]]]
               ) -> None:
        model = self.models[step.name]
        regions = [values[i][step.image] for i in range(len(frames))]
        flat = [region for per_frame in regions for region in per_frame]
        inputs = [self._input(step.name, model, region) for region in flat]
        predictions: list[Prediction] = []
        for start in range(0, len(inputs), model.max_batch):
            chunk = inputs[start:start + model.max_batch]
            try:
                out = model.infer(chunk)
            except Exception as error:
                raise StepFailed(step.name, error) from error
            if len(out) != len(chunk):
                raise RuntimeError(f"the model {model.model_id!r} returned {len(out)} predictions for {len(chunk)} "
                                   "images")
            predictions += [as_prediction(p, region.size, class_names=model.class_names, model_id=model.model_id)
                            for p, region in zip(out, flat[start:start + len(chunk)], strict=True)]
        classes = self.parameter(getattr(step, "class_filter", None))
        if classes is not None:
            predictions = [_only(p, set(classes)) for p in predictions]
        keypoint_confidence = self.parameter(getattr(step, "keypoint_confidence", None))
        if keypoint_confidence:  # Roboflow leaves the keypoints below it out of each detection
            predictions = [dataclasses.replace(p, keypoint_confidence=float(keypoint_confidence))
                           if isinstance(p, DetectionPrediction) else p for p in predictions]
        if step.name in self._cut_from:  # a crop says which detection it was cut from: each needs its id now
            predictions = [_with_ids(p) for p in predictions]
        position = 0
        for i, per_frame in enumerate(regions):
            values[i][f"$steps.{step.name}.predictions"] = predictions[position:position + len(per_frame)]
            position += len(per_frame)

    def _input(self, name: str, model: Model, region: Region) -> Any:
        if region.box is None and name in self._prepared:
            prepared = region.frame.model_input
            if isinstance(prepared, dict) and name in prepared:
                return prepared[name]  # made in a replayed source's thread
            return model.prepare(region.frame.image)  # a live frame: prepared only now that it is inferred
        return model.prepare(region.bgr()) if model.input_size is not None else None

    def _cut(self, step: CropStep, values: list[dict[str, list[Any]]]) -> None:
        for frame_values in values:
            crops = []
            for region, prediction in zip(frame_values[step.image], frame_values[step.predictions], strict=True):
                if not isinstance(prediction, DetectionPrediction):
                    continue  # the stub found nothing to cut
                for k in range(len(prediction)):
                    x1, y1, x2, y2 = prediction.xyxy[k]
                    pad = step.padding
                    crop = region.crop(x1 - pad, y1 - pad, x2 + pad, y2 + pad,
                                       detection_id=None if prediction.detection_id is None
                                       else prediction.detection_id[k],
                                       class_name=prediction.class_name[k],
                                       confidence=float(prediction.confidence[k]))
                    if crop is not None:
                        crops.append(crop)
            frame_values[f"$steps.{step.name}.crops"] = crops

    def _cut_static(self, step: AbsoluteStaticCrop | RelativeStaticCrop, frames: Sequence[Frame],
                    values: list[dict[str, list[Any]]], sources: Mapping[str, SourceSpec]) -> None:
        for frame, frame_values in zip(frames, values, strict=True):
            source = sources.get(frame.source)
            cx, cy, w, h = (float(self.parameter(v, source)) for v in (step.x_center, step.y_center, step.width,
                                                                         step.height))
            crops = []
            for region in frame_values[step.image]:
                if isinstance(step, RelativeStaticCrop):
                    width, height = region.size
                    cx, cy, w, h = cx * width, cy * height, w * width, h * height
                crop = region.crop(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                if crop is not None:
                    crops.append(crop)
            frame_values[f"$steps.{step.name}.crops"] = crops

    def _filter(self, step: DetectionFilterStep, frames: Sequence[Frame], values: list[dict[str, list[Any]]],
                sources: Mapping[str, SourceSpec]) -> None:
        for frame, frame_values in zip(frames, values, strict=True):
            source = sources.get(frame.source)
            keep = detection_filter(step.filter_definition, functools.partial(self.parameter, source=source))
            frame_values[f"$steps.{step.name}.predictions"] = [
                p.subset(keep(p)) if isinstance(p, DetectionPrediction) else p
                for p in frame_values[step.predictions]]

    def _agree(self, step: ConsensusStep, frames: Sequence[Frame], values: list[dict[str, list[Any]]],
               sources: Mapping[str, SourceSpec]) -> None:
        """The consensus of its sources' predictions on each image (a source that predicted nothing, the stub,
        counts as no detections)."""
        for frame, frame_values in zip(frames, values, strict=True):
            source = sources.get(frame.source)
            rules = Rules(**{name: self.parameter(getattr(step, name), source) for name in RULES})
            results = []
            regions = frame_values[self._aligned[step.name]]
            for k, region in enumerate(regions):
                predictions = [frame_values[selector][k] for selector in step.predictions_batches]
                results.append(consensus([p for p in predictions if isinstance(p, DetectionPrediction)], rules,
                                         step.name, region.size))
            frame_values[f"$steps.{step.name}.predictions"] = [r.prediction for r in results]
            frame_values[f"$steps.{step.name}.object_present"] = [r.object_present for r in results]
            frame_values[f"$steps.{step.name}.presence_confidence"] = [r.presence_confidence for r in results]

    def _collect(self, step: CollectorStep, frames: Sequence[Frame], values: list[dict[str, list[Any]]],
                 sources: Mapping[str, SourceSpec]) -> None:
        collector = self.collectors.get(step.name)
        if collector is None:
            return
        predictions = f"$steps.{named_step(step.predictions)}.predictions"  # a classifier's top: its prediction
        for frame, frame_values in zip(frames, values, strict=True):
            source = sources.get(frame.source)
            if not self._collecting(step, source):
                continue
            url = frame.recording or (frame.source if source is None else source.url)
            for region, prediction in zip(frame_values[step.image], frame_values[predictions], strict=True):
                if region.box is None:
                    collector.submit(frame, prediction, source=url, frame_id=frame.frame_id,
                                     captured_at=frame.captured_at, recorded=frame.recorded, drawn=frame.drawn,
                                     known_as=frame.known_as, still_ours=frame.still_ours)
                else:
                    collector.submit(region.bgr(), prediction, source=url, frame_id=frame.frame_id,
                                     captured_at=frame.captured_at, extra={"crop": region.record()},
                                     recorded=frame.recorded, still_ours=frame.still_ours)

    def _collecting(self, step: CollectorStep, source: SourceSpec | None) -> bool:
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
    """The model steps whose detections a Crop step cuts out (directly or through filters)."""
    sources = {step.name: step.predictions for step in definition.order if isinstance(step, DetectionFilterStep)}
    cut = set()
    for step in definition.order:
        if isinstance(step, CropStep):
            name = named_step(step.predictions)
            while name in sources:
                name = named_step(sources[name])
            cut.add(name)
    return cut


def _with_ids(prediction: Prediction) -> Prediction:
    if not isinstance(prediction, DetectionPrediction) or prediction.detection_id is not None:
        return prediction
    return dataclasses.replace(prediction, detection_id=[str(uuid.uuid4()) for _ in range(len(prediction))])


def _only(prediction: Prediction, classes: set[str]) -> Prediction:
    if not isinstance(prediction, DetectionPrediction):
        return prediction
    return prediction.subset(np.array([name in classes for name in prediction.class_name], dtype=bool))


def _alignments(definition: WorkflowDefinition) -> dict[str, str]:
    """Step name -> the images its values align with: a model's, its image; a filter's, its source's; a crop
    step's, its crops."""
    aligned: dict[str, str] = {}
    for step in definition.order:
        if isinstance(step, MODEL_STEPS):
            aligned[step.name] = step.image
        elif isinstance(step, DetectionFilterStep):
            aligned[step.name] = aligned[named_step(step.predictions)]
        elif isinstance(step, ConsensusStep):  # its sources' images (validated to be one)
            aligned[step.name] = aligned[named_step(step.predictions_batches[0])]
        elif not isinstance(step, CollectorStep):
            aligned[step.name] = f"$steps.{step.name}.crops"
    return aligned


def _output(selector: str, values: dict[str, list[Any]], workflow: Workflow) -> Any:
    """A declared output of one frame, as JSON: one item for a step on the whole frame, a list (one item per
    crop) for a step on crops or a crop step."""
    match = SELECTOR.match(selector)
    assert match is not None  # validated
    if match.group(1) == "inputs":
        return workflow.parameter(selector)
    step = workflow.definition.step(match.group(2))
    names = [o for o in OUTPUTS[step.type] if o != "image"] if match.group(3) == "*" else [match.group(3)]
    columns = {name: _output_items(step, name, values) for name in names}
    items = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)] \
        if match.group(3) == "*" else columns[match.group(3)]
    on_frame = workflow.aligned(step.name) == f"$inputs.{workflow.definition.image}"
    return items[0] if on_frame else items


def _output_items(step: Any, name: str, values: dict[str, list[Any]]) -> list[Any]:
    if step.type in CROP_TYPES:  # its crops, and the detection each was cut from (`parent_id`)
        regions = values[f"$steps.{step.name}.crops"]
        return [region.record() if name == "crops" else region.detection_id for region in regions]
    if name in ("object_present", "presence_confidence"):
        return values[f"$steps.{step.name}.{name}"]
    predictions = values[f"$steps.{step.name}.predictions"]
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
