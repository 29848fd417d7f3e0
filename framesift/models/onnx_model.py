"""An Ultralytics ONNX export run by ONNX Runtime (plain or end-to-end): letterbox in, predictions in frame pixels
out.

Example:
    >>> model = OnnxModel("yolov8n.onnx", confidence=0.3)        # doctest: +SKIP
    >>> [prediction] = model.predict([frame_bgr])                 # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from framesift import defaults
from framesift.errors import ModelError
from framesift.models.layouts import identify_layout, input_geometry
from framesift.models.letterbox import Letterbox, rectangular_input, tensor_from_av, tensor_from_bgr
from framesift.models.metadata import ModelMetadata, keypoint_names
from framesift.models.postprocess import (
    class_probabilities,
    keypoints_to_frame,
    label_scores,
    mask_polygons,
    select_boxes,
    select_rows,
)
from framesift.models.session import create_session
from framesift.predictions import ClassificationPrediction, DetectionPrediction, Prediction

log = logging.getLogger(__name__)
DEFAULT_STRIDE = 32  # a dynamic-size export's stride when its metadata does not say (YOLOv5-v11, YOLO26: 32)


@dataclass(frozen=True)
class ModelInput:
    """One frame made ready for the model: the `(3, H, W)` tensor and where the frame sits in it."""

    tensor: np.ndarray
    letterbox: Letterbox


class OnnxModel:
    """A detection, segmentation, pose or classification export, with its task, classes and input geometry.

    NMS is class-aware unless `class_agnostic`, over at most `max_candidates` boxes. A `multi_label` classifier's
    scores are independent per class (a sigmoid applied when the export gives logits): its predicted classes are
    those at or above `confidence`.

    A dynamic-size export is fed each frame at the frame's aspect ratio while `rectangular` (`input_for`): on the
    CPU, for frames; a model on crops (`Workflow` turns it off there) and a model on a GPU keep the square."""

    def __init__(self, path: str, *, device: str = defaults.DEVICE, confidence: float = defaults.CONFIDENCE,
                 iou: float = defaults.IOU, class_names: Sequence[str] | None = None, model_id: str | None = None,
                 max_detections: int = defaults.MAX_DETECTIONS, class_agnostic: bool = False,
                 max_candidates: int = defaults.MAX_CANDIDATES,
                 multi_label: bool = False):
        if not 0 <= confidence <= 1 or not 0 <= iou <= 1:
            raise ModelError("confidence and iou thresholds must be between 0 and 1")
        self._session, self.device = create_session(path, device)
        meta = ModelMetadata.from_map(self._session.get_modelmeta().custom_metadata_map)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        self.layout = identify_layout([i.shape for i in inputs], [o.shape for o in outputs], meta)
        self.task_type = self.layout.task_type
        if multi_label and self.task_type != "classification":
            raise ModelError(f"{path} is a {self.task_type} model, not a (multi-label) classifier")
        self.multi_label, self.class_agnostic, self.max_candidates = multi_label, class_agnostic, max_candidates
        names = list(class_names) if class_names is not None else meta.names
        count = self.layout.num_classes
        if count is None:  # an end-to-end export: its shapes do not say how many classes it has
            if names is None:
                raise ModelError(f"{path} is an end-to-end export without names metadata: give its class names "
                                 "(--classes FILE, one per line)")
            count = len(names)
        if names is not None and len(names) != count:
            raise ModelError(f"{len(names)} class names given for a model of {count} classes")
        self.class_names = names or [str(i) for i in range(count)]
        self.keypoint_names = keypoint_names(meta, self.layout.kpt_shape[0]) if self.layout.kpt_shape else None
        geometry = input_geometry(inputs[0].shape, meta)
        self.input_size = (geometry.width, geometry.height)
        self.max_batch = geometry.max_batch
        self._static_batch = geometry.static_batch
        # every run gets exactly this many images, filled up (`_filled`): a static export's N, and on a GPU the one
        # size `fix_batch` chose; else (None) any number up to `max_batch`
        self.call_batch: int | None = geometry.max_batch if geometry.static_batch else None
        self._batches: dict[tuple[int, ...], np.ndarray] = {}  # per image shape, the array runs are given (`_filled`)
        self._filling = threading.Lock()
        # whether the GPU's batching applies (`fix_batch`, `Workflow.fix_batches`): set from the device; tests set it
        # on a CPU session to run that path
        self.on_gpu = self.device != "cpu"
        self.dynamic_size, self.stride = geometry.dynamic_size, meta.stride or DEFAULT_STRIDE
        # frames go in at their own aspect ratio (`input_for`); the workflow turns this off for a model on crops
        self.fit_frames = True
        self.path = path
        self.model_id = model_id or Path(path).stem
        self.confidence, self.iou, self.max_detections = confidence, iou, max_detections
        self._input_name = inputs[0].name
        self._input_type = np.float16 if inputs[0].type == "tensor(float16)" else np.float32  # a `half` export's
        self._run_blank("its first run")

    def fix_batch(self, size: int) -> int:
        """Give every later run `size` images (at most `max_batch`; a static export keeps its N), filled up as
        needed (`_filled`), and run one such batch now: on a GPU the first frames then do not wait for that shape's
        planning, and no later frame ever does. Returns the size in use."""
        batch = self.max_batch if self._static_batch else max(1, min(size, self.max_batch))
        self.call_batch = batch
        self._run_blank(f"a batch of {batch}")
        return batch

    def _run_blank(self, what: str) -> None:
        """Run the network on a blank frame (in a run of `call_batch`, when set). A model that fails at run time,
        or a device that loaded without being able to run it (a GPU wheel without kernels for this GPU), is refused
        now in one sentence instead of failing on every frame; TensorRT builds its engines here."""
        width, height = self.input_size
        started = time.monotonic()
        try:
            self.predict([np.zeros((height, width, 3), np.uint8)])
        except Exception as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ModelError(f"{self.path} loaded but failed {what} on {self.device}: {message}") from None
        took = time.monotonic() - started
        log.log(logging.INFO if took >= 1 else logging.DEBUG, "model %s ran %s in %.1f s", self.path, what, took)

    @property
    def rectangular(self) -> bool:
        """Whether a frame goes in at its own aspect ratio: a dynamic-size export on the CPU, fed frames. On a GPU
        the square stays: every call there has one fixed shape (`fix_batch`), and a source's size is known only
        once it connects."""
        return self.dynamic_size and self.fit_frames and not self.on_gpu

    def input_for(self, frame_w: int, frame_h: int) -> tuple[int, int]:
        """The (width, height) a frame of `frame_w` × `frame_h` is fed at: `input_size`, or while `rectangular`
        the frame's aspect ratio within it, each side rounded up to the model's stride (1920×1080 into a 640
        export: 640×384). One size per frame size, so a source's frames all share one shape."""
        if not self.rectangular:
            return self.input_size
        return rectangular_input(frame_w, frame_h, *self.input_size, self.stride)

    def letterbox(self, frame_w: int, frame_h: int) -> Letterbox:
        return Letterbox.fit(frame_w, frame_h, *self.input_for(frame_w, frame_h))

    def prepare(self, frame: Any) -> ModelInput:
        """The model input from a BGR array or a PyAV `VideoFrame` (scaled and converted in one step)."""
        if isinstance(frame, np.ndarray):
            box = self.letterbox(frame.shape[1], frame.shape[0])
            return ModelInput(tensor_from_bgr(frame, box), box)
        box = self.letterbox(frame.width, frame.height)
        return ModelInput(tensor_from_av(frame, box), box)

    def infer(self, inputs: Sequence[ModelInput]) -> list[Prediction]:
        """Predictions for prepared inputs, in order: the inputs of each shape (rectangular ones of frames of
        different sizes differ) in runs of `call_batch` images (the last filled up: nothing is predicted for what
        filled it), else of up to `max_batch`."""
        predictions: dict[int, Prediction] = {}
        size = self.call_batch or self.max_batch
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for k, item in enumerate(inputs):
            by_shape.setdefault(item.tensor.shape, []).append(k)
        for indices in by_shape.values():
            for start in range(0, len(indices), size):
                chunk = indices[start:start + size]
                with self._filling:  # one run at a time fills the batch array
                    outputs = self.run(self._filled([inputs[k].tensor for k in chunk]))
                for j, k in enumerate(chunk):
                    predictions[k] = self.decode([o[j] for o in outputs], inputs[k].letterbox)
        return [predictions[k] for k in range(len(inputs))]

    def _filled(self, tensors: list[np.ndarray]) -> np.ndarray:
        """The batch of one run: `tensors`, then up to `call_batch` the images that fill it, in the model's input
        type (all of one shape). One array per shape is kept from run to run: the filling images (blank at first,
        then what earlier runs left) cost nothing, and their outputs are never read. A new batch of 16 each run cost
        6-8 ms of the inference thread for one frame, the kept one 0.1 ms ("the batch of a fixed-size run",
        benchmarks/RESULTS.md)."""
        if self.call_batch is None and len(tensors) == 1:
            return tensors[0][None]  # no copy
        size, shape = self.call_batch or len(tensors), tensors[0].shape
        batch = self._batches.get(shape)
        if batch is None or len(batch) < size:
            batch = self._batches[shape] = np.zeros((size, *shape), self._input_type)
        for k, tensor in enumerate(tensors):
            batch[k] = tensor
        return batch[:size]

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """The raw outputs of the network for a `(B, 3, H, W)` batch, as float32 (whatever the export's type)."""
        outputs = self._session.run(None, {self._input_name: batch.astype(self._input_type, copy=False)})
        return [output.astype(np.float32, copy=False) for output in outputs]

    def predict(self, frames: Sequence[Any]) -> list[Prediction]:
        """Predictions for BGR arrays or PyAV frames."""
        return self.infer([self.prepare(f) for f in frames])

    def decode(self, outputs: list[np.ndarray], box: Letterbox) -> Prediction:
        """One image's raw outputs (batch axis removed) as a prediction in frame pixels."""
        size = (box.frame_w, box.frame_h)
        if self.multi_label:
            scores = label_scores(outputs[0])
            return ClassificationPrediction(self.model_id, size, self.class_names, scores, multi_label=True,
                                            predicted_classes=[name for name, score in zip(
                                                self.class_names, scores, strict=True) if score >= self.confidence])
        if self.task_type == "classification":
            probabilities = class_probabilities(outputs[0])
            return ClassificationPrediction(self.model_id, size, self.class_names, probabilities)
        raw = outputs[0]
        if self.layout.end_to_end:
            kept, xyxy, score, class_id, candidate_score, candidate_class = select_rows(
                raw, self.confidence, self.max_detections)
            extra = raw[kept, 6:]
            if candidate_class.size and not 0 <= candidate_class.min() <= candidate_class.max() < len(
                    self.class_names):
                raise ModelError(f"the model predicted class {int(candidate_class.max())}, but it has "
                                 f"{len(self.class_names)} class names")
        else:
            nc = len(self.class_names)
            kept, xyxy, score, class_id, candidate_score, candidate_class = select_boxes(
                raw, nc, self.confidence, self.iou, self.max_detections, class_agnostic=self.class_agnostic,
                max_candidates=self.max_candidates)
            extra = raw[4 + nc:, kept].T
        polygons = mask_polygons(extra, outputs[1], xyxy, box) if self.layout.num_prototypes else None
        keypoints = keypoints_to_frame(extra, self.layout.kpt_shape, box) if self.layout.kpt_shape else None
        return DetectionPrediction(
            task_type=self.task_type, model_id=self.model_id, image_size=size, xyxy=box.to_frame(xyxy),
            confidence=score.astype(np.float32), class_id=class_id.astype(np.int64),
            class_name=[self.class_names[c] for c in class_id], polygons=polygons, keypoints=keypoints,
            keypoint_names=self.keypoint_names, candidate_score=candidate_score.astype(np.float32),
            candidate_class=[self.class_names[c] for c in candidate_class])
