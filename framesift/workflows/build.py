"""From a validated workflow definition and a run's settings to a `Workflow` ready to run: its models loaded, its
collectors' targets and their shared limit store open.

- A model step's `model_id` is an ONNX file, `demo`, `stub`, or `<dataset>/0` (a dataset's null model: the stub,
  for that step's task, recorded with that id); thresholds default to `framesift run`'s (0.25, 0.45).
- Each collector's `target_dataset` resolves against the run's `--target`: a folder holds one dataset folder per
  `target_dataset`; `roboflow:` sends to the Roboflow dataset of that name, `labelstudio:` to the Label Studio
  project of that title. Its key: `target_dataset_api_key`, else the configuration's, else the run's.
- Every collector shares one limit store, so budgets stay keyed by dataset and strategy name: two collector steps
  of one dataset share a strategy's budget, as two configurations of one dataset do.
- A collector step without an inline configuration takes its dataset's from the configuration store (`store`,
  `--al-config`), and follows it while running, as the original block took its project's.

Parameters: a run's values (`parameters`) apply to every source; a source's own (`SourceSpec.parameters`) are
checked here too, and may not change what is set up once per run (a model, a threshold, a dataset).

Example:
    >>> workflow = build_workflow(load_workflow_definition("two-stage.json"), target="datasets")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from framesift.collectors.follower import ConfigCache
from framesift.collectors.store import ConfigStore
from framesift.errors import InputError, ModelError, TargetError
from framesift.models.model import Model
from framesift.workflows.definition import (
    CollectorStep,
    DetectionFilterStep,
    ModelStep,
    WorkflowDefinition,
    named_step,
)
from framesift.workflows.engine import Workflow

REMOTE_SCHEMES = ("roboflow", "labelstudio")
LOADED_ONCE: dict[type, tuple[str, ...]] = {  # fields set up once per run: no value per source
    ModelStep: ("model_id", "confidence", "iou_threshold", "max_detections", "class_filter"),
    CollectorStep: ("target_dataset",)}


def build_workflow(definition: WorkflowDefinition, *, parameters: Mapping[str, Any] = {},
                   source_parameters: Mapping[str, Mapping[str, Any]] = {}, target: str = "framesift-data",
                   api_key: str | None = None, outbox: str | os.PathLike[str] = "framesift-outbox",
                   outbox_max_bytes: int = 1 << 30, redis: str | None = None, redis_fallback: str = "pause",
                   device: str = "auto", seed: int | None = None, store: ConfigStore | None = None,
                   cache: ConfigCache | None = None, refresh: float = 60.0) -> Workflow:
    """Load the models and open the collectors; whatever was opened is closed again when a later step fails."""
    from framesift.collectors import Collector, open_limiter, open_target
    from framesift.collectors.follower import first_configuration, poll_interval
    from framesift.collectors.targets import Labels

    _check_parameters(definition, parameters, source_parameters)
    followed = [s.name for s in definition.order if isinstance(s, CollectorStep) and s.name not in
                definition.configurations]
    if followed and store is None:
        raise InputError(f"collector step {followed[0]!r} has no active_learning_configuration: give it one, or "
                         "name the configuration store of its dataset (--al-config redis://... or roboflow:...)")
    if store is not None and not followed:
        raise InputError("--al-config names a configuration store, but every collector step carries its own "
                         "configuration")
    values = {**definition.parameters, **parameters}

    def value(field: Any) -> Any:
        return values[field.removeprefix("$inputs.")] if isinstance(field, str) and field.startswith("$") else field

    models = {step.name: _load(step, value, device) for step in definition.order if isinstance(step, ModelStep)}
    with ExitStack() as opened:
        collectors = {}
        limiter = None
        for index, step in enumerate(s for s in definition.order if isinstance(s, CollectorStep)):
            if limiter is None:
                limiter = open_limiter(redis, redis_fallback)
                opened.callback(limiter.close)
            spec = _target(target, str(value(step.target_dataset)))
            first = None
            if step.name in definition.configurations:
                config = definition.configurations[step.name]
            else:
                assert store is not None
                first = first_configuration(store, str(value(step.target_dataset)), cache)
                config = first.config
            key = step.target_dataset_api_key or (config.target_dataset_api_key if spec.startswith("roboflow:")
                                                  else None)
            dataset = open_target(spec, api_key=key.get_secret_value() if key else api_key, outbox=outbox,
                                  outbox_max_bytes=outbox_max_bytes, exclusive=redis is None,
                                  labels=Labels.of(models[_model_of(definition, step)]))
            opened.callback(dataset.close)  # the collector's close closes it too: closing is idempotent
            collectors[step.name] = Collector(config, dataset, limiter, seed=None if seed is None else seed + index,
                                              owns_limiter=False)
            opened.callback(collectors[step.name].close)
            if first is not None and store is not None:
                collectors[step.name].follow(store, first, poll=poll_interval(store, refresh), cache=cache)
        owned = [resource for resource in (limiter, store) if resource is not None]
        workflow = Workflow(definition, models, collectors, parameters=parameters, owned=owned)
        opened.pop_all()  # the workflow owns them all now
    return workflow


def parse_parameters(texts: list[str], definition: WorkflowDefinition,
                     sources: list[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """`--param NAME=VALUE` (every source) and `--param SOURCE:NAME=VALUE` (one source) as the run's values and
    each source's; a value is read as JSON when it is JSON (`true`, `0.4`, `["car"]`), else as text."""
    import json

    run: dict[str, Any] = {}
    per_source: dict[str, dict[str, Any]] = {}
    for text in texts:
        target, sep, value = text.partition("=")
        source, _, name = target.rpartition(":")
        if not sep or not name:
            raise InputError(f"--param {text!r}: expected NAME=VALUE or SOURCE:NAME=VALUE")
        if name not in definition.parameters:
            known = ", ".join(definition.parameters) or "none"
            raise InputError(f"--param {text!r}: the workflow has no parameter {name!r} (it has: {known})")
        if source and source not in sources:
            raise InputError(f"--param {text!r}: there is no source {source!r} (the sources: {', '.join(sources)})")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        (per_source.setdefault(source, {}) if source else run)[name] = parsed
    return run, per_source


def _check_parameters(definition: WorkflowDefinition, parameters: Mapping[str, Any],
                      source_parameters: Mapping[str, Mapping[str, Any]]) -> None:
    unknown = sorted({*parameters, *(n for values in source_parameters.values() for n in values)}
                     - set(definition.parameters))
    if unknown:
        raise InputError(f"the workflow has no parameter {unknown[0]!r} (it has: "
                         f"{', '.join(definition.parameters) or 'none'})")
    per_source = {name for values in source_parameters.values() for name in values}
    flags = {step.disable_active_learning.removeprefix("$inputs.") for step in definition.order
             if isinstance(step, CollectorStep) and isinstance(step.disable_active_learning, str)}
    for where, values in (("the run", {**definition.parameters, **parameters}), *source_parameters.items()):
        for name in flags & set(values):
            if not isinstance(values[name], bool):
                raise InputError(f"parameter {name!r} switches collection off: it is true or false, not "
                                 f"{values[name]!r} (for {where})")
    for step in definition.order:
        for field in LOADED_ONCE.get(type(step), ()):
            selector = getattr(step, field)
            if isinstance(selector, str) and selector.removeprefix("$inputs.") in per_source:
                raise InputError(f"parameter {selector.removeprefix('$inputs.')!r} sets {field} of step "
                                 f"{step.name!r}, which is set up once per run: give it for every source")


def _load(step: ModelStep, value: Any, device: str) -> Model:
    from framesift.models import load_model

    model_id = str(value(step.model_id))
    confidence, iou = value(step.confidence), value(step.iou_threshold)
    if model_id == "stub" or model_id.endswith("/0"):  # `<dataset>/0`: the dataset's null model
        spec, recorded = f"stub:{step.task_type}", None if model_id == "stub" else model_id
    elif model_id == "demo" or Path(model_id).is_file():
        spec, recorded = model_id, None
    else:
        raise ModelError(f"step {step.name!r}: model_id {model_id!r} is not a file; framesift runs ONNX files, "
                         "demo, stub, or <dataset>/0 (the dataset's null model)")
    model = load_model(spec, device=device, confidence=0.25 if confidence is None else float(confidence),
                       iou=0.45 if iou is None else float(iou), model_id=recorded,
                       max_detections=int(value(step.max_detections) or 300))
    if model.task_type != step.task_type:
        raise ModelError(f"step {step.name!r} is a {step.type}, but {model_id} is a {model.task_type} model")
    return model


def _target(target: str, dataset: str) -> str:
    """Where a collector of `dataset` registers, given the run's `--target`."""
    scheme, colon, name = target.partition(":")
    if colon and scheme in REMOTE_SCHEMES:
        if name:
            raise TargetError(f"with a workflow, --target is a folder of datasets, {scheme}: or {scheme} (each "
                              f"collector's target_dataset names its dataset), not {target!r}")
        return f"{scheme}:{dataset}"
    if target in REMOTE_SCHEMES:
        return f"{target}:{dataset}"
    return str(Path(target) / dataset)


def _model_of(definition: WorkflowDefinition, step: CollectorStep) -> str:
    """The model step whose predictions a collector samples (through any filters)."""
    source = definition.step(named_step(step.predictions))
    while isinstance(source, DetectionFilterStep):
        source = definition.step(named_step(source.predictions))
    return str(source.name)
