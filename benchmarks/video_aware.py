"""Sampling that understands video, against random sampling (the anchor's default), at the same budget.

The clips are the rendered street of `benchmarks/scene.py` (ten minutes: objects passing or stopping, a lighting
change, a camera bump; its events written beside it in `benchmarks/.work/scene-*/events.json`), twice: busy (an
object arrives every 7 s in the busy stretches, so most frames show several) and quiet (one every 45 s, so most
frames show nothing). At each budget B (datapoints over the clip, enforced exactly by the batch cap), two
configurations see the same decoded frames and the same detections through `Collector.submit`, as the pipeline
calls it, with time going by the video's clock:

- random: `random` with `traffic_percentage` B / frames — the anchor's strategy, spread evenly over the clip;
- framesift, two ways: `near_duplicates: {}`, `new_objects` and `random` (0.5·B / frames: what the new objects
  leave), with the arrivals either spread (at most B/10 a minute, rounded up: the budget spread over the ten
  minutes) or first come, first kept (no limit but the batch cap: nothing is kept for later).

Reported, median (min–max) over five seeds: the datapoints collected; the events covered (an object is covered
by a collected frame on which it is visible; a look of the whole view — daylight, dusk, the bumped camera — by any
frame of it); the near-duplicate pairs among the collected frames (two frames showing the same objects under the
same light and view); and the time `submit` takes per frame on the frame path. The frame path never reads the
frame's pixels (the near-duplicate signature is made on the collector's thread, only for sampled frames: its cost
at 1080p is in the micro section), so that time does not grow with the resolution.

Then, for the `new_objects` strategy alone, the arrivals per object with the simulated detector and with a
flickering one (it misses 30 % of each object's frames, in runs: its confidence hovers near its threshold): each
object should be new once, however often the detector misses it (`arrivals`; a few seconds, no decoding: the
strategy never reads the pixels).

Run: `python benchmarks/video_aware.py` (about four minutes; each clip is made once, in about one), or
`python benchmarks/video_aware.py arrivals` for the arrivals alone. Prints a Markdown section.
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.scene import FLICKER, FPS, FRAMES, HEIGHT, MISSED, WIDTH, Scene, state  # noqa: E402
from framesift import Collector, LocalDataset, parse_config, read_records  # noqa: E402
from framesift.collectors import MemoryLimiter  # noqa: E402
from framesift.frames import Frame  # noqa: E402

WORK = Path(__file__).resolve().parent / ".work"
SCENES = {"busy": 7.0, "quiet": 45.0}  # an arrival every so many seconds in the busy stretches
BUDGETS = (10, 30, 100)
SEEDS = (1, 2, 3, 4, 5)
EPOCH = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc).timestamp()


SAMPLINGS = {"random": "random (the anchor's)", "spread": "framesift, arrivals spread",
             "first": "framesift, arrivals first"}


def configuration(name: str, budget: int) -> dict[str, Any]:
    batching = {"batches_name_prefix": name, "recreation_interval": "never", "max_batch_images": budget}
    if name == "random":
        strategies: list[dict[str, Any]] = [
            {"name": "random", "type": "random", "traffic_percentage": budget / FRAMES}]
        return {"enabled": True, "persist_predictions": True, "sampling_strategies": strategies,
                "batching_strategy": batching}
    spread = [{"type": "minutely", "value": math.ceil(budget / 10)}] if name == "spread" else []
    strategies = [
        {"name": "arrivals", "type": "new_objects", "probability": 1.0, "limits": spread},
        {"name": "background", "type": "random", "traffic_percentage": 0.5 * budget / FRAMES}]
    return {"enabled": True, "persist_predictions": True, "near_duplicates": {}, "sampling_strategies": strategies,
            "batching_strategy": batching}


def collect(clip: Path, detections: list, config: dict[str, Any], seed: int, work: Path) -> tuple[list[int], float]:
    """The frame ids collected, and the mean µs of `submit` per frame."""
    import av

    now = [EPOCH]
    collector = Collector(parse_config(config), LocalDataset(work), MemoryLimiter(clock=lambda: now[0]), seed=seed,
                          clock=lambda: datetime.fromtimestamp(now[0], timezone.utc))
    spent = 0.0
    with collector, av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame_id, image in enumerate(container.decode(stream)):
            now[0] = EPOCH + frame_id / FPS
            frame = Frame("street", frame_id, datetime.fromtimestamp(now[0], timezone.utc), time.monotonic(),
                          frame_id / FPS, image)
            started = time.perf_counter()
            sampled = collector.submit(frame, detections[frame_id], source="street", frame_id=frame_id,
                                       captured_at=frame.captured_at)
            spent += time.perf_counter() - started
            if sampled:
                settle(collector)  # decided at this frame's time on the video's clock, as it would be live
    return [record["frame_id"] for record in read_records(work)], spent / FRAMES * 1e6


def settle(collector: Collector) -> None:
    """Wait until the collector has decided every datapoint it sampled."""
    while True:
        s = collector.snapshot()
        decided = (s.datapoints_registered + s.datapoints_rejected_by_limits + s.datapoints_rejected_by_batch_cap
                   + s.datapoints_rejected_store_unavailable + s.datapoints_rejected_near_duplicate
                   + s.datapoints_dropped + s.datapoints_failed)
        if decided >= s.datapoints_sampled:
            return
        time.sleep(0.0002)


def covered(scene: Scene, events: list[dict], collected: list[int]) -> int:
    seen_visits = {visit for f in collected for visit in scene.visible[f]}
    looks = {state(f) for f in collected}
    return sum(1 for event in events if event.get("visit") in seen_visits or event.get("state") in looks)


def near_duplicate_pairs(scene: Scene, collected: list[int]) -> int:
    situations = Counter((state(f), frozenset(scene.visible[f])) for f in collected)
    return sum(n * (n - 1) // 2 for n in situations.values())


def arrivals() -> str:
    """The arrivals per object of a `new_objects` strategy over each scene, as detected and flickering."""
    config = parse_config({"enabled": True, "persist_predictions": False, "sampling_strategies": [
        {"name": "arrivals", "type": "new_objects", "probability": 1.0}],
        "batching_strategy": {"batches_name_prefix": "arrivals", "recreation_interval": "never"}})
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)  # the strategy decides from the detections alone
    lines = ["## `new_objects`: arrivals per object, as detected and with a flickering detector", "",
             "| scene | detector | objects | arrivals | arrivals per object | objects seen arriving |",
             "|---|---|---|---|---|---|"]
    detectors = {f"misses {MISSED:.0%} of frames, each on its own": (MISSED, None),
                 f"flickering: misses {FLICKER[0]:.0%}, in runs of {FLICKER[1]} frames": FLICKER}
    with tempfile.TemporaryDirectory() as work:
        for scene_name, every_s in SCENES.items():
            scene = Scene(every_s)
            objects = {visit for seen in scene.visible for visit in seen}
            for detector, (missed, run) in detectors.items():
                folder = Path(work) / f"{scene_name}-{missed}"
                with Collector(config, LocalDataset(folder), seed=1) as collector:
                    for frame_id, prediction in enumerate(scene.detections(missed, run)):
                        collector.submit(image, prediction, source="street", frame_id=frame_id)
                arrived = [record["frame_id"] for record in read_records(folder)]
                seen = {visit for f in arrived for visit in scene.visible[f]}
                lines.append(f"| {scene_name} | {detector} | {len(objects)} | {len(arrived)} | "
                             f"{len(arrived) / len(objects):.2f} | {len(seen & objects)} |")
    return "\n".join(lines) + "\n"


def summary(values: list[float], digits: int = 0) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main() -> str:
    lines = ["## Sampling that understands video: events covered at the same budget", "",
             f"A rendered street (`benchmarks/scene.py`, 640×360 at {FPS} fps, 10 min, {FRAMES} frames): objects "
             "that pass or stop a while, three looks of the whole view (daylight, dusk, the camera bumped); "
             "detections simulated with a detector's misses and false alarms. Median (min–max) over seeds "
             f"{', '.join(map(str, SEEDS))}; the ratio is of the medians of events covered.", "",
             "| scene | budget | sampling | collected | events covered | ratio | near-duplicate pairs | "
             "`submit`, µs per frame |", "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as work:
        for scene_name, every_s in SCENES.items():
            scene = Scene(every_s)
            clip = scene.write(WORK / f"scene-{scene_name}")
            events, detections = scene.events(), scene.detections()
            label = f"{scene_name}: {sum('visit' in event for event in events)} objects, {len(events)} events"
            for budget in BUDGETS:
                lines += compare(scene, clip, events, detections, budget, Path(work), label)
    return "\n".join(lines) + "\n\n" + arrivals()


def compare(scene: Scene, clip: Path, events: list[dict], detections: list, budget: int, work: Path,
            label: str) -> list[str]:
    """The two table rows of one scene and budget."""
    runs: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in SAMPLINGS}
    for seed in SEEDS:
        for name in runs:
            folder = work / f"{label[:5]}-{name}-{budget}-{seed}"
            collected, per_frame = collect(clip, detections, configuration(name, budget), seed, folder)
            runs[name].append((len(collected), covered(scene, events, collected),
                               near_duplicate_pairs(scene, collected), per_frame))
    baseline = statistics.median(c for _, c, _, _ in runs["random"])
    rows = []
    for name, sampling in SAMPLINGS.items():
        counts, cover, pairs, cost = (list(column) for column in zip(*runs[name], strict=True))
        ratio = "" if name == "random" else f"{statistics.median(cover) / baseline:.2f}×"
        rows.append(f"| {label} | {budget} | {sampling} | {summary(counts)} | {summary(cover)} | {ratio} | "
                    f"{summary(pairs)} | {summary(cost, 1)} |")
    return rows


if __name__ == "__main__":
    print(arrivals() if sys.argv[1:] == ["arrivals"] else main())
