"""One measured run, in its own process, printing one JSON line (the suite reads it; peak RSS comes from wait4).

Modes:
- `pipeline`: framesift's Pipeline (+ Collector when `--config` is given) over a file or a live URL;
- `decode`:   PyAV demux + decode only;
- `model`:    the model with its preprocessing only, over decoded frames held in memory;
- `handloop`: what a user writes by hand: OpenCV read -> letterbox -> ONNX Runtime -> inline JPEG write of the
  frames a random 10 % / close-to-threshold rule samples.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run_pipeline(args: argparse.Namespace) -> dict:
    from framesift.collectors import Collector, LocalDataset, load_config
    from framesift.models import load_model
    from framesift.pipeline.pipeline import Pipeline
    from framesift.stream import SourceOptions
    model = load_model(args.model, device=args.device, confidence=args.confidence)
    if args.square:  # a dynamic-size export fed the 640×640 square, as before issue 24's rectangular inputs
        model.fit_frames = False
    collector = None
    work = tempfile.mkdtemp(prefix="framesift-bench-")
    if args.config:
        collector = Collector(load_config(args.config), LocalDataset(Path(work) / "ds"), seed=0)
    first: list[float] = []
    ages: list[float] = []

    def on_prediction(frame, prediction) -> None:
        now = time.monotonic()
        if not first:
            first.append(time.time())
        ages.append(now - frame.received)

    options = SourceOptions(realtime=args.realtime, decode_all=args.decode_all, keyframe_draws=args.keyframe_draws)
    # --as-run: no prediction callback, as `framesift run` has none: a replay whose sampling does not look at
    # images then decodes only its sampled frames. The first prediction is then seen by polling the counters.
    pipeline = Pipeline([args.source], model, collector, options=options,
                        on_prediction=[] if args.as_run else [on_prediction], duration=args.duration)
    started = time.monotonic()
    pipeline.start()
    while args.as_run and not first and not pipeline.join(0.002):
        if pipeline.snapshot().frames_inferred:
            first.append(time.time())
    pipeline.join()
    elapsed = time.monotonic() - started
    pipeline.close(drain_timeout=30)
    snap = pipeline.snapshot()
    read = snap.frames_inferred + snap.frames_unsampled  # frames of the file gone through, decoded or not
    out = {"frames": read, "fps": read / elapsed, "frames_decoded": snap.frames_decoded,
           "dropped": snap.frames_dropped, "first_prediction_s": first[0] - args.t0 if first else None,
           "age_p50": _percentile(ages, 50), "age_p99": _percentile(ages, 99)}
    if snap.collectors:
        c = snap.collected()
        out.update(datapoints_sampled=c.datapoints_sampled, datapoints_registered=c.datapoints_registered,
                   datapoints_dropped=c.datapoints_dropped)
    return out


def run_decode(args: argparse.Namespace) -> dict:
    import av

    started, frames = time.monotonic(), 0
    with av.open(args.source) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            frames += 1
    return {"frames": frames, "fps": frames / (time.monotonic() - started)}


def run_model(args: argparse.Namespace) -> dict:
    import av

    from framesift.models import load_model

    model = load_model(args.model, device=args.device, confidence=args.confidence)
    with av.open(args.source) as container:
        decoded = [f for _, f in zip(range(100), container.decode(video=0), strict=False)]
    model.infer([model.prepare(decoded[0])])  # warm-up
    started = time.monotonic()
    for frame in decoded:
        model.infer([model.prepare(frame)])
    return {"frames": len(decoded), "fps": len(decoded) / (time.monotonic() - started)}


def run_handloop(args: argparse.Namespace) -> dict:
    import cv2
    import numpy as np

    from framesift.models import load_model

    model = load_model(args.model, device=args.device, confidence=args.confidence)  # the same session and decoding
    out_dir = Path(tempfile.mkdtemp(prefix="handloop-"))
    capture = cv2.VideoCapture(args.source)
    rng = random.Random(0)
    frames = saved = 0
    first = None
    started = time.monotonic()
    while True:
        ok, image = capture.read()
        if not ok:
            break
        prepared = model.prepare(image)  # OpenCV letterbox of the full BGR frame
        prediction = model.infer([prepared])[0]
        if first is None:
            first = time.time()
        confidences = getattr(prediction, "confidence", np.zeros(0))
        if rng.random() < 0.1 or bool((np.abs(confidences - 0.5) < 0.2).any()):
            cv2.imwrite(str(out_dir / f"{frames}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            (out_dir / f"{frames}.json").write_text(json.dumps(prediction.to_json()))
            saved += 1
        frames += 1
    return {"frames": frames, "fps": frames / (time.monotonic() - started), "saved": saved,
            "first_prediction_s": first - args.t0 if first else None}


def _percentile(values: list[float], q: float) -> float | None:
    import numpy as np

    return float(np.percentile(values, q)) if values else None


MODES = {"pipeline": run_pipeline, "decode": run_decode, "model": run_model, "handloop": run_handloop}

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("source")
    parser.add_argument("--model", default="stub")
    parser.add_argument("--config")
    parser.add_argument("--confidence", type=float, default=0.25)
    parser.add_argument("--device", default="cpu", help="where the model runs (framesift's --device)")
    parser.add_argument("--realtime", action="store_true")
    parser.add_argument("--duration", type=float)
    parser.add_argument("--decode-all", action="store_true", help="decode every frame (pipeline mode)")
    parser.add_argument("--keyframe-draws", action="store_true", help="sampled GOPs give their keyframe (pipeline)")
    parser.add_argument("--square", action="store_true", help="feed a dynamic-size export its square (pipeline)")
    parser.add_argument("--as-run", action="store_true", help="no prediction callback, as `framesift run` (pipeline)")
    parser.add_argument("--t0", type=float, default=time.time(), help="when the command started (time.time())")
    arguments = parser.parse_args()
    result = MODES[arguments.mode](arguments)
    result["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
