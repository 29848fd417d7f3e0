"""The ASGI application of `framesift serve`: the routes Roboflow's `inference_sdk` client calls in its default
mode, answered in the shapes it parses.

| route | what |
|---|---|
| `GET /info` | `{"name", "version", "uuid"}` |
| `GET /model/registry` | `{"models": [{"model_id", "task_type", "batch_size", "input_height", "input_width"}]}` |
| `POST /model/add`, `/model/remove` (`{"model_id"}`), `/model/clear` | load, forget, forget all; the registry |
| `POST /infer/object_detection`, `/infer/instance_segmentation`, | the v1 inference routes |
| `/infer/keypoints_detection`, `/infer/classification` | |
| `POST /<project>/<version>` | the legacy (v0) route |
| `POST /workflows/run`, `/infer/workflows` | a workflow sent with its inputs (`framesift.serve.workflows`) |
| `GET /metrics` | Prometheus: requests and latency per route, the queue, each dataset's collector |

Every refusal is JSON `{"message": <one sentence>}` with a 4xx status (503 with `Retry-After` when the inference
queue is full); the client's `api_key` (body, query or `Authorization: Bearer`) is compared in constant time with
the server's key when it has one, and is never logged, recorded or counted.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from framesift.collectors.targets import Labels
from framesift.models import StubModel
from framesift.models.model import Model
from framesift.observe.exposition import is_loopback
from framesift.predictions import DetectionPrediction, Prediction, StubPrediction
from framesift.redaction import redact
from framesift.serve.bodies import InferRequest, parse_v0, parse_v1
from framesift.serve.collection import Collection, dataset_of
from framesift.serve.errors import BadRequest, HttpError, TooLarge, Unauthorized
from framesift.serve.metrics import ServeMetrics
from framesift.serve.models import InferenceQueue, ModelRegistry
from framesift.serve.workflows import Workflows
from framesift.version import __version__

log = logging.getLogger(__name__)

TASK_ROUTES = {"object_detection": "object-detection", "instance_segmentation": "instance-segmentation",
               "keypoints_detection": "keypoint-detection", "classification": "classification"}


@dataclass
class Server:
    """What the routes share: the models, the inference queue, the collection (None: no active learning)."""

    registry: ModelRegistry
    queue: InferenceQueue
    collection: Collection | None
    metrics: ServeMetrics
    workflows: Workflows | None = None
    api_key: str | None = None
    max_body_bytes: int = 32 << 20
    uuid: str = ""
    loopback_only: bool = True  # bound to a loopback address: answer only requests addressed to a loopback name

    def check_host(self, request: Request) -> None:
        """While bound to a loopback address, refuse a request addressed to another name: a web page the machine's
        browser opens cannot reach the server through a name of its own that resolves to 127.0.0.1 (DNS
        rebinding)."""
        if self.loopback_only and not is_loopback(urlsplit("//" + request.headers.get("host", "")).hostname or ""):
            raise HttpError("this server answers only requests addressed to 127.0.0.1, localhost or [::1]",
                            status=403)

    async def body(self, request: Request) -> bytes:
        """The body, refused (413) past `max_body_bytes` before more than that is read."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise TooLarge(f"the request body is larger than this server's limit of {self.max_body_bytes} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise TooLarge(f"the request body is larger than this server's limit of {self.max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def json_body(self, request: Request) -> Any:
        raw = await self.body(request)
        try:
            return json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the request body is not valid JSON") from None

    def check_key(self, request: Request, body: Any = None) -> None:
        """401 unless the request carries the server's key (when it has one), compared in constant time."""
        if self.api_key is None:
            return
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip() or \
            request.query_params.get("api_key") or (body.get("api_key") if isinstance(body, dict) else None)
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise Unauthorized("this server needs its API key (api_key, or Authorization: Bearer)")

    async def predict(self, model: Model, request: InferRequest) -> list[Prediction]:
        """The predictions for the request's images: the stub's at once, a model's through the inference queue."""
        if isinstance(model, StubModel):
            return [StubPrediction(model.model_id, model.task_type) for _ in request.images]
        inputs = await run_in_threadpool(lambda: [model.prepare(image) for image in request.images])
        confidence = self.registry.confidence if request.confidence is None else request.confidence
        iou = self.registry.iou if request.iou is None else request.iou
        done = self.queue.submit(model, inputs, confidence, iou)
        predictions = await asyncio.wrap_future(done)
        return [_kept(prediction, request.class_filter) for prediction in predictions]

    async def infer(self, request: Request, model_id: str | None = None, task: str | None = None) -> Response:
        """One inference request (v1 when `model_id` is None, else the legacy route's), answered before its
        datapoints are offered to the collection."""
        started = time.perf_counter()
        if model_id is None:
            body = await self.json_body(request)
            self.check_key(request, body)
            parsed = await run_in_threadpool(parse_v1, body)
        else:
            self.check_key(request)
            raw = await self.body(request)
            parsed = await run_in_threadpool(parse_v0, model_id, dict(request.query_params), raw)
        model = await run_in_threadpool(self.registry.get, parsed.model_id)
        if task is not None and model.task_type != task and not isinstance(model, StubModel):
            route = next(name for name, kind in TASK_ROUTES.items() if kind == model.task_type)
            raise BadRequest(f"model {parsed.model_id!r} is a {model.task_type} model: send it to /infer/{route}")
        predictions = await self.predict(model, parsed)
        took = time.perf_counter() - started
        answers = [_answer(prediction, took) for prediction in predictions]
        offer = None
        if self.collection is not None and not parsed.disable_active_learning:
            offer = BackgroundTask(self._offer, parsed, model, predictions, answers)
        return JSONResponse(answers if parsed.batch else answers[0], background=offer)

    def _offer(self, request: InferRequest, model: Model, predictions: list[Prediction],
               answers: list[dict[str, Any]]) -> None:
        """Offer each image with its prediction (the one answered: same detection ids) to its dataset."""
        assert self.collection is not None
        dataset = dataset_of(request.model_id, request.target_dataset)
        source = redact(request.source or "http")
        try:
            for image, prediction, answer in zip(request.images, predictions, answers, strict=True):
                self.collection.offer(dataset, image, prediction, labels=Labels.of(model), source=source,
                                      extra={"inference_id": answer.get("inference_id")})
        except Exception as error:  # after the answer: said in one line and counted, never a traceback
            self.collection.uncollected["failed"] += 1
            log.error("a request for dataset %r was not collected: %s", dataset,
                      redact(f"{type(error).__name__}: {error}"))

    async def workflow(self, request: Request) -> Response:
        """A workflow specification sent with its inputs: its outputs, one object per image."""
        body = await self.json_body(request)
        self.check_key(request, body)
        if self.workflows is None:
            raise HttpError("this server runs no workflows", status=404)
        return JSONResponse(await run_in_threadpool(self.workflows.run, body))

    async def registry_answer(self, request: Request) -> Response:
        self.check_key(request)
        return JSONResponse({"models": self.registry.loaded()})

    async def add(self, request: Request) -> Response:
        await run_in_threadpool(self.registry.get, await self.model_id(request))
        return JSONResponse({"models": self.registry.loaded()})

    async def remove(self, request: Request) -> Response:
        self.registry.remove(await self.model_id(request))
        return JSONResponse({"models": self.registry.loaded()})

    async def model_id(self, request: Request) -> str:
        """The `model_id` of a model route's body (its key checked)."""
        body = await self.json_body(request)
        self.check_key(request, body)
        model_id = body.get("model_id") if isinstance(body, dict) else None
        if not isinstance(model_id, str):
            raise BadRequest("model_id is missing: name the model (<project>/<version>)")
        return model_id

    async def clear(self, request: Request) -> Response:
        self.check_key(request, await self.json_body(request))
        self.registry.close()
        return JSONResponse({"models": []})

    async def info(self, request: Request) -> Response:
        return JSONResponse({"name": "framesift serve", "version": __version__, "uuid": self.uuid})

    async def exposition(self, request: Request) -> Response:
        self.check_key(request)
        body, content_type = self.metrics.exposition(self.queue, self.collection)
        return Response(body, media_type=content_type)


def _kept(prediction: Prediction, classes: frozenset[str] | None) -> Prediction:
    """The prediction with detection ids (the answer's and the record's), only of `classes` when given."""
    if not isinstance(prediction, DetectionPrediction):
        return prediction
    if classes is not None:
        prediction = prediction.subset(np.array([name in classes for name in prediction.class_name], dtype=bool))
    return replace(prediction, detection_id=[str(uuid.uuid4()) for _ in range(len(prediction))])


def _answer(prediction: Prediction, took: float) -> dict[str, Any]:
    """Roboflow's response shape: the stub's exactly `{"time", "is_stub", "model_id", "task_type"}`; a model's
    prediction JSON with `time` (seconds the request took) and an `inference_id`."""
    if isinstance(prediction, StubPrediction):
        return {"time": took, "is_stub": True, "model_id": prediction.model_id, "task_type": prediction.task_type}
    return {"inference_id": str(uuid.uuid4()), "time": took, **prediction.to_json()}


Handler = Callable[[Request], Awaitable[Response]]


def build_app(server: Server) -> Starlette:
    """The application: each route timed and counted under its template, every refusal one JSON sentence."""
    def timed(name: str, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                server.check_host(request)
                response = await handler(request)
            except HttpError as error:
                headers = {"Retry-After": str(int(error.retry_after))} if error.retry_after else None
                response = JSONResponse({"message": str(error)}, status_code=error.status, headers=headers)
            except Exception as error:  # the last line of defence: one sentence, never a traceback
                log.error("%s failed: %s", name, redact(f"{type(error).__name__}: {error}"))
                response = JSONResponse({"message": f"the server failed on this request ({type(error).__name__})"},
                                        status_code=500)
            server.metrics.observe(name, response.status_code, time.perf_counter() - started)
            return response
        return endpoint

    def legacy(request: Request) -> Awaitable[Response]:
        params = request.path_params
        return server.infer(request, model_id=f"{params['project']}/{params['version']}")

    def task_route(task: str) -> Handler:
        return lambda request: server.infer(request, task=task)

    routes = [Route("/info", timed("/info", server.info), methods=["GET"]),
              Route("/metrics", timed("/metrics", server.exposition), methods=["GET"]),
              Route("/model/registry", timed("/model/registry", server.registry_answer), methods=["GET"]),
              Route("/model/add", timed("/model/add", server.add), methods=["POST"]),
              Route("/model/remove", timed("/model/remove", server.remove), methods=["POST"]),
              Route("/model/clear", timed("/model/clear", server.clear), methods=["POST"]),
              Route("/workflows/run", timed("/workflows/run", server.workflow), methods=["POST"]),
              Route("/infer/workflows", timed("/infer/workflows", server.workflow), methods=["POST"])]
    routes += [Route(f"/infer/{name}", timed(f"/infer/{name}", task_route(task)), methods=["POST"])
               for name, task in TASK_ROUTES.items()]
    routes.append(Route("/{project}/{version}", timed("/{project}/{version}", legacy), methods=["POST"]))

    async def refused(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        server.metrics.observe("unrouted", error.status_code, 0.0)
        return JSONResponse({"message": f"no such route: {request.method} {request.url.path[:80]}"},
                            status_code=error.status_code)

    return Starlette(routes=routes, exception_handlers={HTTPException: refused})
