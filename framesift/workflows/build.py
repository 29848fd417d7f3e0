"""From a validated workflow definition and a run's settings to a `Workflow` ready to run: its models loaded, its
collectors' targets and their shared limit store open.

- A model step's `model_id` is an ONNX file, a model id found in the models folder (`models`: `<project>/<version>`
  is `<models>/<project>/<version>.onnx`, see `framesift.models.files`), `demo`, `stub`, or `<dataset>/0` (a
  dataset's null model: the stub, for that step's task, recorded with that id); thresholds default to
  `framesift run`'s (0.25, 0.45). A `YoloWorld` step's model is its `model_id`, else `yolo_world/<version>`; the
  model's class names must be its `class_names`.
- Each collector's `target_dataset` resolves against the run's `--target`: a folder holds one dataset folder per
  `target_dataset`; `roboflow:` sends to the Roboflow dataset of that name, `labelstudio:` to the Label Studio
  project of that title. Its key: `target_dataset_api_key` (a parameter's value when it is `$inputs.<name>`), else
  the configuration's, else the run's.
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
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from framesift import defaults
from framesift.collectors.config.follower import ConfigCache
from framesift.collectors.config.store import ConfigStore
from framesift.errors import InputError, ModelError
from framesift.models.files import is_null_model, locate_model
from framesift.models.model import Model
from framesift.paths import check_dataset_name
from framesift.workflows.definition import WorkflowDefinition
from framesift.workflows.engine import Workflow
from framesift.workflows.fields import named_step
from framesift.workflows.steps.active_learning_data_collector import CollectorStep
from framesift.workflows.steps.model import Inferring


def build_workflow(definition: WorkflowDefinition, *, parameters: Mapping[str, Any] = {},
                   source_parameters: Mapping[str, Mapping[str, Any]] = {}, target: str = defaults.TARGET,
                   api_key: str | None = None, outbox: str | os.PathLike[str] = defaults.OUTBOX,
                   outbox_max_bytes: int = defaults.OUTBOX_MAX_BYTES, redis: str | None = None,
                   redis_fallback: str = defaults.REDIS_FALLBACK, device: str = defaults.DEVICE,
                   seed: int | None = None, store: ConfigStore | None = None, cache: ConfigCache | None = None,
                   config_refresh: float = defaults.CONFIG_REFRESH_S, models: str | os.PathLike[str] | None = None,
                   before_targets: Callable[[], None] = lambda: None) -> Workflow:
    """Load the models and open the collectors; whatever was opened is closed again when a later step fails.
    `before_targets` is called once the models are loaded and every name is checked, just before the first target
    opens (`framesift run` takes its replay lock there: a run refused earlier leaves nothing behind)."""
    from framesift.collectors import Collector, open_limiter
    from framesift.collectors.config.follower import first_configuration, poll_interval
    from framesift.collectors.targets import Labels, TargetSpec

    _check_parameters(definition, parameters, source_parameters)
    place = TargetSpec.parse(target)
    values = {**definition.parameters, **parameters}

    def value(field: Any) -> Any:
        return values[field.removeprefix("$inputs.")] if isinstance(field, str) and field.startswith("$") else field

    datasets = {step.name: _dataset(step, value) for step in definition.order if isinstance(step, CollectorStep)}
    followed = [s.name for s in definition.order if isinstance(s, CollectorStep) and s.name not in
                definition.configurations]
    if followed and store is None:
        raise InputError(f"collector step {followed[0]!r} has no active_learning_configuration: give it one, or "
                         "name the configuration store of its dataset (--al-config redis://... or roboflow:...)")
    if store is not None and not followed:
        raise InputError("--al-config names a configuration store, but every collector step carries its own "
                         "configuration")
    loaded = {step.name: _load(step, value, device, models) for step in definition.order
              if isinstance(step, Inferring)}
    before_targets()
    with ExitStack() as opened:
        collectors = {}
        limiter = None
        for index, step in enumerate(s for s in definition.order if isinstance(s, CollectorStep)):
            if limiter is None:
                limiter = open_limiter(redis, redis_fallback)
                opened.callback(limiter.close)
            spec = place.for_dataset(datasets[step.name])
            first = None
            if step.name in definition.configurations:
                config = definition.configurations[step.name]
            else:
                assert store is not None
                first = first_configuration(store, datasets[step.name], cache)
                config = first.config
            key = _secret(step.target_dataset_api_key, value) or spec.configured_key(config.target_dataset_api_key)
            dataset = spec.open(api_key=key.get_secret_value() if key else api_key, outbox=outbox,
                                outbox_max_bytes=outbox_max_bytes, exclusive=redis is None, shared=redis is not None,
                                labels=_labels(definition, step, loaded, Labels))
            opened.callback(dataset.close)  # the collector's close closes it too: closing is idempotent
            collectors[step.name] = Collector(config, dataset, limiter, seed=None if seed is None else seed + index,
                                              owns_limiter=False)
            opened.callback(collectors[step.name].close)
            collectors[step.name].start()  # a remote target delivers what its outbox holds from now on
            if first is not None and store is not None:
                collectors[step.name].follow(store, first, poll=poll_interval(store, config_refresh), cache=cache)
        owned = [resource for resource in (limiter, store) if resource is not None]
        workflow = Workflow(definition, loaded, collectors, parameters=parameters, owned=owned)
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
        for field in type(step).ONCE:
            selector = getattr(step, field)
            if isinstance(selector, SecretStr):
                selector = selector.get_secret_value()
            if isinstance(selector, str) and selector.startswith("$inputs.") and \
                    selector.removeprefix("$inputs.") in per_source:
                raise InputError(f"parameter {selector.removeprefix('$inputs.')!r} sets {field} of step "
                                 f"{step.name!r}, which is set up once per run: give it for every source")
    run = {**definition.parameters, **parameters}
    for where, values in (("the run", run), *((name, {**run, **own}) for name, own in source_parameters.items())):
        for step in definition.order:
            _check_values(step, values, where)


def _check_values(step: Any, values: Mapping[str, Any], where: str) -> None:
    """The step's fields with the parameters' values in place must be valid as if written there (a parameter left
    at `null` leaves its field unset)."""
    data = step.model_dump(exclude_unset=True)
    named = {field: value.removeprefix("$inputs.") for field, value in data.items()
             if isinstance(value, str) and value.removeprefix("$inputs.") in values and value.startswith("$inputs.")}
    for field, name in named.items():
        if values[name] is None:
            del data[field]
        else:
            data[field] = values[name]
    try:
        type(step).model_validate(data)
    except ValidationError as error:
        problem = error.errors()[0]
        field = str(problem["loc"][0]) if problem["loc"] else ""
        if field in named:
            message = str(problem["msg"]).removeprefix("Value error, ").removesuffix(" or a parameter ($inputs.<name>)")
            raise InputError(f"parameter {named[field]!r} sets {field} of step {step.name!r}: {message}, not "
                             f"{values[named[field]]!r} (for {where})") from None


def _secret(key: SecretStr | None, value: Any) -> SecretStr | None:
    """A collector's `target_dataset_api_key`: as written, or the value of the parameter it names (a text; the
    value itself is never shown)."""
    if key is None or not key.get_secret_value().startswith("$"):
        return key
    name = key.get_secret_value().removeprefix("$inputs.")
    resolved = value(key.get_secret_value())
    if resolved is None:
        return None  # the parameter's default: no key of its own
    if not isinstance(resolved, str) or not resolved:
        raise InputError(f"parameter {name!r} is a collector's target_dataset_api_key: give it an API key (a text), "
                         f"not a {type(resolved).__name__}")
    return SecretStr(resolved)


def locate_models(definition: WorkflowDefinition, models: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """The ONNX file of each model step (a parameter's default for a `$inputs` model_id; none for `stub`, `demo`, a
    null model or a parameter without a default), found as `build_workflow` finds it: `ModelError` naming the step
    and where it looked when one is not there."""
    def default(field: Any) -> Any:
        if isinstance(field, str) and field.startswith("$inputs."):
            return definition.parameters.get(field.removeprefix("$inputs."))
        return field

    found = {}
    for step in definition.order:
        if not isinstance(step, Inferring):
            continue
        model_id = step.model_id_from(default)
        if model_id is None or str(model_id) in ("stub", "demo") or is_null_model(str(model_id)):
            continue
        try:
            found[step.name] = locate_model(str(model_id), models)[0]
        except ModelError as error:
            raise ModelError(f"step {step.name!r}: {error}") from None
    return found


def _load(step: Inferring, value: Any, device: str, models: str | os.PathLike[str] | None) -> Model:
    from framesift.models import load_model

    model_id = str(step.model_id_from(value))
    confidence, iou = value(getattr(step, "confidence", None)), value(getattr(step, "iou_threshold", None))
    null = model_id == "stub" or is_null_model(model_id)  # `<dataset>/0`: the dataset's null model
    try:
        model = load_model(f"stub:{step.task_type}" if null else model_id, device=device,
                           confidence=defaults.CONFIDENCE if confidence is None else float(confidence),
                           iou=defaults.IOU if iou is None else float(iou),
                           model_id=model_id if null and model_id != "stub" else None,
                           max_detections=int(value(getattr(step, "max_detections", None)) or defaults.MAX_DETECTIONS),
                           class_agnostic=bool(value(getattr(step, "class_agnostic_nms", False))),
                           max_candidates=int(value(getattr(step, "max_candidates", None)) or defaults.MAX_CANDIDATES),
                           multi_label=getattr(step, "multi_label", False), models=models)
    except ModelError as error:
        raise ModelError(f"step {step.name!r}: {error}") from None
    if model.task_type != step.task_type:
        raise ModelError(f"step {step.name!r} is a {step.type}, but {model_id} is a {model.task_type} model")
    refused = step.refusal(model, model_id, value)
    if refused is not None:
        raise ModelError(refused)
    return model


def _dataset(step: CollectorStep, value: Callable[[Any], Any]) -> str:
    """The dataset a collector step names, its parameter resolved; `TargetError` unless it is a dataset name."""
    given = f" ({step.target_dataset})" if step.target_dataset.startswith("$") else ""
    return check_dataset_name(value(step.target_dataset), f"step {step.name!r}: target_dataset{given}")


def _labels(definition: WorkflowDefinition, step: CollectorStep, models: Mapping[str, Model], labels: Any) -> Any:
    """What a collector's target is set up to label: the classes of the models whose predictions it samples
    (through filters; a consensus: all its sources', as boxes)."""
    found = _models_of(definition, named_step(step.predictions))
    if len(found) == 1:
        return labels.of(models[found[0]])
    names = dict.fromkeys(name for model in found for name in models[model].class_names)
    return labels("object-detection", tuple(names))


def _models_of(definition: WorkflowDefinition, name: str) -> list[str]:
    """The model steps whose predictions a step's are made of, in order, through any chain of steps made from
    others (filters, consensus; a loop: a chain of 1,000 filters is no recursion)."""
    found: list[str] = []
    pending = [name]
    while pending:
        source = definition.step(pending.pop())
        if source.made_from():
            pending += [named_step(selector) for selector in reversed(source.made_from())]
        else:
            found.append(str(source.name))
    return found
