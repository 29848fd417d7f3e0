"""Live sources: how soon an RTSP camera's first frame arrives, and the rate a live HLS stream plays at.

- Time to first frame from a running RTSP camera (GStreamer's server, 320×240 at 30 fps, a keyframe every 1 s or
  every 4 s, kept running by another viewer, so each connection lands at a random point of the GOP), framesift
  (`Pipeline`, stub model) against plain PyAV (`av.open` + `decode`, the same transport), the runs interleaved.
- A live HLS stream (15 fps, 1 s and 4 s segments, written by FFmpeg's HLS muxer and served over HTTP on
  127.0.0.1), read with a model of 20 ms per frame (50 fps of capacity): frames inferred per second once started,
  frames dropped, and with `--max-fps 5`.

Run: `python benchmarks/live.py` (starts its own servers on 127.0.0.1). Prints a Markdown section.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framesift.models import load_model  # noqa: E402
from framesift.stream import Pipeline, SourceOptions  # noqa: E402
from tests.helpers import SlowModel  # noqa: E402
from tests.hls_server import HlsServer, LiveHls  # noqa: E402
from tests.servers import RtspServer, free_port  # noqa: E402

TRIALS = 6


def first_frame_framesift(url: str) -> float:
    first: list[float] = []
    with Pipeline([url], load_model("stub"), on_prediction=[lambda f, p: first.append(time.monotonic())]) as pipeline:
        started = time.monotonic()
        pipeline.start()
        while not first and time.monotonic() - started < 30:
            time.sleep(0.005)
    return first[0] - started


def first_frame_pyav(url: str) -> float:
    import av

    started = time.monotonic()
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(10, 10)) as container:
        next(container.decode(video=0))
    return time.monotonic() - started


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def keep_watching(url: str, stop: threading.Event) -> None:
    """A viewer that keeps the server's shared stream running, as a camera's runs whoever connects."""
    import av

    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(10, 10)) as container:
        for _ in container.demux(video=0):
            if stop.is_set():
                return


def rtsp_rows() -> list[str]:
    rows = []
    rng = random.Random(7)
    for gop_s in (1, 4):
        server = RtspServer(free_port(), gop=30 * gop_s)
        server.start()
        stop = threading.Event()
        viewer = threading.Thread(target=keep_watching, args=(server.url, stop), daemon=True)
        viewer.start()
        try:
            time.sleep(2)
            times: dict[str, list[float]] = {"framesift": [], "pyav": []}
            for _ in range(TRIALS):
                for name, measure in (("framesift", first_frame_framesift), ("pyav", first_frame_pyav)):
                    time.sleep(rng.uniform(0, gop_s))  # land anywhere in the GOP
                    times[name].append(measure(server.url))
        finally:
            stop.set()
            viewer.join(5)
            server.stop()
        ratio = statistics.median(times["framesift"]) / statistics.median(times["pyav"])
        rows.append(f"| {gop_s} s | {summary(times['framesift'])} | {summary(times['pyav'])} | {ratio:.2f} |")
    return rows


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


def main() -> str:
    lines = ["## Live sources", "",
             f"### Time to first frame from a running RTSP camera (30 fps; s, median (min–max of {TRIALS}))", "",
             "| GOP | framesift | plain PyAV | ratio |", "|---|---|---|---|", *rtsp_rows(), "",
             "### A live HLS stream at 15 fps, read with a 20 ms-per-frame model", "",
             "| segments | `--max-fps` | frames inferred per second (after the first segments) | decoded | dropped |",
             "|---|---|---|---|---|", *hls_rows(), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
