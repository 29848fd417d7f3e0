"""`framesift serve` as a Python API: the uvicorn server running the application until stopped.

Example:
    >>> serve(ServeOptions(port=9001, models="models", al_config="redis://127.0.0.1:6379/0"))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import uuid
from contextlib import ExitStack
from typing import Any

from framesift.errors import InputError
from framesift.models.session import parse_device
from framesift.observe.exposition import is_loopback
from framesift.serve_options import ServeOptions
from framesift.workflows.definition import CollectorStep, WorkflowDefinition
from framesift.workflows.engine import Workflow

log = logging.getLogger(__name__)

API_KEY_VARIABLE = "FRAMESIFT_SERVE_API_KEY"


def serve(options: ServeOptions, stop: threading.Event | None = None,
          started: threading.Event | None = None) -> None:
    """Serve until `stop` is set (the CLI sets it on SIGINT/SIGTERM); then the requests in flight are answered and the
    queued datapoints written within `drain_timeout`. `started` is set once the server listens. The inference
    thread or a collector's dying ends it with `WorkerFailed`."""
    import uvicorn

    from framesift.collectors.config.follower import DEFAULT_CACHE, ConfigCache
    from framesift.collectors.config.store import FileStore, open_store
    from framesift.serve.app import Server, build_app
    from framesift.serve.collection import Collection
    from framesift.serve.metrics import ServeMetrics
    from framesift.serve.models import InferenceQueue, ModelRegistry
    from framesift.serve.workflows import Workflows

    stop = stop or threading.Event()
    stub_task, stub_tasks = options.stub_tasks()
    with ExitStack() as opened:
        registry = opened.enter_context(ModelRegistry(
            options.models, device=options.device, confidence=options.confidence, iou=options.iou,
            stub_task=stub_task, stub_tasks=stub_tasks))
        on_gpu = parse_device(options.device).kind != "cpu" and _gpu_available()
        batch_wait = options.batch_wait if options.batch_wait is not None else (0.002 if on_gpu else 0.0)
        queue = opened.enter_context(InferenceQueue(options.max_pending, batch_wait))
        collection = None
        if options.al_config:
            store = open_store(options.al_config, api_key=options.api_key)
            opened.callback(store.close)
            if isinstance(store, FileStore):
                store.get("serve")  # a missing or invalid file is refused now, not at the first request
            cache = None if isinstance(store, FileStore) else ConfigCache(options.config_cache or DEFAULT_CACHE)
            collection = Collection(store, target=options.target, api_key=options.api_key, outbox=options.outbox,
                                    outbox_max_bytes=options.outbox_max_bytes, redis=options.redis,
                                    redis_fallback=options.redis_fallback, seed=options.seed, cache=cache,
                                    refresh=options.config_refresh, max_datasets=options.max_datasets)
            opened.callback(collection.close, options.drain_timeout)
            for dataset in options.dataset:
                collection.open(dataset)
        workflows = opened.enter_context(Workflows(functools.partial(_build_workflow, options),
                                                   max_pending=options.max_pending,
                                                   busy=collection.datasets if collection is not None else set))
        if collection is not None:
            collection.busy = workflows.datasets  # one writer per dataset in this server
        key = options.server_key if options.server_key is not None else os.environ.get(API_KEY_VARIABLE) or None
        server = Server(registry, queue, collection, ServeMetrics(), workflows, api_key=key,
                        max_body_bytes=options.max_body_bytes, uuid=str(uuid.uuid4()),
                        loopback_only=is_loopback(options.host))
        config = uvicorn.Config(build_app(server), host=options.host, port=options.port, access_log=False,
                                log_level="warning", lifespan="off", timeout_graceful_shutdown=int(
                                    options.drain_timeout) or 1)
        listening = opened.enter_context(_listen(options.host, options.port))
        runner = uvicorn.Server(config)
        thread = threading.Thread(target=runner.run, kwargs={"sockets": [listening]}, name="framesift-serve",
                                  daemon=True)
        thread.start()
        while not runner.started and thread.is_alive():
            thread.join(0.05)
        if not runner.started:
            raise InputError(f"the server on {options.host}:{options.port} did not start")
        log.info("serving the inference API on http://%s:%d%s%s", options.host, options.port,
                 "" if collection is None else f", collecting into {options.target}",
                 " (API key required)" if key else "")
        if started is not None:
            started.set()
        try:
            while not stop.wait(0.2) and thread.is_alive():
                queue.check()  # a thread of the server that died ends it, loudly (exit 1)
                if collection is not None:
                    collection.check()
        finally:
            runner.should_exit = True
            thread.join()


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, or `InputError` in one sentence."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
    except OSError as error:
        raise InputError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host.strip("[]"), port))
        listening.listen(2048)
    except OSError as error:
        listening.close()
        raise InputError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return listening


def _build_workflow(options: ServeOptions, definition: WorkflowDefinition, parameters: dict[str, Any]) -> Workflow:
    """A workflow sent with a request, built as `framesift run --workflow` builds one from the server's options
    (its collector steps without a configuration follow their dataset's in `--al-config`, with a store of their
    own)."""
    from framesift.collectors.config.follower import DEFAULT_CACHE, ConfigCache
    from framesift.collectors.config.store import FileStore, open_store
    from framesift.workflows.build import build_workflow

    store = cache = None
    if options.al_config and any(isinstance(step, CollectorStep) and step.name not in definition.configurations
                                 for step in definition.order):
        store = open_store(options.al_config, api_key=options.api_key)
        cache = None if isinstance(store, FileStore) else ConfigCache(options.config_cache or DEFAULT_CACHE)
    try:
        return build_workflow(definition, parameters=parameters, store=store, cache=cache, **options.for_workflow())
    except BaseException:
        if store is not None:
            store.close()
        raise


def _gpu_available() -> bool:
    """Whether ONNX Runtime offers a GPU provider here (a GPU server batches concurrent requests)."""
    try:
        import onnxruntime

        return any(p in onnxruntime.get_available_providers() for p in ("CUDAExecutionProvider",
                                                                         "TensorrtExecutionProvider"))
    except ImportError:
        return False
