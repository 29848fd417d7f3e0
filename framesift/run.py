"""`framesift run` as a Python API: wire sources, model, collector, sinks and metrics from one set of options.

Example:
    >>> summary = run(RunOptions(sources=["clip.mp4"], model="stub", al_config="configs/stub_bootstrap.yaml"))
    ... # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framesift.stream.pipeline import Pipeline
from framesift.stream.sources import SourceOptions, SourceSpec

log = logging.getLogger(__name__)

COLLECTOR_TOTALS = ("datapoints_sampled", "datapoints_registered", "datapoints_dropped",
                    "datapoints_rejected_by_limits", "datapoints_rejected_by_batch_cap",
                    "datapoints_rejected_store_unavailable", "datapoints_failed")


@dataclass
class RunOptions:
    """Every option of `framesift run`; the defaults are the CLI's."""

    sources: list[str]
    model: str
    model_id: str | None = None
    classes: str | None = None
    al_config: str | None = None
    target: str = "framesift-data"
    api_key: str | None = field(default=None, repr=False)
    outbox: str = "framesift-outbox"
    outbox_max_bytes: int = 1 << 30
    redis: str | None = None
    redis_fallback: str = "pause"
    source_name: list[str] = field(default_factory=list)
    device: str = "auto"
    confidence: float = 0.25
    iou: float = 0.45
    max_fps: float | None = None
    realtime: bool = False
    loop: bool = False
    max_frames: int | None = None
    duration: float | None = None
    rtsp_transport: str = "tcp"
    seed: int | None = None
    predictions: str | None = None
    save_video: str | None = None
    summary: str | None = None
    drain_timeout: float = 10.0
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    no_progress: bool = True


def build_pipeline(options: RunOptions) -> Pipeline:
    """Validate the configuration first (before any frame is read), then load the model and open the target."""
    from framesift.collectors import Collector, load_config, open_limiter, open_target
    from framesift.collectors.targets import Labels
    from framesift.models import load_model
    from framesift.stream.sinks import AnnotatedVideo, BackgroundSink, PredictionsFile

    config = load_config(options.al_config) if options.al_config else None
    model = load_model(options.model, device=options.device, confidence=options.confidence, iou=options.iou,
                       classes=options.classes, model_id=options.model_id)
    collector = None
    if config is not None:
        api_key = options.api_key
        if config.target_dataset_api_key and options.target.startswith("roboflow:"):  # a Roboflow key
            api_key = config.target_dataset_api_key.get_secret_value()
        target = open_target(options.target, api_key=api_key, outbox=options.outbox,
                             outbox_max_bytes=options.outbox_max_bytes, labels=Labels.of(model))
        collector = Collector(config, target, open_limiter(options.redis, options.redis_fallback), seed=options.seed)
    names = options.source_name or [f"source{i}" for i in range(len(options.sources))]
    sinks = []
    if options.predictions:
        sinks.append(BackgroundSink(PredictionsFile(options.predictions)))
    if options.save_video:
        sinks.append(BackgroundSink(AnnotatedVideo(options.save_video, several_sources=len(names) > 1)))
    source_options = SourceOptions(realtime=options.realtime, loop=options.loop, max_fps=options.max_fps,
                                   max_frames=options.max_frames, rtsp_transport=options.rtsp_transport)
    return Pipeline([SourceSpec(url, name) for url, name in zip(options.sources, names, strict=True)], model,
                    collector, options=source_options, sinks=sinks, duration=options.duration)


def run(options: RunOptions) -> dict[str, Any]:
    """Run until the sources end, `duration` passes or a signal arrives; returns (and writes) the summary.

    The first SIGINT/SIGTERM stops in order (queued datapoints get `drain_timeout` seconds); a second exits at once.
    """
    pipeline = build_pipeline(options)
    server = None
    if options.metrics_port is not None:
        from framesift.stream.exposition import serve_prometheus

        server = serve_prometheus(pipeline.snapshot, options.metrics_port, options.metrics_host)
    restore = _stop_on_signals(pipeline)
    progress = None
    try:
        pipeline.start()
        if not options.no_progress:
            from framesift.stream.progress import Progress

            live = pipeline.live
            progress = Progress(pipeline, None if live else _total_frames(pipeline.specs, options), live)
            progress.start()
        while not pipeline.join(0.2):
            pass
    finally:
        if progress is not None:
            progress.stop()
        pipeline.close(options.drain_timeout)
        restore()
        if server is not None:
            server.shutdown()
    summary = summarize(pipeline.snapshot())
    if options.summary:
        Path(options.summary).write_text(json.dumps(summary, indent=2))
    return summary


def summarize(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The `--summary` JSON: stream totals, collector totals, registered counts per strategy, per-source detail."""
    collector = snapshot.get("collector") or {}
    summary = {k: snapshot[k] for k in ("frames_decoded", "frames_inferred", "frames_dropped", "frames_skipped",
                                         "decode_errors", "corrupt_frames", "reconnects", "errors", "elapsed_s")}
    summary.update({k: collector.get(k, 0) for k in COLLECTOR_TOTALS})
    summary["datapoints_dropped_by_reason"] = collector.get("dropped_by_reason", {})
    summary["last_failure"] = collector.get("last_failure")
    summary["strategies"] = {name: c["registered"] for name, c in collector.get("strategies", {}).items()}
    summary["strategies_sampled"] = {name: c["sampled"] for name, c in collector.get("strategies", {}).items()}
    if "target" in collector:
        summary["target"] = collector["target"]  # a remote target's outbox: pending, delivered, retried, dead
    summary["sinks"] = snapshot["sinks"]
    summary["sources"] = snapshot["sources"]
    return summary


def _stop_on_signals(pipeline: Pipeline):
    """Install SIGINT/SIGTERM handlers (main thread only); returns a function that restores the old ones."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    received = []

    def handle(signum: int, _frame: Any) -> None:
        if received:
            os._exit(130)  # a second signal: at once
        received.append(signum)
        log.warning("%s received: stopping (a second signal exits at once)", signal.Signals(signum).name)
        pipeline.stop()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(sig, old) for sig, old in previous.items()]


def _total_frames(specs: list[SourceSpec], options: RunOptions) -> int | None:
    """The frames the files will yield, when their containers say (for the progress bar)."""
    import av

    if options.loop:
        return None
    total = 0
    for spec in specs:
        with av.open(spec.url) as container:
            frames = container.streams.video[0].frames
        if not frames:
            return None
        total += min(frames, options.max_frames or frames)
    return total
