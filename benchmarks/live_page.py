"""The live page's cost to the frame path: the stream with the page open against closed, on the same input.

A 1080p clip of the demo scene, read by the demo model and collected with `configs/demo.yaml` into a local
dataset, in three ways, interleaved, RUNS times each:

- no page: no `LivePage`, no server (the baseline);
- closed: the page served (`MetricsServer(page=LivePage(pipeline))`), nobody looking: it keeps a reference per frame;
- open: VIEWERS pages open, each a client in another process asking what the page asks, as often: the state every
  250 ms, each new frame's picture, each new thumbnail (a browser's own drawing is its own process's work).

Two streams: the clip read as fast as the machine allows (a file: nothing is dropped, so every cycle the page took
from decoding or inference would show as fps lost), READ frames; and the clip replayed live at 30 fps
(`--realtime`), LIVE_S seconds, where the frame path's work is fixed: its frame age at prediction, and the CPU that
framesift's process uses (every thread, the HTTP server's too; not the viewers'), whose difference is the page's
cost. Beside it, one picture of a 1080p frame (made on the HTTP server's thread, never on the frame path): scaled
before it is converted (`Frame.preview`) against the full-resolution BGR conversion and a resize, each then
JPEG-encoded.

Run: `python benchmarks/live_page.py` (under two minutes). Prints a Markdown section.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framesift.collectors import Collector, LocalDataset, load_config  # noqa: E402
from framesift.demo import write_demo_video  # noqa: E402
from framesift.models import load_model  # noqa: E402
from framesift.observe.exposition import MetricsServer  # noqa: E402
from framesift.observe.live import LivePage  # noqa: E402
from framesift.pipeline.pipeline import Pipeline
from framesift.stream import SourceOptions, SourceSpec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 60  # the clip's, looped: writing 1080p frames of the demo scene takes longer than reading them
READ = 300  # frames read per run, as fast as possible
LIVE_S = 5  # seconds of each live run
SIZE = (1920, 1080)
RUNS = 3
VIEWERS = 4
MODES = ("no page", "closed", f"open ({VIEWERS} pages)")


def run_once(clip: Path, work: Path, mode: str, live: bool) -> dict[str, float]:
    """One pipeline run over the clip in `mode`: its fps, CPU, frame age, and what the page made."""
    collector = Collector(load_config(ROOT / "configs" / "demo.yaml"), LocalDataset(work / "dataset"), seed=0)
    options = SourceOptions(loop=True, realtime=True) if live else SourceOptions(loop=True, max_frames=READ)
    pipeline = Pipeline([SourceSpec(str(clip), "clip")], load_model("demo", confidence=0.5), collector,
                        options=options, duration=LIVE_S if live else None)
    page = LivePage(pipeline) if mode != "no page" else None
    viewers = None
    with pipeline:
        server = MetricsServer(pipeline.snapshot, 0, page=page) if page is not None else None
        if server is not None:
            server.start()
        try:
            if server is not None and mode.startswith("open"):
                viewers = subprocess.Popen([sys.executable, __file__, "view", str(server.port), str(VIEWERS)],
                                           stdout=subprocess.PIPE, text=True)
                viewers.stdout.readline()  # "ready": the pages are open (the state answered)
            started, cpu = time.perf_counter(), cpu_seconds()
            pipeline.run()
            elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        finally:
            if viewers is not None:
                viewers.terminate()
                viewers.communicate()
            if server is not None:
                server.close()
    stats = pipeline.snapshot()
    age = stats.sources["clip"].frame_age_s
    return {"fps": stats.frames_inferred / elapsed, "cpu_ms": cpu / stats.frames_inferred * 1000,
            "cores": cpu / elapsed, "age_p50": (age["p50"] or 0) * 1000, "age_p99": (age["p99"] or 0) * 1000,
            "pictures": (page.pictures_made if page else 0) / elapsed}


def cpu_seconds() -> float:
    """CPU time of this process, every thread (the pipeline's, the collector's, the HTTP server's)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def view(port: int, viewers: int) -> None:
    """`viewers` pages' worth of asking, until killed: what live.js asks, as often."""
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> bytes:
        with urllib.request.urlopen(base + path, timeout=10) as answer:
            return answer.read()

    def page() -> None:
        shown: dict[str, int] = {}
        thumbnails: set[str] = set()
        while True:
            state = json.loads(get("/live/state"))
            for source in state["sources"]:
                frame = source["frame"]
                if frame and shown.get(source["name"]) != frame["id"]:
                    try:
                        get(frame["url"])
                    except OSError:
                        pass  # gone already: a page waits for the next state
                    shown[source["name"]] = frame["id"]
            for collector in state["collectors"]:
                for datapoint in collector["latest"]:
                    if datapoint["id"] not in thumbnails:
                        get(datapoint["url"])
                        thumbnails.add(datapoint["id"])
            time.sleep(state["refresh_ms"] / 1000)

    get("/live")
    get("/live/state")
    for _ in range(viewers):
        threading.Thread(target=page, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


def picture_cost(clip: Path, repeats: int = 30) -> tuple[list[float], list[float]]:
    """ms per picture of a 1080p frame, 640 px wide: preview (scaled, then converted) against bgr() + resize."""
    import av
    import cv2

    from framesift.frames import Frame

    with av.open(str(clip)) as container:
        decoded = next(container.decode(video=0))
    scaled, full = [], []
    for _ in range(repeats):
        frame = Frame("clip", 0, datetime.now(timezone.utc), 0.0, None, decoded)
        started = time.perf_counter()
        cv2.imencode(".jpg", frame.preview(640, 360), [cv2.IMWRITE_JPEG_QUALITY, 80])
        scaled.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        small = cv2.resize(frame.bgr(), (640, 360), interpolation=cv2.INTER_AREA)
        cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
        full.append((time.perf_counter() - started) * 1000)
    return scaled, full


def summary(values: list[float], digits: int = 1) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main() -> str:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        clip = write_demo_video(work / "clip.mp4", frames=FRAMES, width=SIZE[0], height=SIZE[1])
        run_once(clip, work / "warm-up", "closed", live=False)  # the model's first session, the page cache
        results: dict[tuple[str, bool], list[dict[str, float]]] = {}
        for trial in range(RUNS):
            for live in (False, True):
                for k in range(len(MODES)):  # interleaved, each mode first in turn
                    mode = MODES[(trial + k) % len(MODES)]
                    results.setdefault((mode, live), []).append(
                        run_once(clip, work / f"{trial}-{live}-{k}", mode, live))
        scaled, full = picture_cost(clip)

    def column(mode: str, live: bool, key: str) -> list[float]:
        return [r[key] for r in results[(mode, live)]]

    def ratio(mode: str, live: bool, key: str) -> str:
        return f"{statistics.median(column(mode, live, key)) / statistics.median(column('no page', live, key)):.3f}"

    fast, slow = [], []
    for mode in MODES:
        pictures = summary(column(mode, False, "pictures")) if mode.startswith("open") else "–"
        fast.append(f"| {mode} | {summary(column(mode, False, 'fps'))} | {ratio(mode, False, 'fps')} | "
                    f"{summary(column(mode, False, 'cpu_ms'), 2)} | {ratio(mode, False, 'cpu_ms')} | {pictures} |")
        slow.append(f"| {mode} | {summary(column(mode, True, 'fps'))} | {summary(column(mode, True, 'age_p50'), 0)} | "
                    f"{summary(column(mode, True, 'age_p99'), 0)} | {summary(column(mode, True, 'cores'), 3)} | "
                    f"{ratio(mode, True, 'cores')} |")
    return "\n".join([
        f"## The live page: the stream with the page open and closed (1080p demo clip, demo model, "
        f"`configs/demo.yaml`; median (min–max of {RUNS}), interleaved)",
        "",
        f"Read as fast as possible ({READ} frames):",
        "",
        "| page | fps | ratio to no page | CPU ms per frame (framesift's process) | ratio | pictures made per second |",
        "|---|---|---|---|---|---|",
        *fast,
        "",
        f"Replayed live at 30 fps ({LIVE_S} s):",
        "",
        "| page | fps | frame age p50 (ms) | p99 (ms) | CPU (cores, framesift's process) | ratio |",
        "|---|---|---|---|---|---|",
        *slow,
        "",
        "One picture of a 1080p frame, 640×360 JPEG, on the HTTP server's thread (ms, median (min–max of 30)):",
        "",
        "| scaled before converted (`Frame.preview`, the page's) | full BGR conversion + resize |",
        "|---|---|",
        f"| {summary(scaled, 2)} | {summary(full, 2)} |",
    ])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "view":
        view(int(sys.argv[2]), int(sys.argv[3]))
    else:
        print(main())
