"""Per-frame cost of the model stages for the YOLOv8n detection export at three frame sizes.

Compares the stream's path — the decoded frame scaled and converted to RGB in one swscale step by PyAV — with the
usual one: a full-resolution BGR array first, then an OpenCV letterbox. Frames are decoder-shaped (yuv420p).
Run: `python benchmarks/models.py [--model PATH]`. Prints a Markdown section.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framesift.demo import demo_frame  # noqa: E402
from framesift.models import load_model  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "models" / "yolov8n-random-static.onnx"
SIZES = [(640, 480), (1280, 720), (1920, 1080)]


def timed_ms(fn, repeats: int) -> tuple[float, float, float, object]:
    samples, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), min(samples), max(samples), result


def fmt(t: tuple) -> str:
    return f"{t[0]:.2f} ({t[1]:.2f}–{t[2]:.2f})"


def main(model_path: Path = REFERENCE, repeats: int = 30) -> str:
    import av

    if not model_path.is_file():
        return f"## Model stages\n\nskipped: {model_path} not found (pass --model)\n"
    model = load_model(str(model_path), device="cpu", confidence=0.25)
    lines = [f"## Model stages: `{model_path.name}` on the CPU, ms per frame, median (min–max of {repeats})", "",
             "| frame | preprocessing, decoded frame scaled then converted "
             "| preprocessing, full BGR + OpenCV letterbox | speed-up | "
             "inference | post-processing |", "|---|---|---|---|---|---|"]
    for width, height in SIZES:
        decoded = av.VideoFrame.from_ndarray(demo_frame(0, width, height), format="bgr24").reformat(format="yuv420p")
        one_step = timed_ms(lambda d=decoded: model.prepare(d), repeats)
        two_step = timed_ms(lambda d=decoded: model.prepare(d.to_ndarray(format="bgr24")), repeats)
        prepared = one_step[3]
        batch = prepared.tensor[None]
        inference = timed_ms(lambda b=batch: model.run(b), repeats)
        outputs = [o[0] for o in inference[3]]
        post = timed_ms(lambda o=outputs, p=prepared: model.decode(o, p.letterbox), repeats)
        lines.append(f"| {width}×{height} | {fmt(one_step)} | {fmt(two_step)} | "
                     f"{two_step[0] / one_step[0]:.2f}× faster | {fmt(inference)} | {fmt(post)} |")
    lines += ["", "Post-processing is for this export's random weights (almost no boxes pass 0.25); a trained "
              "model adds NMS over its candidates (about 1 ms for 500)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=REFERENCE)
    print(main(parser.parse_args().model))
