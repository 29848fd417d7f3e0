"""`framesift serve` as a Python API: the options, and the uvicorn server running the application until stopped.

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
from dataclasses import dataclass, field
from typing import Any

from framesift.errors import InputError, require_positive
from framesift.models.session import parse_device
from framesift.observe.exposition import is_loopback
from framesift.predictions import TASK_TYPES
from framesift.workflows.definition import CollectorStep, WorkflowDefinition
from framesift.workflows.engine import Workflow

log = logging.getLogger(__name__)

API_KEY_VARIABLE = "FRAMESIFT_SERVE_API_KEY"


@dataclass
class ServeOptions:
    """Every option of `framesift serve`, with the CLI's defaults."""

    host: str = "127.0.0.1"
    port: int = 9001
    models: str | None = None  # the models folder (default: `default_models_folder()`)
    stub_task: list[str] = field(default_factory=list)  # [DATASET=]TASK: the task type of `<dataset>/0`
    device: str = "auto"
    confidence: float = 0.25
    iou: float = 0.45
    al_config: str | None = None  # the configuration store (a file, redis://, roboflow:); None: no collection
    target: str = "framesift-data"  # a folder of datasets, roboflow: or labelstudio:
    api_key: str | None = field(default=None, repr=False)  # the remote targets' key
    outbox: str = "framesift-outbox"
    outbox_max_bytes: int = 1 << 30
    redis: str | None = None
    redis_fallback: str = "pause"
    seed: int | None = None
    config_cache: str | None = None
    config_refresh: float = 60.0
    max_datasets: int = 64
    dataset: list[str] = field(default_factory=list)  # datasets whose collectors open at start (outboxes delivered)
    max_pending: int = 64  # requests waiting for the inference thread; more: 503
    batch_wait: float | None = None  # seconds to wait for a batch (default: 0.002 on a GPU, 0 on the CPU)
    max_body_bytes: int = 32 << 20
    server_key: str | None = field(default=None, repr=False)  # default: $FRAMESIFT_SERVE_API_KEY
    drain_timeout: float = 10.0

    def __post_init__(self) -> None:
        require_positive({"--max-pending": self.max_pending, "--max-body-bytes": self.max_body_bytes,
                          "--max-datasets": self.max_datasets, "--config-refresh": self.config_refresh})
        if not 0 <= self.port <= 65535:
            raise InputError(f"--port must be a port number from 0 to 65535, not {self.port}")
        if self.batch_wait is not None and not 0 <= self.batch_wait <= 1:
            raise InputError(f"--batch-wait must be from 0 to 1 second, not {self.batch_wait}")
        from framesift.paths import check_dataset_name

        parse_device(self.device)
        self.stub_tasks()
        for dataset in self.dataset:
            check_dataset_name(dataset, "--dataset")

    def stub_tasks(self) -> tuple[str, dict[str, str]]:
        """`--stub-task`s as the default task type and each dataset's."""
        default, per_dataset = "object-detection", {}
        for text in self.stub_task:
            dataset, _, task = text.rpartition("=")
            if task not in TASK_TYPES:
                raise InputError(f"--stub-task {text!r}: the task type must be one of {', '.join(TASK_TYPES)}")
            if dataset:
                per_dataset[dataset] = task
            else:
                default = task
        return default, per_dataset


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
        return build_workflow(definition, parameters=parameters, target=options.target, api_key=options.api_key,
                              outbox=options.outbox, outbox_max_bytes=options.outbox_max_bytes, redis=options.redis,
                              redis_fallback=options.redis_fallback, device=options.device, seed=options.seed,
                              store=store, cache=cache, refresh=options.config_refresh, models=options.models)
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
