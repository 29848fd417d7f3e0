"""`framesift run` as a Python API: wire sources, model, collector, sinks and metrics from one set of options.

Example:
    >>> summary = run(RunOptions(sources=["clip.mp4"], model="stub", al_config="configs/stub_bootstrap.yaml"))
    ... # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import threading
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framesift.collectors.config.follower import DEFAULT_CACHE, ConfigCache
from framesift.collectors.config.store import ConfigStore, FileStore, open_store
from framesift.durable import exclusive_lock
from framesift.errors import InputError, WorkerFailed
from framesift.frames import SourceSpec
from framesift.pipeline.pipeline import Pipeline
from framesift.run_options import RunOptions
from framesift.signals import StopSignals
from framesift.stats import CollectorStats, StreamStats
from framesift.stream.sources import SourceOptions
from framesift.workflows.engine import Workflow

if TYPE_CHECKING:
    from framesift.observe.exposition import MetricsServer
    from framesift.stream.fleet import FleetLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    """What a run did, typed: the statistics of its stream (`stats`, the collectors' added up in `collected`), why a
    thread of it died (`failure`), and why its `--summary` file could not be written (`unwritten`). `as_dict()` is
    the `--summary` file's JSON (with `unwritten` when it could not be written)."""

    stats: StreamStats
    failure: str | None = None
    unwritten: str | None = None

    @functools.cached_property
    def collected(self) -> CollectorStats:
        return self.stats.collected()

    def as_dict(self) -> dict[str, Any]:
        out = self.stats.summary()
        for name, text in (("failure", self.failure), ("unwritten", self.unwritten)):
            if text is not None:
                out[name] = text
        return out


def build_pipeline(options: RunOptions, before_targets: Callable[[], None] = lambda: None,
                   fleet: FleetLog | None = None) -> Pipeline:
    """Validate the configuration or workflow first (before any frame is read), then load the models and open the
    targets (`before_targets` is called just before: `run` takes the replay lock there, once the input is known to
    be valid and before anything is written); `fleet`, the replay log of a fleet in Redis, replaces the file's.
    When a step fails, what the earlier ones opened (a remote target's
    sender and outbox lock, a limiter's connection, sink files) is closed before the error is raised."""
    from framesift.pipeline.sinks import AnnotatedVideo, PredictionsFile, Sink

    if (options.model is None) == (options.workflow is None):
        raise InputError("give a model (--model) or a workflow (--workflow), one of them")
    for option, path in (("--predictions", options.predictions), ("--save-video", options.save_video),
                         ("--summary", options.summary)):
        if path:
            _check_writable(option, Path(path))
    names = options.source_names()
    with ExitStack() as opened:
        if options.workflow is not None:
            runs, per_source = _workflow(options, names, opened, before_targets)
        else:
            runs, per_source = _model_and_collector(options, opened, before_targets), {}
        sinks: list[Sink] = []
        if options.predictions:
            sinks.append(opened.enter_context(PredictionsFile(options.predictions)))
        if options.save_video:
            sinks.append(opened.enter_context(AnnotatedVideo(options.save_video, several_sources=len(names) > 1)))
        source_options = SourceOptions(realtime=options.realtime, loop=options.loop, max_fps=options.max_fps,
                                       max_frames=options.max_frames, rtsp_transport=options.rtsp_transport,
                                       video_time=not options.wall_clock, start_time=_start_time(options),
                                       replay_log=_replay_log(options), decode_all=options.decode_all,
                                       keyframe_draws=options.keyframe_draws, skip_gops=options.skip_gops,
                                       fleet=fleet)
        specs = [SourceSpec(url, name, parameters=per_source.get(name, {}))
                 for url, name in zip(options.sources, names, strict=True)]
        pipeline = Pipeline(specs, runs, options=source_options, sinks=sinks, duration=options.duration)
        opened.pop_all()  # the pipeline owns them all now
    return pipeline


def _replay_log(options: RunOptions) -> str | None:
    """Where a run collecting from files or archives of recordings writes what it replayed: in the target (a local
    folder), else beside the remote target's outbox. None when it collects nothing (`--al-config`, `--workflow`)
    or replays no file (a looped one is never done)."""
    from framesift.collectors.targets import TargetSpec
    from framesift.frames import is_archive

    if options.al_config is None and options.workflow is None:
        return None
    if not any(is_archive(source) or (not options.loop and Path(source).is_file()) for source in options.sources):
        return None
    target = TargetSpec.parse(options.target)
    if target.remote:  # roboflow:<dataset>, labelstudio:<project>
        name = "".join(c if c.isalnum() or c in "-_." else "-" for c in options.target)
        return str(Path(options.outbox) / f"replayed-{name}.jsonl")
    return str(Path(target.name) / "replayed.jsonl")


def _start_time(options: RunOptions) -> datetime | None:
    """`--start-time`, checked: a date and time, for one recording."""
    from framesift.frames import is_archive
    from framesift.stream.recordings import parse_start_time

    if options.start_time is None:
        return None
    if len(options.sources) != 1 or is_archive(options.sources[0]):
        raise InputError("--start-time gives the start of one recording; with several, each file's own is used")
    try:
        return parse_start_time(options.start_time)
    except ValueError:
        raise InputError(f"--start-time {options.start_time!r} is not an ISO 8601 date and time "
                         "(for example 2026-11-20T08:00:00Z)") from None


def _model_and_collector(options: RunOptions, opened: ExitStack, before_targets: Callable[[], None]) -> Workflow:
    """`--model` (and `--al-config`): the one-model, one-collector workflow."""
    from framesift.collectors import Collector, open_limiter
    from framesift.collectors.config.follower import first_configuration, poll_interval
    from framesift.collectors.targets import Labels, TargetSpec
    from framesift.models import load_model

    if options.param:
        raise InputError("--param sets a workflow's parameters; this run has no --workflow")
    first = store = cache = None
    target = TargetSpec.parse(options.target)
    if options.al_config:
        store, cache = _store(options, opened)
        first = first_configuration(store, target.dataset, cache)
    assert options.model is not None
    model = load_model(options.model, device=options.device, confidence=options.confidence, iou=options.iou,
                       classes=options.classes, model_id=options.model_id, models=options.models)
    collector = None
    before_targets()
    if first is not None and store is not None:
        key = target.configured_key(first.config.target_dataset_api_key)  # a Roboflow key
        opened_target = target.open(api_key=key.get_secret_value() if key else options.api_key,
                                    outbox=options.outbox, outbox_max_bytes=options.outbox_max_bytes,
                                    labels=Labels.of(model), exclusive=options.redis is None,
                                    shared=options.redis is not None)
        opened.callback(opened_target.close)
        limiter = open_limiter(options.redis, options.redis_fallback)
        opened.callback(limiter.close)
        collector = Collector(first.config, opened_target, limiter, seed=options.seed)
        opened.callback(collector.close)  # it closes the target and the limiter (again: idempotent)
        collector.start()  # a remote target delivers what its outbox holds from now on
        collector.follow(store, first, poll=poll_interval(store, options.config_refresh), cache=cache)
    return opened.enter_context(Workflow.single(model, collector, owned=[store] if store is not None else []))


def _store(options: RunOptions, opened: ExitStack) -> tuple[ConfigStore, ConfigCache | None]:
    """`--al-config`'s store (a file, `redis://...`, `roboflow:<workspace>`) and, for a shared one, the cache of
    the last configuration known."""
    assert options.al_config is not None
    store = open_store(options.al_config, api_key=options.api_key)
    opened.callback(store.close)
    if isinstance(store, FileStore):
        return store, None  # a file is here: nothing to cache
    return store, ConfigCache(options.config_cache or DEFAULT_CACHE)


def _workflow(options: RunOptions, names: list[str], opened: ExitStack,
              before_targets: Callable[[], None]) -> tuple[Workflow, dict[str, dict[str, Any]]]:
    """`--workflow FILE` with its `--param`s: the workflow, and each source's own parameters."""
    from framesift.workflows.build import build_workflow, parse_parameters
    from framesift.workflows.definition import load_workflow_definition

    assert options.workflow is not None
    definition = load_workflow_definition(options.workflow)
    parameters, per_source = parse_parameters(options.param, definition, names)
    store, cache = _store(options, opened) if options.al_config else (None, None)
    workflow = build_workflow(definition, parameters=parameters, source_parameters=per_source, store=store,
                              cache=cache, before_targets=before_targets, **options.for_workflow())
    return opened.enter_context(workflow), per_source


def run(options: RunOptions, stop: threading.Event | None = None) -> RunSummary:
    """Run until the sources end, `duration` passes, `stop` is set or a signal arrives; returns (and writes) the
    summary. When its file cannot be written (a full disk), the summary says why in `unwritten`.

    Without `stop`, SIGINT, SIGTERM and SIGHUP stop the run in order (when called on the main thread); a second
    signal exits at once. Queued datapoints get `drain_timeout` seconds. A thread of the pipeline that died raises
    `WorkerFailed` — after everything was closed and the summary (with its `failure`) written.
    """
    with ExitStack() as scope:
        if stop is None:
            stop = scope.enter_context(StopSignals()).event
        fleet = _fleet(options, scope)
        pipeline = build_pipeline(options, functools.partial(_hold_replay_lock, options, scope), fleet)
        failure: WorkerFailed | None = None
        try:
            with ExitStack() as running:
                running.callback(pipeline.close, options.drain_timeout)
                served = None
                if options.metrics_port is not None:
                    from framesift.observe.exposition import MetricsServer
                    from framesift.observe.live import LivePage

                    served = running.enter_context(MetricsServer(pipeline.snapshot, options.metrics_port,
                                                                 options.metrics_host, page=LivePage(pipeline),
                                                                 device=pipeline.workflow.device))
                    log.info("the live page: %s/live (Prometheus: %s/metrics)", served.url, served.url)
                if not stop.is_set():  # a signal during start-up: nothing to start
                    pipeline.start()
                _watch(pipeline, options, stop, running, served)
        except WorkerFailed as error:
            failure = error
        summary = RunSummary(pipeline.snapshot(), failure=None if failure is None else str(failure))
        if options.summary:
            summary = _write_summary(Path(options.summary), summary)
        if failure is not None:
            raise failure
        return summary


def _check_writable(option: str, path: Path) -> None:
    """Refuse an output file that cannot be written before the run starts, not when it ends; its folder is made
    (as `--target`'s is)."""
    def refused(reason: str) -> InputError:
        return InputError(f"cannot write {option} {path}: {reason}")

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise refused("a part of its path is a file") from None
    except OSError as error:
        raise refused(error.strerror or str(error)) from None
    if path.is_dir():
        raise refused("it is a folder")
    if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise refused("permission denied")


def _fleet(options: RunOptions, scope: ExitStack) -> FleetLog | None:
    """With `--redis`, the replay log of recordings is the fleet's, in Redis: its boxes share the recordings (for
    as long as `scope`; nothing is written before a recording is claimed)."""
    if options.redis is None or _replay_log(options) is None:
        return None
    from framesift.collectors.targets import TargetSpec
    from framesift.stream.fleet import FleetLog

    target = TargetSpec.parse(options.target)
    return scope.enter_context(FleetLog(options.redis, target.dataset, records=None if target.remote else target.name,
                                        lease_s=options.replay_lease))


def _hold_replay_lock(options: RunOptions, scope: ExitStack) -> None:
    """One replay of recordings per target at a time (for as long as `scope`): two would sample them twice. With
    `--redis` the fleet's leases share the recordings instead (`framesift.stream.fleet`)."""
    replay_log = _replay_log(options)
    if replay_log is None or options.redis is not None:
        return
    lock = exclusive_lock(Path(replay_log).with_suffix(".lock"), lambda holder: InputError(
        f"another framesift process (pid {holder}) replays recordings into {options.target}: both would sample "
        "them; let it finish, or give this run its own --target"))
    scope.enter_context(closing(lock))


def _write_summary(path: Path, summary: RunSummary) -> RunSummary:
    """Write the summary; when that fails (a full disk), the sentence saying why goes into it as `unwritten`."""
    try:
        path.write_text(json.dumps(summary.as_dict(), indent=2))
    except OSError as error:
        return dataclasses.replace(summary, unwritten=f"cannot write the summary {path}: {error.strerror or error}")
    return summary


def _watch(pipeline: Pipeline, options: RunOptions, stop: threading.Event, running: ExitStack,
           served: MetricsServer | None) -> None:
    """Wait for the pipeline's end, stopping it when `stop` is set, with the status line meanwhile; a dead thread
    of the status line or the metrics server ends the run (`WorkerFailed`)."""
    status = None
    if not options.no_progress:
        from framesift.observe.progress import Progress

        live = pipeline.live
        status = running.enter_context(Progress(pipeline.snapshot, None if live else _total_frames(pipeline,
                                                options), live, report_every=options.status_interval))
    while not pipeline.join(0.2):
        if stop.is_set():
            pipeline.stop()
        if status is not None:
            status.worker.check()
        if served is not None:
            served.worker.check()


def _total_frames(pipeline: Pipeline, options: RunOptions) -> int | None:
    """The frames the files (and archives) will yield, when their containers say (for the progress bar)."""
    import av

    if options.loop:
        return None
    total = 0
    for path, done in pipeline.frames_left():
        with av.open(path) as container:
            frames = container.streams.video[0].frames
        if not frames:
            return None
        total += frames - done
    return min(total, options.max_frames * len(pipeline.specs)) if options.max_frames else total
