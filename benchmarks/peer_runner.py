"""The peer, measured: Roboflow Inference's `InferencePipeline.init_with_custom_logic`, run by the peer's own
virtual environment (`benchmarks/install_peer.sh`). Prints one JSON line, like `runner.py`.

`on_video_frame` does what a user would write: an OpenCV letterbox, an ONNX Runtime session created with its
defaults, NumPy + OpenCV NMS to decode; active learning is bolted on as the sink: a sampled frame is written as a
JPEG with its predictions, inline. `--model stub` runs no model (dataset bootstrapping).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

DEMO_MODEL = Path(__file__).resolve().parents[1] / "framesift" / "models" / "assets" / "demo-shapes.onnx"


class UserModel:
    """What a user writes around an Ultralytics detection export."""

    def __init__(self, path: str, confidence: float = 0.25):
        import onnxruntime as ort

        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0]
        height = self.input.shape[2]
        self.size = height if isinstance(height, int) else 640  # a dynamic export: the size it was exported at
        self.confidence = confidence

    def __call__(self, image: np.ndarray) -> list[dict]:
        h, w = image.shape[:2]
        r = min(self.size / h, self.size / w)
        nw, nh = round(w * r), round(h * r)
        top, left = (self.size - nh) // 2, (self.size - nw) // 2
        resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        padded = cv2.copyMakeBorder(resized, top, self.size - nh - top, left, self.size - nw - left,
                                    cv2.BORDER_CONSTANT, value=(114, 114, 114))
        blob = cv2.dnn.blobFromImage(padded, 1 / 255.0, swapRB=True)
        output = self.session.run(None, {self.input.name: blob})[0][0].T  # (N, 4 + nc)
        scores = output[:, 4:]
        class_id = scores.argmax(1)
        conf = scores[np.arange(len(scores)), class_id]
        keep = conf >= self.confidence
        boxes = output[keep, :4]
        xywh = np.column_stack([(boxes[:, 0] - boxes[:, 2] / 2 - left) / r, (boxes[:, 1] - boxes[:, 3] / 2 - top) / r,
                                boxes[:, 2] / r, boxes[:, 3] / r])
        kept = cv2.dnn.NMSBoxes(xywh.tolist(), conf[keep].tolist(), self.confidence, 0.45)
        return [{"x": float(xywh[i, 0] + xywh[i, 2] / 2), "y": float(xywh[i, 1] + xywh[i, 3] / 2),
                 "width": float(xywh[i, 2]), "height": float(xywh[i, 3]), "confidence": float(conf[keep][i]),
                 "class_id": int(class_id[keep][i])} for i in np.asarray(kept).reshape(-1)]


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("--model", default="stub")
    parser.add_argument("--sample", type=float, default=0.1, help="random share of frames to save")
    parser.add_argument("--duration", type=float)
    parser.add_argument("--t0", type=float, default=time.time())
    args = parser.parse_args()

    from inference import InferencePipeline

    path = {"stub": None, "demo": str(DEMO_MODEL)}.get(args.model, args.model)
    model = UserModel(path, 0.5 if args.model == "demo" else 0.25) if path else None
    out_dir = Path(tempfile.mkdtemp(prefix="peer-"))
    rng = random.Random(0)
    state = {"frames": 0, "first": None, "ages": [], "ids": [], "saved": 0}

    def on_video_frame(frames):
        return [model(f.image) if model else [] for f in frames]

    def on_prediction(predictions, frames):
        if not isinstance(frames, list):
            predictions, frames = [predictions], [frames]
        now = datetime.now()
        for prediction, frame in zip(predictions, frames, strict=False):
            if frame is None:
                continue
            state["frames"] += 1
            state["first"] = state["first"] or time.time()
            state["ages"].append((now - frame.frame_timestamp).total_seconds())
            state["ids"].append(frame.frame_id)
            close = any(abs(p["confidence"] - 0.5) < 0.2 for p in prediction or [])
            if rng.random() < args.sample or (model is not None and args.sample > 0 and close):
                cv2.imwrite(str(out_dir / f"{frame.frame_id}.jpg"), frame.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
                (out_dir / f"{frame.frame_id}.json").write_text(json.dumps(prediction))
                state["saved"] += 1

    pipeline = InferencePipeline.init_with_custom_logic(video_reference=args.source, on_video_frame=on_video_frame,
                                                        on_prediction=on_prediction)
    started = time.monotonic()
    pipeline.start(use_main_thread=False)
    if args.duration:
        time.sleep(args.duration)
        pipeline.terminate()
    pipeline.join()
    elapsed = time.monotonic() - started
    ids = state["ids"]
    ages = state["ages"]
    return {"frames": state["frames"], "fps": state["frames"] / elapsed,
            "first_prediction_s": state["first"] - args.t0 if state["first"] else None,
            "dropped": (max(ids) - min(ids) + 1 - len(ids)) if ids else 0, "saved": state["saved"],
            "age_p50": float(np.percentile(ages, 50)) if ages else None,
            "age_p99": float(np.percentile(ages, 99)) if ages else None,
            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


if __name__ == "__main__":
    print(json.dumps(main()))
