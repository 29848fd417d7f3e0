"""The embedded default: a generated sample video, run through framesift, collected into a folder.

`write_demo_video(path)` makes a short H.264 clip of coloured squares moving over a textured background (the
scene the bundled demo model knows). `run_demo(out_dir)` runs the whole pipeline over it.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from framesift.runner import RunSummary

SHAPE_COLOURS_BGR = {"red": (40, 40, 220), "green": (40, 200, 40), "blue": (220, 60, 30)}


def demo_frame(index: int, width: int = 640, height: int = 480) -> np.ndarray:
    """Frame `index` of the demo scene (BGR): a drifting gradient with noise, and squares moving on circles."""
    import cv2

    y, x = np.mgrid[0:height, 0:width]
    base = ((x + 3 * index) % 256 * 0.3 + (y % 64) * 0.8 + 60).astype(np.uint8)
    frame = cv2.merge([base, base, base])
    rng = np.random.default_rng(index)
    frame = cv2.add(frame, rng.integers(0, 24, frame.shape, dtype=np.uint8))
    for name, (x1, y1, x2, y2) in demo_squares(index, width, height):
        cv2.rectangle(frame, (x1, y1), (x2, y2), SHAPE_COLOURS_BGR[name], -1)
    return frame


def demo_squares(index: int, width: int = 640, height: int = 480) -> list[tuple[str, tuple[int, int, int, int]]]:
    """The squares of frame `index` as (colour, xyxy), in the order they are drawn (a later one covers an earlier)."""
    squares = []
    for k, name in enumerate(SHAPE_COLOURS_BGR):
        for j in range(1 + (index // 40 + k) % 3):  # the number of shapes changes over time
            angle = index / 25 + k * 2.1 + j * 1.7
            cx = int(width / 2 + (width / 3) * math.cos(angle))
            cy = int(height / 2 + (height / 3) * math.sin(angle * 1.3))
            half = int(18 + 10 * (k + j) + 6 * math.sin(index / 10 + j))
            squares.append((name, (cx - half, cy - half, cx + half, cy + half)))
    return squares


def write_demo_video(path: str | os.PathLike[str], frames: int = 150, width: int = 640, height: int = 480,
                     fps: int = 30) -> Path:
    """Write the demo scene as an H.264 MP4 with PyAV; returns the path."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(demo_frame(i, width, height), format="bgr24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def run_demo(out_dir: str | os.PathLike[str] = "framesift-demo", seed: int = 0,
             stop: threading.Event | None = None) -> RunSummary:
    """Generate the sample video and run the bundled demo model over it through the whole pipeline, collecting
    with `configs/demo.yaml` into `out_dir/dataset`, then write the dataset's report (`out_dir/dataset/report.html`).
    Returns the run's summary."""
    from framesift.configs import path as config_path
    from framesift.report import write_report
    from framesift.runner import RunOptions, run

    out = Path(out_dir)
    video = write_demo_video(out / "sample.mp4")
    config = str(config_path("demo.yaml"))
    summary = run(RunOptions(sources=[str(video)], model="demo", al_config=config,
                             target=str(out / "dataset"), seed=seed, predictions=str(out / "predictions.jsonl"),
                             summary=str(out / "summary.json")), stop=stop)
    write_report(out / "dataset", summary=out / "summary.json", al_config=config)
    return summary
