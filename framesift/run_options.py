"""The options of `framesift run`, each declared once (`framesift.options`): a field of `RunOptions` with its type
(the annotation), its default (named in `framesift.defaults`), its help and its group.

Everything else derives from these declarations: the command line's parser (`framesift.cli`, whose destinations are
the fields' names), what a workflow is built with (`RunOptions.for_workflow()`, `build_workflow`'s keywords of the
same names), which options must be above 0, and the reference page docs/run.md (`scripts/run_reference.py`).

Example:
    >>> options = RunOptions(sources=["clip.mp4"], model="stub")
    >>> options.target, next(o.flags for o in OPTIONS if o.name == "confidence")
    ('framesift-data', ('--confidence', '--conf'))
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from framesift import defaults
from framesift.errors import InputError, LimitStoreError
from framesift.options import Command, declared, for_workflow, refuse_invalid
from framesift.options import option as declare
from framesift.redis_url import check_redis_url

MODELS_HELP = ("the models folder: a model id is its file <id>.onnx there (<project>/<version>.onnx, "
               "yolov8n-640.onnx; default: $XDG_DATA_HOME/framesift/models, else ~/.local/share/framesift/models)")
ABOUT = "read sources, run the model, collect the frames worth labeling"
GROUPS = {  # the headings of `framesift run --help` and of docs/run.md, in this order, with what each holds
    "sources": "what is read, and how",
    "model": "what runs on the frames",
    "collection": "which frames are kept, by which configuration",
    "targets": "where the frames kept go",
    "fleet": "budgets and archives shared by several processes through Redis",
    "outputs": "what a run writes besides its dataset",
    "observability": "watching a run",
}
EXAMPLES = (  # the end of `framesift run --help` and of docs/run.md (whose tests run them): (command, what it does)
    ("framesift run sample.mp4 --model yolov8n.onnx --al-config realistic --target people",
     "a recording, collected from with a bundled configuration into the folder people/"),
    ("framesift run rtsp://cam-1/stream --model yolov8n.onnx --al-config my.yaml --duration 3600 --target entrance",
     "a camera for an hour, with a configuration of your own"),
    ("framesift run 'recordings/**/*.mp4' --model stub --al-config random --seed 1 --summary summary.json",
     "an archive of recordings, sampled reproducibly before any model exists, its counters written at the end"),
    ("framesift run rtsp://cam-1/stream --model yolov8n.onnx --al-config realistic --redis redis://edge-redis:6379/0",
     "one box of a fleet: the budgets shared with the other boxes through Redis"),
    ("framesift run rtsp://cam-1/stream rtsp://cam-2/stream --source-name door --source-name yard --model "
     "yolov8n.onnx --metrics-port 9108",
     "two cameras by name, watched on the live page http://127.0.0.1:9108/live"),
)


option = functools.partial(declare, GROUPS)  # a field of `RunOptions`: `framesift.options.option`


@dataclass
class RunOptions:
    """Every option of `framesift run`; the defaults are the command line's, except `no_progress`: a library caller
    asks for the status line."""

    sources: list[str] = option("video file, folder or glob of recordings ('rec/**/*.mp4'), rtsp:// rtmp:// "
                                "http(s):// URL, or webcam (/dev/videoN or an index)", "sources", required=True,
                                metavar="SOURCE")
    model: str | None = option("PATH.onnx, a model id found in --models (<project>/<version>, yolov8n-640), 'demo' "
                               "(the bundled model), stub or stub:<task type>", "model", metavar="MODEL")
    workflow: str | None = option("a workflow definition (JSON or YAML): models, crops, filters and collector steps, "
                                  "instead of --model and --al-config", "model", metavar="FILE")
    param: list[str] = option("a workflow parameter, for every source or for one", "model", [],
                              metavar="[SOURCE:]NAME=VALUE")
    model_id: str | None = option("the id recorded with predictions (default: the model id, else the file's name)",
                                  "model", metavar="ID")
    classes: str | None = option("a file of class names, one per line (default: the model's metadata)", "model",
                                 metavar="FILE")
    models: str | None = option(MODELS_HELP, "model", metavar="DIR", workflow=True)
    al_config: str | None = option("the active-learning configuration: a JSON or YAML file, a bundled one by name "
                                   "(realistic; see framesift config example), or the store the fleet follows "
                                   "(redis://host:port/db, roboflow:<workspace>); followed live; none: no "
                                   "collection", "collection", metavar="CONFIG")
    target: str = option("dataset folder, roboflow:<dataset> or labelstudio:<project>; with a workflow: a folder of "
                         "datasets, roboflow: or labelstudio:", "targets", defaults.TARGET, metavar="TARGET",
                         workflow=True)
    api_key: str | None = option("the remote target's API key (default: ROBOFLOW_API_KEY or LABEL_STUDIO_API_KEY; for "
                                 "Roboflow the configuration's target_dataset_api_key wins)", "targets",
                                 metavar="KEY", workflow=True, secret=True)
    outbox: str = option("folder of remote targets' outboxes", "targets", defaults.OUTBOX, metavar="DIR",
                         workflow=True)
    outbox_max_bytes: int = option("refuse (and count) new datapoints past this many bytes pending", "targets",
                                   defaults.OUTBOX_MAX_BYTES, metavar="BYTES", positive=True, workflow=True)
    redis: str | None = option("redis://host:port/db to share budgets across processes and machines", "fleet",
                               metavar="URL", workflow=True)
    redis_fallback: str = option("while Redis is unreachable: collect nothing (pause) or use local budgets (memory)",
                                 "fleet", defaults.REDIS_FALLBACK, choices=("pause", "memory"), workflow=True)
    replay_lease: float = option("with --redis, boxes given the same archive share its recordings: seconds a box "
                                 "that stopped answering keeps one before another takes it over", "fleet",
                                 defaults.REPLAY_LEASE_S, metavar="S", positive=True)
    source_name: list[str] = option("name the sources in order (default: source0, source1, ...)", "sources", [],
                                    metavar="NAME")
    device: str = option("where models run: auto (TensorRT, else CUDA, else the CPU: the first that loads), cpu, "
                         "cuda, tensorrt, cuda:N or tensorrt:N (GPU N), or N alone (cuda:N)", "model",
                         defaults.DEVICE, metavar="DEVICE", workflow=True)
    confidence: float = option("the model's confidence threshold; --conf as in Ultralytics", "model",
                               defaults.CONFIDENCE, flags=("--conf",), metavar="C")
    iou: float = option("the model's IoU threshold for non-maximum suppression", "model", defaults.IOU,
                        metavar="IOU")
    max_fps: float | None = option("at most N frames per second from EACH source", "sources", metavar="N",
                                   positive=True)
    realtime: bool = option("pace files at their frame rate (they behave as live)", "sources", False)
    wall_clock: bool = option("files replayed fast keep the wall clock: budgets, batches and captured_at follow the "
                              "replay, not the recording's own time", "sources", False)
    start_time: str | None = option("when the recording began (2026-11-20T08:00:00Z), instead of its creation_time "
                                    "tag or its modification time less its duration", "sources", metavar="ISO")
    loop: bool = option("restart files at their end (on the wall clock)", "sources", False)
    decode_all: bool = option("decode every frame of a replayed file even when the sampling does not look at images "
                              "(by default only the GOPs of sampled frames are decoded)", "sources", False)
    skip_gops: bool = option("a live camera's GOPs that the model will take no frame of are decoded keyframe only "
                             "(opt-in: not yet shown to pay; see docs/stream.md)", "sources", False)
    keyframe_draws: bool = option("replaying with the stub model and random sampling: a GOP with a sampled frame "
                                  "gives its keyframe instead, decoded alone (pays on long GOPs; by default the "
                                  "frames drawn are collected)", "sources", False)
    max_frames: int | None = option("stop each source after N frames", "sources", metavar="N", positive=True)
    duration: float | None = option("stop after S seconds", "sources", metavar="S", positive=True)
    rtsp_transport: str = option("how RTSP streams are carried", "sources", defaults.RTSP_TRANSPORT,
                                 choices=("tcp", "udp"))
    seed: int | None = option("make every sampling draw reproducible", "collection", metavar="N", workflow=True)
    predictions: str | None = option("write one JSON line per inferred frame to this file", "outputs",
                                     metavar="FILE")
    save_video: str | None = option("write the annotated frames to this MP4 file", "outputs", metavar="FILE")
    summary: str | None = option("write the counters as JSON to this file at exit", "outputs", metavar="FILE")
    drain_timeout: float = option("seconds to write queued datapoints at the end", "collection",
                                  defaults.DRAIN_TIMEOUT_S, metavar="S")
    metrics_port: int | None = option("serve Prometheus metrics (/metrics) and the live page (/live) on this port",
                                      "observability", metavar="PORT")
    metrics_host: str = option("address for --metrics-port", "observability", defaults.LISTEN_HOST,
                               metavar="HOST")
    no_progress: bool = option("no progress bar or status line", "observability", True, command_line=False)
    status_interval: float = option("seconds between status lines when stderr is not a terminal", "observability",
                                    defaults.STATUS_INTERVAL_S, metavar="S", positive=True)
    config_cache: str | None = option("where the last configuration known from a store is kept, to start without it "
                                      "(default: ~/.cache/framesift/configs)", "collection", metavar="DIR")
    config_refresh: float = option("seconds between reads of a store that announces no change (the Roboflow API)",
                                   "collection", defaults.CONFIG_REFRESH_S, metavar="S", positive=True,
                                   workflow=True)

    def __post_init__(self) -> None:
        """Refuse in one sentence (exit code 2) an option no run can mean, before anything is opened."""
        from framesift.models.session import parse_device  # here: the command line's parser stays light

        refuse_invalid(self)
        if not self.drain_timeout >= 0:
            raise InputError(f"--drain-timeout must be 0 or more, not {self.drain_timeout}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise InputError(f"--metrics-port must be a port number from 0 (any free port) to 65535, "
                             f"not {self.metrics_port}")
        parse_device(self.device)
        if self.source_name and len(self.source_name) != len(self.sources):
            raise InputError(f"{len(self.source_name)} --source-name given for {len(self.sources)} sources")
        for url in (self.redis, self.al_config):
            if url is not None:
                check_redis_url(url, LimitStoreError)

    def for_workflow(self) -> dict[str, Any]:
        """The keywords `build_workflow` takes from a run's options (those declared `workflow=True`)."""
        return for_workflow(self)

    def source_names(self) -> list[str]:
        """The sources' names: `source_name`, else source0, source1, ..."""
        return self.source_name or [f"source{i}" for i in range(len(self.sources))]


OPTIONS = declared(RunOptions)  # in declaration order
RUN = Command("run", ABOUT, GROUPS, RunOptions, EXAMPLES)
