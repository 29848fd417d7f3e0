"""Many live cameras on one box (issue 15): 1, 2, 4, 8 and 16 live 720p RTSP sources, framesift's `Pipeline` and
Roboflow Inference's `InferencePipeline` side by side, with the stub, the demo model and YOLOv8n.

The cameras: GStreamer's RTSP server (`tests/rtsp_server.py`) loops a 10 s 1280×720 H.264 clip of the demo scene
(30 fps, a keyframe every second, no B-frames, as cameras send) to each client as a live stream of its own, so
every source is independent (each starts when it connects) and the server costs about 0.01 core per client
(its frames were encoded once). Both pipelines read them over RTSP/TCP (the peer's OpenCV through
`OPENCV_FFMPEG_CAPTURE_OPTIONS=rtsp_transport;tcp`).

Each run is its own process and is measured over a window of `--duration` seconds that opens 2 s after every
source has had a frame inferred:
- frames inferred per second: in total, and per source (the mean, and the slowest and fastest source);
- decoded: both pipelines number the frames they decode per source (`frame_id`), so each source's decoding rate
  is the ids its predictions went through per second between its first and last prediction of the window; shown
  against the frames the cameras sent (30 per second each): below 100 %, the decoders fell behind the cameras (a
  lag that the frame age below does not show). framesift's own counters, in its JSON line, agree within 1 %;
- frames dropped: decoded but never inferred (decoded less inferred), with their share of the frames decoded;
- frame age p50 and p99: from when the frame was decoded to its prediction (framesift: `Frame.received`; the
  peer: `VideoFrame.frame_timestamp`, taken when it grabbed the frame);
- CPU: the process's CPU time over the window divided by the window (2.0 = both cores of this machine); peak RSS.
framesift runs with its defaults (`--device cpu`); the peer with `init_with_custom_logic` and its defaults, the
model called by `peer_runner.UserModel` (a user's OpenCV letterbox and ONNX Runtime session), no collection.
YOLOv8n is the dynamic-batch export, so that framesift could batch across sources (on the CPU it takes one frame a
call); the peer's user code runs one frame a call.

The machine may be shared: each run waits (up to 2 min) until the rest of the machine uses less than 0.3 of a
core, and a run during which it used more all the same is made again (twice at most); the JSON line says how much
it used (`others`, the RTSP server included: about 0.01 core per camera).

Run: `python benchmarks/many_cameras.py [--sizes 1,2,4,8,16] [--models stub,demo,yolo] [--duration 12]
[--pipelines framesift,framesift-skip-gops,peer] [--repeats 1] [--quiet-wait 120]`
(starts its own RTSP server on 127.0.0.1; about 14 min on a quiet machine, with the peer installed by
`benchmarks/install_peer.sh`). Prints a Markdown section. `--child framesift|peer` is one run, printing one JSON
line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
START_LIMIT_S = 40.0  # a source that has had nothing inferred by then is measured as it is
QUIET_CORES, QUIET_WAIT_S = 0.3, 120.0  # before each run, wait for the machine's other work to fall below this
PIPELINES = ("framesift", "framesift-skip-gops", "peer")  # framesift-skip-gops: with `--skip-gops`
ATTEMPTS = 3  # a run disturbed by other work all the same (more than QUIET_CORES) is made again, this many times


class Meter:
    """What one run measures, fed by the prediction callback (any thread): per source, when each prediction inside
    the window came and the id of its frame, and every frame's age."""

    def __init__(self, sources: list[str]):
        self._lock = threading.Lock()
        self.sources = sources
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
        if before is not None and after is not None:
            out.update({f"counted_{name}": after.get(name, before.get(name, 0)) - before.get(name, 0)
                        for name in before.keys() | after.keys()})  # a counter gone at the end: nothing counted
        return out


def machine_busy() -> float:
    """Seconds of CPU time the whole machine has spent busy (all cores, every process), from /proc/stat."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # not idle, not waiting for I/O


def child_framesift(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from framesift.models import load_model
    from framesift.pipeline.pipeline import Pipeline
    from framesift.stream import SourceOptions, SourceSpec
    model = load_model(args.model, device="cpu", confidence=0.5 if args.model == "demo" else 0.25)
    if args.square:  # a dynamic-size export fed the 640×640 square, as before issue 24 (benchmarks/rectangular.py)
        model.fit_frames = False
    names = [f"cam{i}" for i in range(args.sources)]
    meter = Meter(names)
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
    meter = Meter([str(i) for i in range(args.sources)])

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
              quiet_wait_s: float = QUIET_WAIT_S) -> dict[str, Any] | None:
    if pipeline == "peer" and not PEER_PYTHON.exists():
        return None
    python = str(PEER_PYTHON) if pipeline == "peer" else sys.executable
    env = {**os.environ, "OPENCV_FFMPEG_CAPTURE_OPTIONS": "rtsp_transport;tcp"}
    command = [python, str(Path(__file__).resolve()), "--child", pipeline, "--url", url, "--sources", str(sources),
               "--model", model, "--duration", str(duration)]
    for _ in range(ATTEMPTS):
        wait_quiet(quiet_wait_s)
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        if result["others"] < QUIET_CORES:
            break
    return result


def row(label: str, sources: int, pipeline: str, r: dict[str, Any] | None) -> str:
    if r is None:
        return f"| {label} | {sources} | {pipeline} | not measured: the peer is not installed |" + " |" * 7
    sent = FPS * sources * r["duration"]
    started = "" if r["started"] == sources else f" ({sources - r['started']} never inferred)"
    share = r["dropped"] / r["decoded"] if r["decoded"] else 0.0
    return (f"| {label} | {sources} | {pipeline} | {r['fps']:.1f} | {r['fps'] / sources:.2f} "
            f"({r['fps_min']:.2f}–{r['fps_max']:.2f}){started} | {r['dropped']:.0f} ({share:.0%}) | "
            f"{r['decoded'] / sent:.0%} | {_seconds(r['age_p50'])} | {_seconds(r['age_p99'])} | {r['cpu']:.2f} | "
            f"{r['rss_mib']:.0f} |")


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def main(sizes: tuple[int, ...] = (1, 2, 4, 8, 16), models: tuple[str, ...] = ("stub", "demo", "yolo"),
         duration: float = 12.0, pipelines: tuple[str, ...] = ("framesift", "peer"), repeats: int = 1,
         quiet_wait_s: float = QUIET_WAIT_S) -> str:
    sys.path.insert(0, str(ROOT))
    from tests.servers import RtspServer, free_port

    clip = camera_clip()
    labels = {"stub": "stub", "demo": "demo", "yolo": "YOLOv8n (dynamic batch)"}
    paths = {"stub": "stub", "demo": "demo", "yolo": str(YOLO)}
    server = RtspServer(free_port(), size=(*SIZE, FPS), video=clip)
    server.start()
    lines = ["## Many live cameras on one box (720p at 30 fps each)", "",
             f"One run of {duration:.0f} s per line, framesift and the peer one after the other on the same cameras "
             "(`python benchmarks/many_cameras.py`; how each figure is obtained: its docstring). Frame age: from "
             "decoding to prediction, s; CPU: cores busy (2 = the whole machine); RSS: peak, MiB.", "",
             "| model | sources | pipeline | inferred fps, total | per source, mean (min–max) | dropped (share of "
             "decoded) | decoded ÷ sent | age p50 | age p99 | CPU | RSS |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    try:
        for model in models:
            if model == "yolo" and not YOLO.is_file():
                lines.append(f"| {labels[model]} | | | not measured: {YOLO} is missing |" + " |" * 7)
                continue
            for sources in sizes:
                for _ in range(repeats):
                    for pipeline in pipelines:
                        result = run_child(pipeline, server.url, sources, paths[model], duration, quiet_wait_s)
                        lines.append(row(labels[model], sources, pipeline, result))
                        print(lines[-1], json.dumps(result), file=sys.stderr, flush=True)
    finally:
        server.stop()
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=PIPELINES)
    parser.add_argument("--url")
    parser.add_argument("--sources", type=int, default=1)
    parser.add_argument("--model", default="stub")
    parser.add_argument("--duration", type=float, default=12.0)
    parser.add_argument("--square", action="store_true", help="a child: feed a dynamic-size export its square")
    parser.add_argument("--sizes", default="1,2,4,8,16")
    parser.add_argument("--models", default="stub,demo,yolo")
    parser.add_argument("--pipelines", default="framesift,peer", help=f"which of {','.join(PIPELINES)}")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each, interleaved")
    parser.add_argument("--quiet-wait", type=float, default=QUIET_WAIT_S,
                        help="seconds to wait at most for the rest of the machine to be quiet before each run")
    arguments = parser.parse_args()
    if arguments.child:
        measured = (child_peer if arguments.child == "peer" else child_framesift)(arguments)
        measured["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(measured))
    else:
        print(main(tuple(int(s) for s in arguments.sizes.split(",")), tuple(arguments.models.split(",")),
                   arguments.duration, tuple(arguments.pipelines.split(",")), arguments.repeats, arguments.quiet_wait))
