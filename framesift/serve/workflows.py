"""Workflows sent with a request (`POST /workflows/run`, and the older `POST /infer/workflows`): the body the
client's `run_workflow(specification=..., images=..., parameters=...)` sends, `{"specification", "inputs":
{<image input>: {"type": "base64", "value"}, <parameter>: value, ...}, "api_key", ...}`, answered `{"outputs": [one
object per image]}`.

A workflow is built (models loaded, collectors opened: its collector steps collect as in `framesift run
--workflow`) once per specification and parameters, and kept for the next requests (at most `keep`; the least
recently used is closed, its collectors writing what they hold). A dataset has one writer in a server (opening a
dataset folder repairs what a killed writer left, which a second writer in the same folder would take for that).
One request runs a workflow at a time; at most `max_pending` requests wait for workflows, more are `Overloaded`
(503). Workflows named by workspace and id (fetched from Roboflow's API) are refused: framesift runs the
specification it is sent.

Example:
    >>> workflows = Workflows(lambda definition, parameters: build_workflow(definition))  # doctest: +SKIP
    >>> workflows.run({"specification": spec, "inputs": {"image": {"type": "base64", "value": b64}}})
    ... # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from framesift.errors import InputError
from framesift.resources import Resource
from framesift.serve.bodies import MAX_IMAGES, image_item
from framesift.serve.errors import BadRequest, HttpError, Overloaded
from framesift.workflows.definition import CollectorStep, WorkflowDefinition, parse_workflow
from framesift.workflows.engine import Workflow

Builder = Callable[[WorkflowDefinition, dict[str, Any]], Workflow]


def collected_datasets(definition: WorkflowDefinition, parameters: Mapping[str, Any]) -> set[str]:
    """The datasets a workflow's collector steps write, their parameters resolved."""
    values = {**definition.parameters, **parameters}
    names = (step.target_dataset for step in definition.order if isinstance(step, CollectorStep))
    return {str(values.get(name.removeprefix("$inputs."))) if name.startswith("$inputs.") else name
            for name in names}


class Workflows(Resource):
    """The workflows requests sent, built by `build(definition, parameters)` and kept.

    A dataset has one writer in a server: a workflow writing a dataset that a kept one writes replaces it (closed
    first), and one writing a dataset that `busy` names (the inference routes' collectors) is refused (409)."""

    def __init__(self, build: Builder, *, keep: int = 8, max_pending: int = 64,
                 busy: Callable[[], set[str]] = set):
        self._build, self.keep, self.max_pending, self._busy = build, keep, max_pending, busy
        self._kept: OrderedDict[str, tuple[Workflow, threading.Lock, set[str]]] = OrderedDict()
        self._lock = threading.Lock()
        self._pending = 0
        self.overloaded = 0

    def run(self, body: Any) -> dict[str, Any]:
        """The outputs of the body's workflow on each of its images (blocking: call it off the event loop)."""
        if not isinstance(body, Mapping):
            raise BadRequest("the request body must be a JSON object with specification and inputs")
        if body.get("specification") is None:
            raise BadRequest("this server runs the workflow specification sent with the request; workflows named "
                             "by workspace and id are not fetched")
        inputs = body.get("inputs") or {}
        if not isinstance(inputs, Mapping):
            raise BadRequest("inputs must be an object: the image input and the parameters")
        try:
            definition = parse_workflow(body["specification"], "specification")
        except InputError as error:
            raise BadRequest(" ".join(str(error).split())) from None
        given = inputs.get(definition.image)
        if given is None:
            raise BadRequest(f"inputs.{definition.image} is missing: the workflow's image")
        items = given if isinstance(given, list) else [given]
        if not items or len(items) > MAX_IMAGES:
            raise BadRequest(f"a request holds 1 to {MAX_IMAGES} images, not {len(items)}")
        images = [image_item(item, f"inputs.{definition.image}[{k}]") for k, item in enumerate(items)]
        parameters = {name: value for name, value in inputs.items() if name != definition.image}
        with self._lock:
            if self._pending >= self.max_pending:
                self.overloaded += 1
                raise Overloaded(f"all {self.max_pending} places for workflow requests are taken: retry later",
                                 retry_after=1)
            self._pending += 1
        try:
            workflow, running, _ = self._workflow(body["specification"], definition, parameters)
            with running:
                return {"outputs": [workflow.on_image(image, source="http").outputs for image in images]}
        finally:
            with self._lock:
                self._pending -= 1

    def _workflow(self, specification: Any, definition: WorkflowDefinition,
                  parameters: dict[str, Any]) -> tuple[Workflow, threading.Lock, set[str]]:
        key = hashlib.sha256(json.dumps([specification, parameters], sort_keys=True, default=str).encode())\
            .hexdigest()
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
            datasets = collected_datasets(definition, parameters)
            taken = sorted(datasets & self._busy())
            if taken:
                raise HttpError(f"dataset {taken[0]!r} is collected by this server's inference routes: give the "
                                "workflow's collector another target_dataset", status=409)
            for other in [k for k, (_, _, written) in self._kept.items() if written & datasets]:
                workflow, running, _ = self._kept.pop(other)
                with running:  # after the request running it, if any: one writer per dataset
                    workflow.close()
            try:
                built = self._build(definition, parameters)
            except InputError as error:  # a model not found, a parameter it does not have, a bad target name
                raise BadRequest(" ".join(str(error).split())) from None
            self._kept[key] = (built, threading.Lock(), datasets)
            evicted = self._kept.popitem(last=False)[1] if len(self._kept) > self.keep else None
            kept = self._kept[key]
        if evicted is not None:
            with evicted[1]:  # after the request running it, if any
                evicted[0].close()
        return kept

    def datasets(self) -> set[str]:
        """The datasets the kept workflows write."""
        with self._lock:
            return {name for _, _, written in self._kept.values() for name in written}

    def close(self, timeout: float = 10.0) -> None:
        """Close every workflow kept (each collector gets `timeout` to write what it holds); idempotent."""
        with self._lock:
            kept, self._kept = list(self._kept.values()), OrderedDict()
        for workflow, _, _ in kept:
            workflow.close(timeout)
