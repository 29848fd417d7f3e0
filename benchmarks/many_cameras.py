"""Many live cameras on one box (issue 15): 1, 2, 4, 8 and 16 live 720p RTSP sources, framesift's `Pipeline` and
Roboflow Inference's `InferencePipeline` side by side, with the stub, the demo model and YOLOv8n.

The cameras: GStreamer's RTSP server (`tests/rtsp_server.py`) loops a 10 s 1280×720 H.264 clip of the demo scene
(30 fps, a keyframe every second, no B-frames, as cameras send) to each client as a live stream of its own, so
every source is independent (each starts when it connects) and the server costs about 0.01 core per client
(its frames were encoded once). Both pipelines read them over RTSP/TCP (the peer's OpenCV through
`OPENCV_FFMPEG_CAPTURE_OPTIONS=rtsp_transport;tcp`).

Each run is its own process and is measured over a window of `--duration` seconds (at least 20 s with 4 sources or
more) that opens 2 s after every source has had a frame inferred, so that a pipeline's start (the peer takes
3–17 s to start 4–16 cameras) is never inside it; how long the start took is reported beside the window:
- first prediction: seconds from the launch of the run's process to its first prediction, and to the moment
  every source had had one (the window opens 2 s later);
- frames inferred per second: in total, and per source (the mean, and the slowest and fastest source);
- decoded: both pipelines number the frames they decode per source (`frame_id`), so each source's decoding rate
  is the ids its predictions went through per second between its first and last prediction of the window; shown
  against the frames the cameras sent (30 per second each): below 100 %, the decoders fell behind the cameras (a
  lag that the frame age below does not show). framesift's own counters, in its JSON line, agree within 1 %;
- frames dropped: decoded but never inferred (decoded less inferred), with their share of the frames decoded;
- frame age p50 and p99: from when the frame was decoded to its prediction (framesift: `Frame.received`; the
  peer: `VideoFrame.frame_timestamp`, taken when it grabbed the frame);
- CPU: the process's CPU time over the window divided by the window (2.0 = both cores of this machine); peak RSS.
framesift runs with its defaults (`--device cpu`); `framesift-square` feeds a dynamic-size export the 640×640 square
(as before issue 24's rectangular inputs); `framesift-skip-gops` runs with `--skip-gops`. The peer runs with
`init_with_custom_logic` and its defaults, the model called by `peer_runner.UserModel` (a user's OpenCV letterbox
and ONNX Runtime session), no collection. YOLOv8n is the dynamic-batch export, so that framesift could batch across
sources (on the CPU it takes one frame a call); the peer's user code runs one frame a call.

With `--repeats` above 1 the pipelines alternate run by run at each size, and a summary follows the runs: medians
(min–max) of each pipeline, and framesift's ratios to the others, of the medians, with the range of the ratios of
runs made side by side (`paired`).

The machine may be shared: each run waits (up to `--quiet-wait` s) until the rest of the machine uses less than 0.3
of a core, and a run during which it used more all the same is made again (`--attempts` runs at most); the JSON
line says how much it used (`others`, the RTSP server included: about 0.01 core per camera). Every table names the
machine (CPU model, cores).

Run: `python benchmarks/many_cameras.py [--sizes 1,2,4,8,16] [--models stub,demo,yolo] [--duration 20]
[--pipelines framesift,framesift-square,framesift-skip-gops,peer] [--repeats 1] [--quiet-wait 120] [--attempts 3]`
(starts its own RTSP server on 127.0.0.1; about 20 min on a quiet machine, with the peer installed by
`benchmarks/install_peer.sh`). Prints a Markdown section. `--child PIPELINE` is one run, printing one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"
PEER_PYTHON = HERE / ".peer-venv" / "bin" / "python"
YOLO = ROOT.parent / "shared" / "models" / "yolov8n-random-dyn.onnx"
SIZE, FPS = (1280, 720), 30
SETTLE_S = 2.0  # from every source having a prediction to the window's start
MIN_WINDOW_S, MANY = 20.0, 4  # the shortest window for MANY sources or more (the peer's start is long and uneven)
START_LIMIT_S = 40.0  # a source that has had nothing inferred by then is measured as it is
QUIET_CORES, QUIET_WAIT_S = 0.3, 120.0  # before each run, wait for the machine's other work to fall below this
PIPELINES = ("framesift", "framesift-square", "framesift-skip-gops", "peer")  # see the docstring
ATTEMPTS = 3  # a run disturbed by other work all the same (more than QUIET_CORES) is made again, this many times


class Meter:
    """What one run measures, fed by the prediction callback (any thread): per source, when each prediction inside
    the window came and the id of its frame, and every frame's age. `launched`: when the run's process was launched
    (`time.monotonic()`'s clock), from which the first predictions are reported."""

    def __init__(self, sources: list[str], launched: float | None = None):
        self._lock = threading.Lock()
        self.sources = sources
        self.launched = launched
        self.first: dict[str, float] = {}
        self.window: tuple[float, float] | None = None
        self.seen: dict[str, list[tuple[float, int]]] = {s: [] for s in sources}
        self.ages: list[float] = []

    def predicted(self, source: str, frame_id: int, age: float) -> None:
        now = time.monotonic()
        with self._lock:
            self.first.setdefault(source, now)
            if self.window is not None and self.window[0] <= now < self.window[1]:
                self.seen[source].append((now, frame_id))
                self.ages.append(age)

    def decoded(self, source: str, duration: float) -> float:
        """Frames of `source` decoded in the window: the frame ids its predictions went through, per second of
        the time between its first and last prediction, times the window."""
        seen = self.seen[source]
        if len(seen) < 2 or seen[-1][0] <= seen[0][0]:
            return float(len(seen))
        return (seen[-1][1] - seen[0][1]) / (seen[-1][0] - seen[0][0]) * duration

    def measure(self, duration: float, counters: Callable[[], dict[str, float]] | None = None) -> dict[str, Any]:
        """Wait for every source's first prediction, then measure the window; `counters()` is read at the window's
        two ends, and each of its counters' growth over the window is `counted_<name>` (framesift: its own decoded
        and dropped frames, a check on the estimate)."""
        started = time.monotonic()
        while len(self.first) < len(self.sources) and time.monotonic() - started < START_LIMIT_S:
            time.sleep(0.05)
        time.sleep(SETTLE_S)
        cpu0, busy0, before = time.process_time(), machine_busy(), counters() if counters else None
        with self._lock:
            opened = time.monotonic()
            self.window = (opened, opened + duration)
        time.sleep(duration)
        cpu1, busy1, after = time.process_time(), machine_busy(), counters() if counters else None
        import numpy as np

        per_source = [len(seen) / duration for seen in self.seen.values()]
        decoded = sum(self.decoded(source, duration) for source in self.sources)
        out = {"sources": len(self.sources), "started": sum(1 for s in self.sources if s in self.first),
               "fps": sum(per_source), "fps_min": min(per_source), "fps_max": max(per_source),
               "decoded": decoded, "dropped": max(0.0, decoded - sum(per_source) * duration),
               "age_p50": float(np.percentile(self.ages, 50)) if self.ages else None,
               "age_p99": float(np.percentile(self.ages, 99)) if self.ages else None,
               "cpu": (cpu1 - cpu0) / duration, "others": (busy1 - busy0 - (cpu1 - cpu0)) / duration,
               "duration": duration}
        if self.launched is not None and self.first:
            out["first_s"] = min(self.first.values()) - self.launched
            out["all_first_s"] = max(self.first.values()) - self.launched
        if before is not None and after is not None:
            out.update({f"counted_{name}": after.get(name, before.get(name, 0)) - before.get(name, 0)
                        for name in before.keys() | after.keys()})  # a counter gone at the end: nothing counted
        return out


def machine_busy() -> float:
    """Seconds of CPU time the whole machine has spent busy (all cores, every process), from /proc/stat."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # not idle, not waiting for I/O


def launched(args: argparse.Namespace) -> float:
    """When the parent launched this run (`--t0`, `time.time()`), on `time.monotonic()`'s clock."""
    return time.monotonic() - (time.time() - args.t0)


def child_framesift(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from framesift.models import load_model
    from framesift.pipeline.pipeline import Pipeline
    from framesift.stream import SourceOptions, SourceSpec
    model = load_model(args.model, device="cpu", confidence=0.5 if args.model == "demo" else 0.25)
    if args.square or args.child == "framesift-square":  # a dynamic-size export fed the 640×640 square, as before
        model.fit_frames = False  # issue 24 (benchmarks/rectangular.py)
    names = [f"cam{i}" for i in range(args.sources)]
    meter = Meter(names, launched(args))
    pipeline = Pipeline([SourceSpec(args.url, name) for name in names], model,
                        options=SourceOptions(skip_gops=args.child == "framesift-skip-gops"),
                        on_prediction=[lambda frame, _p: meter.predicted(frame.source, frame.frame_id,
                                                                         time.monotonic() - frame.received)])

    def counters() -> dict[str, float]:
        snapshot = pipeline.snapshot()
        return {"decoded": snapshot.frames_decoded, "dropped": snapshot.frames_dropped,
                "skipped": snapshot.frames_skipped}

    with pipeline:
        pipeline.start()
        result = meter.measure(args.duration, counters)
    return result


def child_peer(args: argparse.Namespace) -> dict[str, Any]:
    from datetime import datetime

    from inference import InferencePipeline

    sys.path.insert(0, str(HERE))
    from peer_runner import DEMO_MODEL, UserModel

    path = {"stub": None, "demo": str(DEMO_MODEL)}.get(args.model, args.model)
    model = UserModel(path, 0.5 if args.model == "demo" else 0.25) if path else None
    meter = Meter([str(i) for i in range(args.sources)], launched(args))

    def on_video_frame(frames: list[Any]) -> list[Any]:
        return [model(f.image) if model else [] for f in frames]

    def on_prediction(predictions: Any, frames: Any) -> None:
        if not isinstance(frames, list):
            predictions, frames = [predictions], [frames]
        now = datetime.now()
        for frame in frames:
            if frame is not None:
                meter.predicted(str(frame.source_id), frame.frame_id, (now - frame.frame_timestamp).total_seconds())

    pipeline = InferencePipeline.init_with_custom_logic(video_reference=[args.url] * args.sources,
                                                        on_video_frame=on_video_frame, on_prediction=on_prediction)
    pipeline.start(use_main_thread=False)
    try:
        return meter.measure(args.duration)
    finally:
        pipeline.terminate()
        pipeline.join()


# -- the parent: the server, the runs, the table ------------------------------------------------------------------
def camera_clip(size: tuple[int, int] = SIZE, seconds: int = 10, folder: Path = WORK) -> Path:
    """A clip of the demo scene as a camera sends it (`FPS`, a keyframe every second, no B-frames), made once in
    `folder` (benchmarks/.work): the one every camera loops, by default."""
    import av

    from framesift.demo import demo_frame

    path = folder / f"camera-{size[1]}p-{seconds}s.mp4"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part.mp4")
        with av.open(str(partial), "w") as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
            stream.options = {"preset": "veryfast", "crf": "23",
                              "x264-params": f"keyint={FPS}:min-keyint={FPS}:bframes=0:scenecut=0"}
            for i in range(seconds * FPS):
                frame = av.VideoFrame.from_ndarray(demo_frame(i, *size), format="bgr24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        partial.rename(path)
    return path


def wait_quiet(limit_s: float = QUIET_WAIT_S) -> None:
    """Wait (up to `limit_s`) until the rest of the machine uses less than `QUIET_CORES`: it is shared."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = machine_busy()
        time.sleep(2)
        if (machine_busy() - before) / 2 < QUIET_CORES:
            return


def run_child(pipeline: str, url: str, sources: int, model: str, duration: float,
              quiet_wait_s: float = QUIET_WAIT_S, attempts: int = ATTEMPTS) -> dict[str, Any] | None:
    if pipeline == "peer" and not PEER_PYTHON.exists():
        return None
    python = str(PEER_PYTHON) if pipeline == "peer" else sys.executable
    env = {**os.environ, "OPENCV_FFMPEG_CAPTURE_OPTIONS": "rtsp_transport;tcp"}
    command = [python, str(Path(__file__).resolve()), "--child", pipeline, "--url", url, "--sources", str(sources),
               "--model", model, "--duration", str(duration)]
    for _ in range(max(1, attempts)):
        wait_quiet(quiet_wait_s)
        done = subprocess.run([*command, "--t0", repr(time.time())], capture_output=True, text=True, cwd=ROOT,
                              env=env)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        if result["others"] < QUIET_CORES:
            break
    return result


def row(label: str, sources: int, pipeline: str, r: dict[str, Any] | None) -> str:
    if r is None:
        return f"| {label} | {sources} | {pipeline} | not measured: the peer is not installed |" + " |" * 9
    sent = FPS * sources * r["duration"]
    started = "" if r["started"] == sources else f" ({sources - r['started']} never inferred)"
    share = r["dropped"] / r["decoded"] if r["decoded"] else 0.0
    return (f"| {label} | {sources} | {pipeline} | {r['fps']:.1f} | {r['fps'] / sources:.2f} "
            f"({r['fps_min']:.2f}–{r['fps_max']:.2f}){started} | {r['dropped']:.0f} ({share:.0%}) | "
            f"{r['decoded'] / sent:.0%} | {_seconds(r['age_p50'])} | {_seconds(r['age_p99'])} | {r['cpu']:.2f} | "
            f"{r['others']:.2f} | {r['rss_mib']:.0f} | {_seconds(r.get('first_s'), 1)} / "
            f"{_seconds(r.get('all_first_s'), 1)} |")


def _seconds(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _spread(values: list[float], digits: int) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def summary(label: str, sources: int, runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Rows of the summary for one model and size: each pipeline's medians (min–max) over its runs, and framesift's
    ratios to each other pipeline — frames inferred per second (framesift ÷ other) and frame age p50 (other ÷
    framesift: how many times fresher) — of the medians, with the range of the ratios of runs made side by side."""
    ours = runs.get("framesift", [])
    lines = []
    for pipeline, results in runs.items():
        if not results:
            continue
        fps, ages = [r["fps"] for r in results], [r["age_p50"] for r in results if r["age_p50"] is not None]
        ratio = fresher = ""
        if pipeline != "framesift" and ours and ages:
            pairs = list(zip(ours, results, strict=False))
            fps_ratios = [a["fps"] / b["fps"] for a, b in pairs if b["fps"]]
            age_ratios = [b["age_p50"] / a["age_p50"] for a, b in pairs if a["age_p50"] and b["age_p50"]]
            ours_fps = statistics.median(r["fps"] for r in ours)
            ours_age = statistics.median(r["age_p50"] for r in ours)
            if fps_ratios:
                ratio = (f"{ours_fps / statistics.median(fps):.2f}× (paired {min(fps_ratios):.2f}–"
                         f"{max(fps_ratios):.2f})")
            if age_ratios:
                fresher = (f"{statistics.median(ages) / ours_age:.1f}× (paired {min(age_ratios):.1f}–"
                           f"{max(age_ratios):.1f})")
        firsts = [r["first_s"] for r in results if r.get("first_s") is not None]
        lines.append(f"| {label} | {sources} | {pipeline} | {len(results)} | {_spread(fps, 1)} | "
                     f"{_spread(ages, 3) if ages else '–'} | {_spread([r['rss_mib'] for r in results], 0)} | "
                     f"{_spread(firsts, 1) if firsts else '–'} | {ratio} | {fresher} |")
    return lines


def main(sizes: tuple[int, ...] = (1, 2, 4, 8, 16), models: tuple[str, ...] = ("stub", "demo", "yolo"),
         duration: float = MIN_WINDOW_S, pipelines: tuple[str, ...] = ("framesift", "peer"), repeats: int = 1,
         quiet_wait_s: float = QUIET_WAIT_S, attempts: int = ATTEMPTS) -> str:
    sys.path.insert(0, str(ROOT))
    from benchmarks.run import cpu_name
    from tests.servers import RtspServer, free_port

    clip = camera_clip()
    labels = {"stub": "stub", "demo": "demo", "yolo": "YOLOv8n (dynamic batch)"}
    paths = {"stub": "stub", "demo": "demo", "yolo": str(YOLO)}
    server = RtspServer(free_port(), size=(*SIZE, FPS), video=clip)
    server.start()
    lines = ["## Many live cameras on one box (720p at 30 fps each)", "",
             f"On {cpu_name()}. One run per line, a window of {duration:.0f} s (at least {MIN_WINDOW_S:.0f} s from "
             f"{MANY} sources on), the pipelines one after the other on the same cameras (`python "
             "benchmarks/many_cameras.py`; how each figure is obtained: its docstring). Frame age: from decoding to "
             "prediction, s; CPU: cores busy (2 = the whole machine); others: cores the rest of the machine used; "
             "RSS: peak, MiB; first prediction: s from launch to the first, and to every source's first.", "",
             "| model | sources | pipeline | inferred fps, total | per source, mean (min–max) | dropped (share of "
             "decoded) | decoded ÷ sent | age p50 | age p99 | CPU | others | RSS | first prediction |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    summaries = []
    try:
        for model in models:
            if model == "yolo" and not YOLO.is_file():
                lines.append(f"| {labels[model]} | | | not measured: {YOLO} is missing |" + " |" * 9)
                continue
            for sources in sizes:
                window = max(duration, MIN_WINDOW_S) if sources >= MANY else duration
                runs: dict[str, list[dict[str, Any]]] = {pipeline: [] for pipeline in pipelines}
                for _ in range(repeats):
                    for pipeline in pipelines:
                        result = run_child(pipeline, server.url, sources, paths[model], window, quiet_wait_s,
                                           attempts)
                        lines.append(row(labels[model], sources, pipeline, result))
                        print(lines[-1], json.dumps(result), file=sys.stderr, flush=True)
                        if result is not None:
                            runs[pipeline].append(result)
                summaries += summary(labels[model], sources, runs)
    finally:
        server.stop()
    if repeats > 1:
        lines += ["", f"Summary on {cpu_name()}: median (min–max) of {repeats} runs each, alternating; framesift's "
                  "ratios to each other pipeline: frames inferred per second (framesift ÷ it) and frame age p50 "
                  "(it ÷ framesift: times fresher), of the medians, with the range of the ratios of runs made side by "
                  "side.", "",
                  "| model | sources | pipeline | runs | inferred fps, total | age p50, s | peak RSS, MiB | "
                  "first prediction, s | framesift ÷ it, fps | framesift fresher, age p50 |",
                  "|---|---|---|---|---|---|---|---|---|---|", *summaries]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=PIPELINES)
    parser.add_argument("--url")
    parser.add_argument("--sources", type=int, default=1)
    parser.add_argument("--model", default="stub")
    parser.add_argument("--duration", type=float, default=MIN_WINDOW_S,
                        help=f"the window, s (at least {MIN_WINDOW_S:.0f} with {MANY} sources or more)")
    parser.add_argument("--t0", type=float, default=time.time(), help="a child: when it was launched (time.time())")
    parser.add_argument("--square", action="store_true", help="a child: feed a dynamic-size export its square")
    parser.add_argument("--sizes", default="1,2,4,8,16")
    parser.add_argument("--models", default="stub,demo,yolo")
    parser.add_argument("--pipelines", default="framesift,peer", help=f"which of {','.join(PIPELINES)}")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each, interleaved")
    parser.add_argument("--quiet-wait", type=float, default=QUIET_WAIT_S,
                        help="seconds to wait at most for the rest of the machine to be quiet before each run")
    parser.add_argument("--attempts", type=int, default=ATTEMPTS,
                        help="runs at most of each line while the rest of the machine is busy all the same")
    arguments = parser.parse_args()
    if arguments.child:
        measured = (child_peer if arguments.child == "peer" else child_framesift)(arguments)
        measured["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(measured))
    else:
        print(main(tuple(int(s) for s in arguments.sizes.split(",")), tuple(arguments.models.split(",")),
                   arguments.duration, tuple(arguments.pipelines.split(",")), arguments.repeats, arguments.quiet_wait,
                   arguments.attempts))
