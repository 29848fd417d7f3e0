"""framesift on a GPU (issue 21): the same predictions as on the CPU, and what one 1080p file and N live 720p cameras
reach, with what bounds them.

Every part runs in processes of its own (`--child`), on `--device` (`cuda` by default; `cpu` runs the very same
parts on the CPU, so that a test keeps this benchmark and `scripts/gpu-check.sh` working where there is no GPU):

- the startup line: `framesift run` with `--device auto` and with `--device`, what it says about the device (and
  any line of ONNX Runtime's own, which should be none);
- the same predictions: the demo detector and `--model` on the first `--check-frames` frames of a 1080p clip, one
  frame a call, on the CPU and on the device, box by box: the same number of boxes on every frame, the worst
  difference of a coordinate (pixels) and of a confidence; it passes within 1 px and 1e-3;
- one 1080p file as fast as possible (`benchmarks/runner.py pipeline`): frames inferred per second on the device
  and on the CPU, and the time from the process's start to its first prediction;
- N live-paced 720p sources (one clip looped at 30 fps, `realtime` + `loop`, each its own source), measured as
  `benchmarks/many_cameras.py` measures (its `Meter`: a window of `--duration` s opened 2 s after every source's
  first prediction): frames inferred per second in all, the slowest and the fastest source, frames dropped
  (framesift's own counters, and their share of those decoded), frame age p50/p99, the time from the process's
  start (the model's loading and warm-up included) to its first prediction, the GPU's utilisation from `nvidia-smi`
  (mean and peak over the window; – without it), and the CPU each thread used (cores; framesift's threads by name,
  ONNX Runtime's and FFmpeg's own by their system name; threads differing only by a number are summed).

Run: `python benchmarks/gpu.py [--device cuda|cuda:N|cpu] [--model PATH] [--sizes 1,2,4,8,16,32] [--duration 15]`
(`scripts/gpu-check.sh` runs it with what the machine offers printed first). In `make bench` it runs only where
ONNX Runtime offers CUDA and is a line saying so elsewhere. Prints a Markdown section; exits 1 when the
predictions differ or a run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.many_cameras import WORK, YOLO, Meter, camera_clip  # noqa: E402

SIZES = (1, 2, 4, 8, 16, 32)
PX, CONFIDENCE = 1.0, 1e-3  # CPU and GPU predict the same within these
TOP_THREADS = 6


@dataclass(frozen=True)
class Plan:
    """What one check runs: the device, the model, the numbers of cameras and how long each is measured."""

    device: str = "cuda"
    model: str = str(YOLO) if YOLO.is_file() else "demo"
    sizes: tuple[int, ...] = SIZES
    duration: float = 15.0
    check_frames: int = 120
    file_seconds: int = 20  # the 1080p file: 600 frames
    clip_seconds: int = 10  # the 720p clip every camera loops
    work: Path = WORK


def confidence(model: str) -> float:
    return 0.5 if model == "demo" else 0.25  # the demo detector's squares score 0.5 and more


# -- the children: one measurement each, one JSON line ------------------------------------------------------------
def child_same(args: argparse.Namespace) -> dict[str, Any]:
    """The CPU's and the device's outputs for the same frames: the network's raw outputs (box coordinates in input
    pixels, class scores: every candidate, whatever the thresholds) and the predictions, box by box."""
    import av
    import numpy as np

    from framesift.models import load_model
    from framesift.predictions import DetectionPrediction

    with av.open(args.video) as container:
        frames = [f.to_ndarray(format="bgr24") for _, f in zip(range(args.frames), container.decode(video=0),
                                                                strict=False)]
    cpu = load_model(args.model, device="cpu", confidence=confidence(args.model))
    device = load_model(args.model, device=args.device, confidence=confidence(args.model))
    scores = slice(4, 4 + cpu.layout.num_classes)
    raw_px = raw_score = 0.0
    boxes = mismatched = 0
    worst_px = worst_confidence = 0.0
    for frame in frames:
        batch = cpu.prepare(frame).tensor[None]
        [a], [b] = cpu.run(batch)[0], device.run(batch)[0]
        if cpu.task_type != "classification":
            raw_px = max(raw_px, float(np.abs(a[:4] - b[:4]).max()))
        raw_score = max(raw_score, float(np.abs(a[scores] - b[scores]).max() if cpu.task_type != "classification"
                                         else np.abs(a - b).max()))
        [p], [q] = cpu.predict([frame]), device.predict([frame])
        if not isinstance(p, DetectionPrediction) or not isinstance(q, DetectionPrediction):
            continue
        boxes += len(p.xyxy)
        if len(p.xyxy) != len(q.xyxy):
            mismatched += 1
            continue
        order_p = np.lexsort((p.xyxy[:, 1], p.xyxy[:, 0], p.class_id))
        order_q = np.lexsort((q.xyxy[:, 1], q.xyxy[:, 0], q.class_id))
        if len(order_p):
            worst_px = max(worst_px, float(np.abs(p.xyxy[order_p] - q.xyxy[order_q]).max()))
            worst_confidence = max(worst_confidence,
                                   float(np.abs(p.confidence[order_p] - q.confidence[order_q]).max()))
    return {"frames": len(frames), "raw_px": raw_px, "raw_score": raw_score, "boxes": boxes,
            "mismatched": mismatched, "worst_px": worst_px, "worst_confidence": worst_confidence,
            "same": max(raw_px, worst_px) <= PX and max(raw_score, worst_confidence) <= CONFIDENCE}


def child_live(args: argparse.Namespace) -> dict[str, Any]:
    """N live-paced sources looping one clip: `Meter`'s figures, the first prediction, the GPU's use, CPU per thread."""
    started = time.monotonic()
    from framesift.models import load_model
    from framesift.models.session import nvidia_smi_id, parse_device
    from framesift.pipeline.pipeline import Pipeline
    from framesift.stream import SourceOptions, SourceSpec
    model = load_model(args.model, device=args.device, confidence=confidence(args.model))
    names = [f"cam{i}" for i in range(args.sources)]
    meter = Meter(names)
    pipeline = Pipeline([SourceSpec(args.video, name) for name in names], model,
                        options=SourceOptions(realtime=True, loop=True),
                        on_prediction=[lambda frame, _p: meter.predicted(frame.source, frame.frame_id,
                                                                         time.monotonic() - frame.received)])

    def counters() -> dict[str, float]:
        snapshot = pipeline.snapshot()
        return {"decoded": snapshot.frames_decoded, "dropped": snapshot.frames_dropped, **thread_cpu()}

    gpu = nvidia_smi_id(parse_device(args.device).index or 0) if model.device != "cpu" else None
    with GpuUse(gpu) as use, pipeline:
        pipeline.start()
        result = meter.measure(args.duration, counters)
    threads = {name.removeprefix("counted_cpu "): seconds / args.duration for name, seconds in result.items()
               if name.startswith("counted_cpu ")}
    result = {k: v for k, v in result.items() if not k.startswith("counted_cpu ")}
    result["threads"] = dict(sorted(threads.items(), key=lambda item: -item[1]))
    result["first_prediction_s"] = min(meter.first.values()) - started if meter.first else None
    result["gpu_use"] = use.over(*meter.window) if meter.window else None
    return result


def thread_cpu() -> dict[str, float]:
    """CPU seconds used so far by each thread of this process, as `cpu <name>`: a Python thread's name, else the
    system's name of a native one (ONNX Runtime's pool, FFmpeg's decoders); names differing only by a number (one
    thread per source) are summed under one with `N` for the number."""
    named = {thread.native_id: thread.name for thread in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat, system_name = (task / "stat").read_text(), (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the name: state is field 3, utime 14 and stime 15
        name = named.get(int(task.name)) or f"{system_name} (native)"
        key = f"cpu {re.sub(r'[0-9]+', 'N', name)}"
        used[key] = used.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return used


class GpuUse:
    """The GPU's utilisation (%) as `nvidia-smi` reports it every half second while open; no samples without it or
    without a GPU (`gpu` None)."""

    def __init__(self, gpu: str | None):
        self.samples: list[tuple[float, float]] = []
        smi = shutil.which("nvidia-smi")
        self._process = None if gpu is None or smi is None else subprocess.Popen(
            [smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "500", "-i", gpu],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._process.stdout if self._process and self._process.stdout else ():
            if line.strip().isdigit():
                self.samples.append((time.monotonic(), float(line)))

    def over(self, start: float, end: float) -> tuple[float, float] | None:
        """The mean and the peak between `start` and `end` (monotonic), or None without samples."""
        values = [value for at, value in self.samples if start <= at <= end]
        return (sum(values) / len(values), max(values)) if values else None

    def close(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None
        self._reader.join(10)

    def __enter__(self) -> GpuUse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the parent: the clips, the runs, the tables -------------------------------------------------------------------
def run(command: list[str], timeout: float) -> tuple[dict[str, Any] | None, str]:
    """A child's JSON line, or None and the last line it wrote to stderr (why it failed)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"no result within {timeout:.0f} s"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
        return None, lines[-1]
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


def child(kind: str, plan: Plan, model: str, video: Path, **extra: Any) -> list[str]:
    options = [f"--{name.replace('_', '-')}={value}" for name, value in extra.items()]
    return [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--device", plan.device, "--model", model,
            "--video", str(video), *options]


def startup_rows(plan: Plan, video: Path) -> list[str]:
    """What `framesift run` says about the device it chose, with `auto` and with the device asked for."""
    rows = []
    for device in dict.fromkeys(("auto", plan.device)):
        command = [sys.executable, "-m", "framesift.cli", "run", str(video), "--model", plan.model, "--device", device,
                   "--max-frames", "5", "--no-progress"]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
        said = [line.split(": ", 1)[-1] for line in done.stderr.splitlines()
                if "framesift.models" in line or "onnxruntime" in line.lower() or line.startswith("framesift:")]
        ours = "<br>".join(f"`{line}`" for line in said) or "–"
        block = "yes" if "EP Error" in done.stdout + done.stderr else "no"
        rows.append(f"| `--device {device}` | {done.returncode} | {ours} | {block} |")
    return rows


def same_rows(plan: Plan, video: Path) -> tuple[list[str], bool]:
    rows, same = [], True
    for model in dict.fromkeys(("demo", plan.model)):
        result, why = run(child("same", plan, model, video, frames=plan.check_frames), 1200)
        if result is None:
            rows.append(f"| {label(model)} | failed: {why} |" + " |" * 7)
            same = False
            continue
        same = same and result["same"]
        rows.append(f"| {label(model)} | {result['frames']} | {result['raw_px']:.3f} | {result['raw_score']:.5f} | "
                    f"{result['boxes']} | {result['mismatched']} | {result['worst_px']:.2f} | "
                    f"{result['worst_confidence']:.4f} | {'yes' if result['same'] else '**no**'} |")
    return rows, same


def file_rows(plan: Plan, video: Path) -> tuple[list[str], bool]:
    rows, ok = [], True
    for device in dict.fromkeys((plan.device, "cpu")):
        result, why = run([sys.executable, str(HERE / "runner.py"), "pipeline", str(video), "--model", plan.model,
                           "--device", device, "--confidence", str(confidence(plan.model)), "--t0", repr(time.time())],
                          1800)
        ok = ok and result is not None
        rows.append(f"| {device} | failed: {why} | | |" if result is None else f"| {device} | {result['frames']} | "
                    f"{result['fps']:.1f} | {seconds(result['first_prediction_s'])} |")
    return rows, ok


def live_rows(plan: Plan, video: Path) -> tuple[list[str], bool]:
    rows, ok = [], True
    for sources in plan.sizes:
        result, why = run(child("live", plan, plan.model, video, sources=sources, duration=plan.duration),
                          plan.duration + 300)
        if result is None:
            rows.append(f"| {sources} | failed: {why} |" + " |" * 8)
            ok = False
        else:
            rows.append(live_row(sources, result))
        print(rows[-1], file=sys.stderr, flush=True)
    return rows, ok


def live_row(sources: int, r: dict[str, Any]) -> str:
    offered = 30 * sources
    decoded = r.get("counted_decoded") or 0
    dropped = r.get("counted_dropped") or 0
    slowest = f"{r['fps_min']:.1f} / {r['fps_max']:.1f}" + (f" ({r['fps_min'] / r['fps_max']:.2f})" if r["fps_max"]
                                                              else "")
    started = "" if r["started"] == sources else f" ({sources - r['started']} never inferred)"
    use = "–" if r["gpu_use"] is None else f"{r['gpu_use'][0]:.0f} / {r['gpu_use'][1]:.0f}"
    threads = ", ".join(f"{name} {cores:.2f}" for name, cores in list(r["threads"].items())[:TOP_THREADS])
    return (f"| {sources} | {r['fps']:.1f} of {offered} ({r['fps'] / offered:.0%}){started} | {slowest} | "
            f"{dropped:.0f} ({dropped / decoded if decoded else 0:.0%}) | {seconds(r['age_p50'])} | "
            f"{seconds(r['age_p99'])} | {seconds(r['first_prediction_s'])} | {use} | {r['cpu']:.2f} | {threads} |")


def seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def label(model: str) -> str:
    return Path(model).name if model.endswith(".onnx") else model


def check(plan: Plan) -> tuple[str, bool]:
    """The section, and whether every prediction matched and every run gave its figures."""
    video720 = camera_clip((1280, 720), plan.clip_seconds, plan.work)
    video1080 = camera_clip((1920, 1080), plan.file_seconds, plan.work)
    same, matched = same_rows(plan, video1080)
    fast, ran_file = file_rows(plan, video1080)
    live, ran_live = live_rows(plan, video720)
    lines = [f"## On a GPU: `--device {plan.device}`, {label(plan.model)}", "",
             "`python benchmarks/gpu.py` (`scripts/gpu-check.sh`); how each figure is obtained: its docstring.", "",
             "### What `framesift run` says about the device", "",
             "| run | exit | framesift's lines about the device (and ONNX Runtime's, if any) | ONNX Runtime's EP Error "
             "block |", "|---|---|---|---|", *startup_rows(plan, video720), "",
             f"### The same predictions on the CPU and on `{plan.device}` (1080p, within {PX:g} px and "
             f"{CONFIDENCE:g})", "",
             "Raw: the network's outputs for every candidate (box coordinates in input pixels, class scores); boxes: "
             "the predictions, matched box by box on frames with as many boxes (a box at the very threshold may "
             "flip: such frames are counted, not compared).", "",
             "| model | frames | raw: worst px | raw: worst score | boxes (CPU) | frames with another number of "
             "boxes | boxes: worst px | boxes: worst confidence | same |", "|---" * 9 + "|", *same, "",
             f"### One 1080p file as fast as possible ({label(plan.model)})", "",
             "| device | frames | frames inferred per second | first prediction, s after start |", "|---|---|---|---|",
             *fast, "",
             f"### Live-paced 720p cameras at 30 fps each ({label(plan.model)}, `{plan.device}`, {plan.duration:g} s "
             "each)", "",
             "| cameras | inferred fps, in all (of offered) | slowest / fastest camera, fps (ratio) | dropped (share "
             "of decoded) | age p50, s | age p99, s | first prediction, s after start | GPU use %, mean / peak | "
             "CPU, cores | CPU per thread, cores (the busiest) |", "|---" * 10 + "|", *live, ""]
    return "\n".join(lines), matched and ran_file and ran_live


def main(plan: Plan | None = None) -> str:
    """`make bench`: the check where ONNX Runtime offers CUDA, else one line saying why not."""
    plan = plan or Plan()
    if plan.device != "cpu":
        import onnxruntime

        offered = onnxruntime.get_available_providers()
        if "CUDAExecutionProvider" not in offered:
            return (f"## On a GPU\n\nSkipped: this ONNX Runtime offers {', '.join(offered)}, no CUDA (no GPU here); "
                    "`scripts/gpu-check.sh` on a GPU box measures it.\n")
    return check(plan)[0]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--device", default=Plan.device)
    parser.add_argument("--model", default=Plan.model)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--duration", type=float, default=Plan.duration)
    parser.add_argument("--check-frames", type=int, default=Plan.check_frames)
    parser.add_argument("--file-seconds", type=int, default=Plan.file_seconds)
    parser.add_argument("--clip-seconds", type=int, default=Plan.clip_seconds)
    parser.add_argument("--work", type=Path, default=WORK, help="where the clips are made (once)")
    parser.add_argument("--child", choices=("same", "live"))
    parser.add_argument("--video")
    parser.add_argument("--frames", type=int)
    parser.add_argument("--sources", type=int)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps((child_same if arguments.child == "same" else child_live)(arguments)))
        sys.exit(0)
    text, passed = check(Plan(arguments.device, arguments.model, tuple(int(s) for s in arguments.sizes.split(",")),
                              arguments.duration, arguments.check_frames, arguments.file_seconds,
                              arguments.clip_seconds, arguments.work))
    print(text)
    sys.exit(0 if passed else 1)
