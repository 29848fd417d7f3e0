"""The options of `framesift serve`, each declared once (`framesift.options`): a field of `ServeOptions` with its type,
its default (named in `framesift.defaults`), its help and its group. The command line's parser (`framesift.cli`),
what a workflow sent with a request is built with (`ServeOptions.for_workflow()`) and the reference page
docs/serve-options.md (`scripts/run_reference.py`) derive from them.

Example:
    >>> ServeOptions(models="models").port, ServeOptions().max_body_bytes == 32 << 20
    (9001, True)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from framesift import defaults
from framesift.errors import InputError
from framesift.options import Command, declared, for_workflow, refuse_invalid
from framesift.options import option as declare
from framesift.predictions import TASK_TYPES
from framesift.run_options import MODELS_HELP

ABOUT = "the inference HTTP API Roboflow's inference_sdk client talks to, collecting from every request"
GROUPS = {  # the headings of `framesift serve --help` and of docs/serve-options.md, in this order
    "server": "where it listens, and how much it takes",
    "models": "what answers the requests",
    "collection": "which requests' images are kept, by which configuration",
    "targets": "where the images kept go",
    "fleet": "budgets shared with every run and serve through Redis",
}
EXAMPLES = (  # the end of `framesift serve --help` and of docs/serve-options.md: (command, what it does)
    ("framesift serve --models models --al-config redis://10.0.0.2:6379/0 --redis redis://10.0.0.2:6379/0 "
     "--target datasets", "each dataset's configuration and budgets shared with the fleet, collected into "
                          "datasets/<dataset>"),
    ("framesift serve --stub-task asl-poly-instance-seg=instance-segmentation",
     "the null model of a dataset answering as an instance segmentation model, on http://127.0.0.1:9001"),
    ("framesift serve --host 0.0.0.0 --models models --max-pending 16",
     "open to other machines, at most 16 requests waiting for the model (set FRAMESIFT_SERVE_API_KEY)"),
)
option = functools.partial(declare, GROUPS)  # a field of `ServeOptions`: `framesift.options.option`


@dataclass
class ServeOptions:
    """Every option of `framesift serve`, with the command line's defaults."""

    host: str = option("the address to listen on", "server", defaults.LISTEN_HOST, metavar="HOST")
    port: int = option("the port, Roboflow's server's by default", "server", defaults.SERVE_PORT, metavar="PORT")
    max_pending: int = option("requests waiting for the model; more are answered 503", "server",
                              defaults.MAX_PENDING, metavar="N", positive=True)
    batch_wait: float | None = option("how long a request waits for others to share its model call (default 0.002 "
                                      "on a GPU, 0 on the CPU)", "server", metavar="S")
    max_body_bytes: int = option("larger requests: 413", "server", defaults.MAX_BODY_BYTES, metavar="BYTES",
                                 positive=True)
    server_key: str | None = option("the API key every request but /info must carry (the command line reads "
                                    "$FRAMESIFT_SERVE_API_KEY)", "server", secret=True, python_only=True)
    drain_timeout: float = option("seconds to write queued datapoints when stopped", "server",
                                  defaults.DRAIN_TIMEOUT_S, metavar="S")
    models: str | None = option(MODELS_HELP, "models", metavar="DIR", workflow=True)
    stub_task: list[str] = option("the task type of <dataset>/0, the null model (object-detection when none is "
                                  "given)", "models", [], metavar="[DATASET=]TASK")
    device: str = option("where models run, as for run", "models", defaults.DEVICE, metavar="DEVICE",
                         workflow=True)
    confidence: float = option("a request's default confidence", "models", defaults.CONFIDENCE, metavar="C")
    iou: float = option("a request's default IoU threshold", "models", defaults.IOU, metavar="IOU")
    al_config: str | None = option("the configuration of each dataset: a file, redis://host:port/db or "
                                   "roboflow:<workspace>; followed live; none: no collection", "collection",
                                   metavar="CONFIG")
    dataset: list[str] = option("open this dataset's collector at start, not at its first request: what its remote "
                                "target's outbox holds from an earlier run is delivered at once", "collection", [],
                                metavar="NAME")
    max_datasets: int = option("datasets collected at once", "collection", defaults.MAX_DATASETS, metavar="N",
                               positive=True)
    seed: int | None = option("make every sampling draw reproducible", "collection", metavar="N", workflow=True)
    config_cache: str | None = option("where the last configuration known from a store is kept, to start without it "
                                      "(default: ~/.cache/framesift/configs)", "collection", metavar="DIR")
    config_refresh: float = option("seconds between reads of a store that announces no change (the Roboflow API)",
                                   "collection", defaults.CONFIG_REFRESH_S, metavar="S", positive=True,
                                   workflow=True)
    target: str = option("a folder of datasets (each dataset its folder inside), roboflow: or labelstudio:",
                         "targets", defaults.TARGET, metavar="TARGET", workflow=True)
    api_key: str | None = option("the remote target's API key (default: ROBOFLOW_API_KEY or LABEL_STUDIO_API_KEY)",
                                 "targets", metavar="KEY", workflow=True, secret=True)
    outbox: str = option("folder of remote targets' outboxes", "targets", defaults.OUTBOX, metavar="DIR",
                         workflow=True)
    outbox_max_bytes: int = option("refuse (and count) new datapoints past this many bytes pending", "targets",
                                   defaults.OUTBOX_MAX_BYTES, metavar="BYTES", workflow=True)
    redis: str | None = option("redis://host:port/db: budgets shared with every run and serve on it", "fleet",
                               metavar="URL", workflow=True)
    redis_fallback: str = option("while Redis is unreachable: collect nothing (pause) or use local budgets (memory)",
                                 "fleet", defaults.REDIS_FALLBACK, choices=("pause", "memory"), workflow=True)

    def __post_init__(self) -> None:
        """Refuse in one sentence (exit code 2) an option no server can mean, before anything is opened."""
        from framesift.models.session import parse_device  # here: the command line's parser stays light
        from framesift.paths import check_dataset_name

        refuse_invalid(self)
        if not 0 <= self.port <= 65535:
            raise InputError(f"--port must be a port number from 0 to 65535, not {self.port}")
        if self.batch_wait is not None and not 0 <= self.batch_wait <= 1:
            raise InputError(f"--batch-wait must be from 0 to 1 second, not {self.batch_wait}")
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

    def for_workflow(self) -> dict[str, Any]:
        """The keywords `build_workflow` takes from the server's options (those declared `workflow=True`)."""
        return for_workflow(self)


OPTIONS = declared(ServeOptions)  # in declaration order
SERVE = Command("serve", ABOUT, GROUPS, ServeOptions, EXAMPLES,
                examples_skip="framesift serve answers until it is stopped: tests/test_serve.py runs it")
