"""Live sources: how soon an RTSP camera's first frame arrives (after the open, and after the camera came back), and
the rate a live HLS stream plays at.

- Time to first frame from an RTSP camera (GStreamer's server, 320×240 at 30 fps, a keyframe every 1 s or every
  4 s; each connection gets a stream of its own, whose first decodable keyframe comes about one GOP after PLAY, as
  with the cameras of issue 24), framesift (`Pipeline`, stub model) against plain PyAV (`av.open` + `decode`, the
  same transport) with FFmpeg's default probe and with a 0.5 s one (`analyzeduration`), the runs interleaved.
- Time to first frame after the camera came back: framesift streams from the camera, the camera is killed, stays
  dead for a random 1–6 s and is started again; measured from when it listens again to framesift's next inferred
  frame, against plain PyAV opened at that moment (what a reconnect that waited for nothing would give).
- A live HLS stream (15 fps, 1 s and 4 s segments, written by FFmpeg's HLS muxer and served over HTTP on
  127.0.0.1), read with a model of 20 ms per frame (50 fps of capacity): frames inferred per second once started,
  frames dropped, and with `--max-fps 5`.

Run: `python benchmarks/live.py [--parts rtsp reconnect hls] [--trials 6]` (starts its own servers on 127.0.0.1).
Prints a Markdown section.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framesift.models import load_model  # noqa: E402
from framesift.pipeline.pipeline import Pipeline
from framesift.stream import SourceOptions  # noqa: E402
from tests.helpers import SlowModel  # noqa: E402
from tests.hls_server import HlsServer, LiveHls  # noqa: E402
from tests.servers import RtspServer, free_port  # noqa: E402

TRIALS = 6
PARTS = ("rtsp", "reconnect", "hls")


def first_frame_framesift(url: str) -> float:
    first: list[float] = []
    with Pipeline([url], load_model("stub"), on_prediction=[lambda f, p: first.append(time.monotonic())]) as pipeline:
        started = time.monotonic()
        pipeline.start()
        while not first and time.monotonic() - started < 30:
            time.sleep(0.005)
    return first[0] - started


def first_frame_pyav(url: str, probe_us: str | None = None) -> float:
    import av

    options = {"rtsp_transport": "tcp"} if probe_us is None else {"rtsp_transport": "tcp", "analyzeduration": probe_us}
    started = time.monotonic()
    with av.open(url, options=options, timeout=(10, 10)) as container:
        next(container.decode(video=0))
    return time.monotonic() - started


def first_frame_pyav_probed(url: str) -> float:
    return first_frame_pyav(url, "500000")


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def rtsp_rows(trials: int) -> list[str]:
    rows = []
    rng = random.Random(7)
    measures = {"framesift": first_frame_framesift, "pyav": first_frame_pyav, "probed": first_frame_pyav_probed}
    for gop_s in (1, 4):
        server = RtspServer(free_port(), gop=30 * gop_s)
        server.start()
        try:
            times: dict[str, list[float]] = {name: [] for name in measures}
            for _ in range(trials):
                for name, measure in measures.items():
                    time.sleep(rng.uniform(0, gop_s))
                    times[name].append(measure(server.url))
        finally:
            server.stop()
        median = {name: statistics.median(values) for name, values in times.items()}
        rows.append(f"| {gop_s} s | {summary(times['framesift'])} | {summary(times['pyav'])} | "
                    f"{summary(times['probed'])} | {median['framesift'] / median['pyav']:.2f} | "
                    f"{median['framesift'] / median['probed']:.2f} |")
    return rows


def reconnect_rows(trials: int) -> list[str]:
    """Seconds from the camera listening again to framesift's next frame, and to plain PyAV's first frame."""
    rng = random.Random(11)
    server = RtspServer(free_port(), gop=30)
    server.start()
    inferred: list[float] = []
    ours: list[float] = []
    theirs: list[float] = []
    try:
        with Pipeline([server.url], load_model("stub"), options=SourceOptions(open_timeout=5, read_timeout=5),
                      on_prediction=[lambda f, p: inferred.append(time.monotonic())]) as pipeline:
            pipeline.start()
            for _ in range(trials):
                wait_for(lambda: bool(inferred) and time.monotonic() - inferred[-1] < 0.2, 30)
                time.sleep(1)
                server.stop()
                time.sleep(rng.uniform(1, 6))
                server.start()
                back = time.monotonic()
                count = len(inferred)
                wait_for(lambda n=count: len(inferred) > n, 30)
                ours.append(inferred[count] - back)
        for _ in range(trials):
            server.stop()
            time.sleep(rng.uniform(1, 2))
            server.start()
            theirs.append(first_frame_pyav_probed(server.url))
    finally:
        server.stop()
    ratio = statistics.median(ours) / statistics.median(theirs)
    return [f"| 1 s | {summary(ours)} | {summary(theirs)} | {ratio:.2f} |"]


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def hls_rows() -> list[str]:
    rows = []
    for segment_s, max_fps in ((1.0, None), (4.0, None), (1.0, 5.0)):
        with tempfile.TemporaryDirectory() as folder:
            live = LiveHls(Path(folder), fps=15, segment_s=segment_s)
            live.start(warm_up_segments=2)
            server = HlsServer(Path(folder))
            times: list[float] = []
            try:
                with Pipeline([server.url("live.m3u8")], SlowModel(0.02), options=SourceOptions(max_fps=max_fps),
                              on_prediction=[lambda f, p, out=times: out.append(time.monotonic())]) as pipeline:
                    pipeline.start()
                    time.sleep(12 + 2 * segment_s)
                    stats = pipeline.snapshot().sources["source0"]
            finally:
                server.stop()
                live.stop()
        later = [t for t in times if t >= times[0] + 2 * segment_s]
        rate = (len(later) - 1) / (later[-1] - later[0])
        rows.append(f"| {segment_s:.0f} s | {'–' if max_fps is None else f'{max_fps:.0f}'} | {rate:.1f} | "
                    f"{stats.frames_decoded} | {stats.frames_dropped} |")
    return rows


def main(parts: tuple[str, ...] = PARTS, trials: int = TRIALS) -> str:
    lines = ["## Live sources", ""]
    if "rtsp" in parts:
        lines += [f"### Time to first frame from an RTSP camera (30 fps; s, median (min–max of {trials}))", "",
                  "| GOP | framesift | plain PyAV | plain PyAV, 0.5 s probe | ÷ PyAV | ÷ PyAV, 0.5 s probe |",
                  "|---|---|---|---|---|---|", *rtsp_rows(trials), ""]
    if "reconnect" in parts:
        lines += [f"### Time to first frame after the camera came back (dead 1–6 s; s, median (min–max of {trials}))",
                  "", "| GOP | framesift | plain PyAV opened as it came back (0.5 s probe) | ratio |",
                  "|---|---|---|---|", *reconnect_rows(trials), ""]
    if "hls" in parts:
        lines += ["### A live HLS stream at 15 fps, read with a 20 ms-per-frame model", "",
                  "| segments | `--max-fps` | frames inferred per second (after the first segments) | decoded "
                  "| dropped |",
                  "|---|---|---|---|---|", *hls_rows(), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=PARTS)
    parser.add_argument("--trials", type=int, default=TRIALS)
    arguments = parser.parse_args()
    print(main(tuple(arguments.parts), arguments.trials))
