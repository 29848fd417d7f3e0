"""Micro-benchmarks of the sampler's decisions: one `submit`, one memory-limiter and one Redis-limiter decision;
and what a workflow adds per frame on the inference thread (the same model and collector called directly, against
the one-model workflow that `--model` runs, and a two-stage workflow of stub models); the near-duplicate gate,
the uncertainty strategy's candidates, the `new_objects` strategy's tracker, and the batch of a model's fixed-size
run on a GPU.

Run: `python benchmarks/micro.py` (starts its own redis-server on 127.0.0.1). Prints a Markdown section.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framesift.configs import path as config_path  # noqa: E402

from framesift.collectors import (  # noqa: E402
    Collector,
    LocalDataset,
    MemoryLimiter,
    RedisLimiter,
    load_config,
    parse_config,
)
from framesift.collectors.budgets.limits import BatchCap, Candidate  # noqa: E402
from framesift.predictions import DetectionPrediction  # noqa: E402
from tests.servers import RedisServer, free_port  # noqa: E402


def per_call_us(fn, calls: int, repeats: int = 5) -> tuple[float, float, float]:
    """Median, min and max over `repeats` of the mean µs per call."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples), min(samples), max(samples)


def prediction(n: int) -> DetectionPrediction:
    rng = np.random.default_rng(0)
    return DetectionPrediction.from_lists(
        "object-detection", "bench/1", (1920, 1080), xyxy=rng.uniform(0, 1000, (n, 4)),
        confidence=rng.uniform(0, 1, n), class_name=[("person", "car", "bike")[i % 3] for i in range(n)])


def main() -> str:
    rows = []
    frame = np.zeros((1080, 1920, 3), np.uint8)
    with tempfile.TemporaryDirectory() as work:
        config = load_config(config_path("realistic.yaml"))
        for n in (0, 10, 100):
            # a 1-item queue: almost every matching datapoint is dropped at once, which is the cost we want
            collector = Collector(config, LocalDataset(Path(work) / f"ds{n}"), max_queue_items=1, seed=0)
            p = prediction(n)
            rows.append((f"`submit` (realistic config, {n} detections)",
                         per_call_us(lambda c=collector, p=p: c.submit(frame, p), 20_000), "0"))
            collector.close(timeout=1)

        candidates = [Candidate("random_sample", ((60, 10**9), (86400, 10**9))), Candidate("uncertain", ((60, 10**9),))]
        memory = MemoryLimiter()
        rows.append(("memory limiter decision (2 strategies, 3 limits)",
                     per_call_us(lambda: memory.decide("ds", candidates, BatchCap("b", 10**9)), 20_000), "0"))

        server = RedisServer(free_port(), Path(work))
        server.start()
        try:
            import redis

            limiter = RedisLimiter(server.url)
            limiter.decide("ds", candidates, BatchCap("b", 10**9))
            probe = redis.Redis.from_url(server.url)
            probe.config_resetstat()
            timing = per_call_us(lambda: limiter.decide("ds", candidates, BatchCap("b", 10**9)), 2_000)
            sent = probe.info("commandstats")["cmdstat_evalsha"]["calls"]
            rows.append(("Redis limiter decision (2 strategies, 3 limits, loopback)", timing,
                         f"{sent / (5 * 2_000):.2f}"))
        finally:
            server.stop()

    lines = ["## Micro: sampler decisions", "",
             "| operation | µs per call, median (min–max of 5) | round trips |", "|---|---|---|"]
    for name, (median, low, high), trips in rows:
        lines.append(f"| {name} | {median:.1f} ({low:.1f}–{high:.1f}) | {trips} |")
    return "\n".join(lines) + "\n\n" + workflow_section() + "\n" + near_duplicate_section() + "\n" + \
        candidates_section() + "\n" + tracker_section() + "\n" + fixed_batch_section()


def workflow_section() -> str:
    """µs per 1080p frame on the inference thread: model and collector called directly, then through workflows."""
    import av

    from framesift.frames import Frame, SourceSpec
    from framesift.models import load_model
    from framesift.workflows import Workflow, parse_workflow

    image = av.VideoFrame.from_ndarray(np.zeros((1080, 1920, 3), np.uint8), format="bgr24")
    frame = Frame("cam", 0, datetime.now(timezone.utc), 0.0, None, image)
    sources = {"cam": SourceSpec("rtsp://cam", "cam")}
    never = {"enabled": True, "persist_predictions": True,  # every strategy evaluated, none matches
             "sampling_strategies": [{"name": "r", "type": "random", "traffic_percentage": 0.0},
                                     {"name": "d", "type": "detections_number_based", "probability": 0.0}],
             "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}
    rows = []
    with tempfile.TemporaryDirectory() as work:
        model = load_model("stub")
        direct = Collector(parse_config(never), LocalDataset(Path(work) / "direct"))
        rows.append(("model and collector called directly", per_call_us(lambda: [
            direct.submit(frame, p, source="rtsp://cam", frame_id=0, captured_at=frame.captured_at)
            for p in model.infer([None])], 20_000)))
        single = Workflow.single(model, Collector(parse_config(never), LocalDataset(Path(work) / "single")))
        rows.append(("the one-model workflow (`--model`, `--al-config`)",
                     per_call_us(lambda: single.run([frame], sources), 20_000)))
        two = parse_workflow({"version": "1.0", "inputs": [{"type": "InferenceImage", "name": "image"}], "steps": [
            {"type": "ObjectDetectionModel", "name": "det", "image": "$inputs.image", "model_id": "stub"},
            {"type": "Crop", "name": "crop", "image": "$inputs.image", "predictions": "$steps.det.predictions"},
            {"type": "ClassificationModel", "name": "cls", "image": "$steps.crop.crops", "model_id": "c/0"},
            {"type": "ActiveLearningDataCollector", "name": "frames", "image": "$inputs.image",
             "predictions": "$steps.det.predictions", "target_dataset": "f", "active_learning_configuration": never},
            {"type": "ActiveLearningDataCollector", "name": "crops", "image": "$steps.crop.crops",
             "predictions": "$steps.cls.top", "target_dataset": "c", "active_learning_configuration": never}],
            "outputs": []})
        stage = Workflow(two, {"det": model, "cls": load_model("stub:classification")},
                         {name: Collector(parse_config(never), LocalDataset(Path(work) / name))
                          for name in ("frames", "crops")})
        rows.append(("a two-stage workflow of stub models (detect, crop, classify, 2 collectors)",
                     per_call_us(lambda: stage.run([frame], sources), 20_000)))
        for closing in (direct, single, stage):
            closing.close()
    base = rows[0][1][0]
    lines = ["## Micro: what a workflow adds per frame (the inference thread, stub models, a 1080p frame)", "",
             "| run | µs per frame, median (min–max of 5) | added to calling them directly (µs) |", "|---|---|---|"]
    for name, (median, low, high) in rows:
        lines.append(f"| {name} | {median:.1f} ({low:.1f}–{high:.1f}) | {median - base:+.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main())


def near_duplicate_section() -> str:
    """µs for the near-duplicate gate's work on the collector's thread, per sampled 1080p frame."""
    import av

    from framesift.collectors.sampling.near_duplicates import RecentSignatures
    from framesift.collectors.sampling.signatures import signature
    from framesift.demo import demo_frame

    bgr = demo_frame(0, 1920, 1080)

    class Decoded:  # what the stream hands the collector: a frame with its decoded image
        image = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuv420p")

    decoded = Decoded()
    rows = [("signature of a decoded 1080p frame (its luma plane)", per_call_us(lambda: signature(decoded), 2_000)),
            ("signature of a 1080p BGR array (`Collector.submit` from Python)", per_call_us(lambda: signature(bgr),
                                                                                            2_000))]
    for kept in (32, 1000):
        recent = RecentSignatures()
        for i in range(kept):
            recent.remember("cam", i * 0x9E3779B97F4A7C15 % (1 << 64), 0.0, kept)
        rows.append((f"nearest of {kept} remembered signatures",
                     per_call_us(lambda r=recent: r.nearest("cam", 12345, 1.0, 600.0), 2_000)))
    lines = ["## Micro: the near-duplicate gate (on the collector's thread, per sampled frame)", "",
             "| operation | µs per call, median (min–max of 5) |", "|---|---|"]
    for name, (median, low, high) in rows:
        lines.append(f"| {name} | {median:.1f} ({low:.1f}–{high:.1f}) |")
    return "\n".join(lines) + "\n"


def candidates_section() -> str:
    """µs of `select_boxes` on a YOLOv8 output `[84, 8400]`, keeping the candidates for the uncertainty strategy
    (floor 0.01) or not (floor at the threshold: the work before they were kept)."""
    from framesift.models.postprocess import CANDIDATE_FLOOR, select_boxes

    rng = np.random.default_rng(2)
    boxes = np.vstack([rng.uniform(0, 640, (2, 8400)), rng.uniform(8, 120, (2, 8400))]).astype(np.float32)
    quiet = np.vstack([boxes, np.full((80, 8400), 0.001, np.float32)])  # a trained model's mostly empty frame
    quiet[4:84, :20] = rng.random((80, 20)).astype(np.float32)
    busy = np.vstack([boxes, (rng.random((80, 8400)) * 0.02).astype(np.float32)])  # every anchor a faint candidate
    busy[4:84, :300] = rng.random((80, 300)).astype(np.float32)
    lines = ["## Micro: keeping the candidates for the uncertainty strategy (`select_boxes`, YOLOv8 `[84, 8400]`)",
             "", "| output | without, µs | with, µs | added, µs |", "|---|---|---|---|"]
    for name, raw in (("20 anchors scored, the rest near zero", quiet), ("every anchor a faint candidate", busy)):
        without = per_call_us(lambda r=raw: select_boxes(r, 80, 0.25, 0.45, floor=0.25), 300)[0]
        kept = per_call_us(lambda r=raw: select_boxes(r, 80, 0.25, 0.45, floor=CANDIDATE_FLOOR), 300)[0]
        lines.append(f"| {name} | {without:.0f} | {kept:.0f} | {kept - without:+.0f} |")
    return "\n".join(lines) + "\n"


def tracker_section() -> str:
    """µs per frame on the frame path for a `new_objects` strategy (its tracker sees every frame): N objects that
    move 4 px a frame across 480 px, then another enters where each started."""
    import random

    from framesift.collectors.sampling.strategies import matching_strategies
    from framesift.collectors.sampling.tracking import IouTracker

    strategy = parse_config({
        "enabled": True, "persist_predictions": True,
        "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"},
        "sampling_strategies": [{"name": "arrivals", "type": "new_objects", "probability": 1.0}],
    }).sampling_strategies
    lines = ["## Micro: the `new_objects` strategy on the frame path (its tracker, per frame)", "",
             "| objects in view | µs per frame, median (min–max of 5) |", "|---|---|"]
    for n in (0, 5, 20, 100):
        starts = np.random.default_rng(n).uniform(0, 1200, (n, 2))
        phases = np.arange(n) * 120 // max(n, 1)
        frames = []
        for f in range(120):  # a cycle, precomputed, so the tracker's work alone is timed
            corner = starts + 4 * ((f + phases) % 120)[:, None]  # each crosses in 120 frames; another enters
            frames.append(DetectionPrediction.from_lists(
                "object-detection", "bench/1", (1920, 1080), xyxy=np.hstack([corner, corner + 80]),
                confidence=np.full(n, 0.9), class_name=["car"] * n))
        tracker, rng, at = IouTracker(), random.Random(0), [0]

        def one_frame(frames=frames, tracker=tracker, rng=rng, at=at) -> None:
            at[0] = (at[0] + 1) % len(frames)
            matching_strategies(strategy, frames[at[0]], rng, lambda _: tracker)

        median, low, high = per_call_us(one_frame, 3_000)
        lines.append(f"| {n} | {median:.1f} ({low:.1f}–{high:.1f}) |")
    return "\n".join(lines) + "\n"


def fixed_batch_section() -> str:
    """µs to make the batch of one fixed-size run (what the inference thread does besides ONNX Runtime's run, on a
    GPU, issue 21) for a 640×640 model: a new array each run, filled with blank images (`np.stack`, as before),
    against the array the model keeps from run to run (`OnnxModel._filled`)."""
    from framesift.models import load_model
    from tests.model_builders import build_model

    with tempfile.TemporaryDirectory() as work:
        model = load_model(str(build_model(Path(work) / "m.onnx", "detect", size=640, dynamic_batch=True)))
    tensor = model.prepare(np.zeros((720, 1280, 3), np.uint8)).tensor
    lines = ["## Micro: the batch of a fixed-size run (a 640×640 model, float32)", "",
             "| batch: frames of | a new array each run, µs | the kept array, µs |", "|---|---|---|"]
    for size, frames in ((16, 1), (16, 8), (16, 16), (4, 1)):
        tensors = [tensor.copy() for _ in range(frames)]
        model.call_batch = size
        fresh = per_call_us(lambda t=tensors, n=size: np.stack(t + [np.zeros_like(t[0])] * (n - len(t))), 50)
        kept = per_call_us(lambda t=tensors: model._filled(t), 50)
        lines.append(f"| {size}: {frames} | {fresh[0]:.0f} ({fresh[1]:.0f}–{fresh[2]:.0f}) | "
                     f"{kept[0]:.0f} ({kept[1]:.0f}–{kept[2]:.0f}) |")
    return "\n".join(lines) + "\n"
