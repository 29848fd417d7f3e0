"""Rectangular inputs (issue 24): YOLOv8n's dynamic-size export on live 16:9 cameras, fed each frame at its own
aspect ratio (640×384) against the 640×640 square it was fed before, runs interleaved.

- ONNX Runtime alone: one image through `OnnxModel.run` at 640×640 and at 640×384, ms, median (min–max), the two
  sizes alternating;
- live: `many_cameras.py`'s framesift run (720p RTSP cameras at 30 fps, a keyframe every second) with the model as
  it is now and with `--square` (`fit_frames` off: the square), the two alternating, each run its own process: frames
  inferred per second in all, frame age p50, and per pair the ratio rectangle ÷ square.

The machine may be shared: nothing waits for it to be quiet here (the pairs alternate so both sides see the same
load); each row says how many cores the rest of the machine used during the run (`others`).

Run: `python benchmarks/rectangular.py [--sources 1] [--pairs 3] [--duration 12]` (starts its own RTSP server on
127.0.0.1). Prints a Markdown section.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.many_cameras import SIZE, YOLO, camera_clip  # noqa: E402
from benchmarks.run import machine  # noqa: E402


def runtime_rows(repeats: int = 20) -> list[str]:
    """ONNX Runtime alone on one image of each size, the sizes alternating."""
    import numpy as np

    from framesift.models import load_model

    model = load_model(str(YOLO), device="cpu")
    batches = {size: np.zeros((1, 3, size[1], size[0]), np.float32) for size in ((640, 640), (640, 384))}
    samples: dict[tuple[int, int], list[float]] = {size: [] for size in batches}
    for batch in batches.values():
        model.run(batch)  # its first run of this shape plans it
    for _ in range(repeats):
        for size, batch in batches.items():
            started = time.perf_counter()
            model.run(batch)
            samples[size].append((time.perf_counter() - started) * 1000)
    medians = {size: statistics.median(values) for size, values in samples.items()}
    return [f"| {w}×{h} | {medians[w, h]:.1f} ({min(samples[w, h]):.1f}–{max(samples[w, h]):.1f}) | "
            f"{medians[640, 640] / medians[w, h]:.2f}× |" for w, h in batches]


def live_run(url: str, sources: int, duration: float, square: bool) -> dict[str, Any]:
    command = [sys.executable, str(HERE / "many_cameras.py"), "--child", "framesift", "--url", url, "--sources",
               str(sources), "--model", str(YOLO), "--duration", str(duration), *(["--square"] if square else [])]
    done = subprocess.run(command, capture_output=True, text=True, cwd=HERE.parent, env=dict(os.environ))
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(sources: int = 1, pairs: int = 3, duration: float = 12.0) -> str:
    from tests.servers import RtspServer, free_port

    lines = ["## Rectangular inputs: YOLOv8n dynamic-size export on 16:9 sources (issue 24)", "",
             machine(), f"`python benchmarks/rectangular.py --sources {sources} --pairs {pairs} --duration "
             f"{duration:.0f}`; how each figure is obtained: its docstring.", "",
             "| input | ONNX Runtime, ms per image | faster than the square |", "|---|---|---|", *runtime_rows(), "",
             f"{sources} live {SIZE[0]}×{SIZE[1]} camera(s), runs of {duration:.0f} s, rectangle and square "
             "alternating:", "",
             "| pair | input | inferred fps, total | age p50, s | age p99, s | CPU | others (cores) | fps ratio | "
             "age p50 ratio |", "|---|---|---|---|---|---|---|---|---|"]
    server = RtspServer(free_port(), size=(*SIZE, 30), video=camera_clip())
    server.start()
    ratios: list[tuple[float, float]] = []
    try:
        for pair in range(1, pairs + 1):
            runs = {}
            for square in (pair % 2 == 0, pair % 2 != 0):  # which goes first alternates too
                runs[square] = live_run(server.url, sources, duration, square)
            fps, age = (runs[False]["fps"] / runs[True]["fps"], runs[False]["age_p50"] / runs[True]["age_p50"])
            ratios.append((fps, age))
            for square in (True, False):
                r = runs[square]
                lines.append(f"| {pair} | {'640×640 (before)' if square else '640×384 (now)'} | {r['fps']:.2f} | "
                             f"{r['age_p50']:.3f} | {r['age_p99']:.3f} | {r['cpu']:.2f} | {r['others']:.2f} | "
                             + (f"{fps:.2f}× | {age:.2f}× |" if not square else " | |"))
                print(lines[-1], file=sys.stderr, flush=True)
    finally:
        server.stop()
    fps, age = (statistics.median(r[k] for r in ratios) for k in (0, 1))
    lines += ["", f"Median of the pairs: {fps:.2f}× the frames inferred per second, frame age p50 {age:.2f}× "
              "(rectangle ÷ square)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sources", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=12.0)
    arguments = parser.parse_args()
    print(main(arguments.sources, arguments.pairs, arguments.duration))
