"""Model steps: `ObjectDetectionModel`, `InstanceSegmentationModel`, `KeypointsDetectionModel`,
`ClassificationModel` and `MultiLabelClassificationModel` (and their `Roboflow...Model` names), with `Inferring`,
what every step that runs a model shares: its model is loaded once per run (`framesift.workflows.build`), and on a
batch it infers every image its `image` names — the frames, or the crops of every frame — in as few calls as the
model's batch axis allows.
"""

from __future__ import annotations

import dataclasses
import uuid
from abc import abstractmethod
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import model_validator

from framesift.models.model import Model
from framesift.predictions import DetectionPrediction, Prediction, as_prediction
from framesift.workflows.fields import Classes, Count, Flag, Fraction, Text, or_parameter
from framesift.workflows.step import Batch, Step, StepFailed, register_step

DETECTION_MODELS = {"ObjectDetectionModel": "object-detection", "RoboflowObjectDetectionModel": "object-detection",
                    "InstanceSegmentationModel": "instance-segmentation",
                    "RoboflowInstanceSegmentationModel": "instance-segmentation",
                    "KeypointsDetectionModel": "keypoint-detection",
                    "RoboflowKeypointDetectionModel": "keypoint-detection"}
CLASSIFICATION_MODELS = {"ClassificationModel": "classification", "RoboflowClassificationModel": "classification"}
MULTI_LABEL_MODELS = {"MultiLabelClassificationModel": "classification",
                      "RoboflowMultiLabelClassificationModel": "classification"}
MODEL_TASKS = {**DETECTION_MODELS, **CLASSIFICATION_MODELS, **MULTI_LABEL_MODELS}
DECODE_MODES = ("accurate", "tradeoff", "fast")
# Roboflow's fields each model step type carries beyond `image`, `model_id`, `confidence` and the AL fields
_DETECTION_FIELDS = {"iou_threshold", "class_filter", "max_detections", "class_agnostic_nms", "max_candidates"}
_TYPE_FIELDS = {**{t: _DETECTION_FIELDS for t in DETECTION_MODELS},
                **{t: _DETECTION_FIELDS | {"keypoint_confidence"} for t in DETECTION_MODELS
                   if DETECTION_MODELS[t] == "keypoint-detection"},
                **{t: _DETECTION_FIELDS | {"mask_decode_mode", "tradeoff_factor"} for t in DETECTION_MODELS
                   if DETECTION_MODELS[t] == "instance-segmentation"},
                **{t: {"iou_threshold", "class_filter", "max_detections"} for t in CLASSIFICATION_MODELS},
                **{t: set() for t in MULTI_LABEL_MODELS}}
_OUTPUTS = {**dict.fromkeys(DETECTION_MODELS, ("predictions", "image", "parent_id", "prediction_type")),
            **dict.fromkeys(CLASSIFICATION_MODELS, ("predictions", "top", "confidence", "parent_id",
                                                    "prediction_type")),
            **dict.fromkeys(MULTI_LABEL_MODELS, ("predictions", "predicted_classes", "parent_id", "prediction_type"))}
_COLLECTED = {**dict.fromkeys(DETECTION_MODELS, ("predictions",)), **dict.fromkeys(CLASSIFICATION_MODELS, ("top",)),
              **dict.fromkeys(MULTI_LABEL_MODELS, ("predictions", "predicted_classes"))}


class Inferring(Step):
    """A step that runs a model on an image or on crops: `model_id` and thresholds are read once per run."""

    image: str

    @property
    @abstractmethod
    def task_type(self) -> str:
        """The task its model must do (`object-detection`, `classification`, ...)."""

    @abstractmethod
    def model_id_from(self, value: Any) -> Any:
        """Its model id, given `value` (what turns a field into its value: a parameter's, or itself)."""

    def refusal(self, model: Model, model_id: str, value: Any) -> str | None:
        """Why the model loaded for it (from `model_id`) will not do, beyond its task (one sentence), or None."""
        return None

    def run(self, batch: Batch) -> None:
        workflow = batch.workflow
        model = workflow.models[self.name]
        regions = [values[self.image] for values in batch.values]
        flat = [region for per_frame in regions for region in per_frame]
        inputs = [workflow.model_input(self.name, region) for region in flat]
        predictions: list[Prediction] = []
        for start in range(0, len(inputs), model.max_batch):
            chunk = inputs[start:start + model.max_batch]
            try:
                out = model.infer(chunk)
            except Exception as error:
                raise StepFailed(self.name, error) from error
            if len(out) != len(chunk):
                raise RuntimeError(f"the model {model.model_id!r} returned {len(out)} predictions for {len(chunk)} "
                                   "images")
            predictions += [as_prediction(p, region.size, class_names=model.class_names, model_id=model.model_id)
                            for p, region in zip(out, flat[start:start + len(chunk)], strict=True)]
        classes = workflow.parameter(getattr(self, "class_filter", None))
        if classes is not None:
            predictions = [_only(p, set(classes)) for p in predictions]
        keypoint_confidence = workflow.parameter(getattr(self, "keypoint_confidence", None))
        if keypoint_confidence:  # Roboflow leaves the keypoints below it out of each detection
            predictions = [dataclasses.replace(p, keypoint_confidence=float(keypoint_confidence))
                           if isinstance(p, DetectionPrediction) else p for p in predictions]
        if workflow.gives_ids(self.name):  # a crop says which detection it was cut from: each needs its id now
            predictions = [_with_ids(p) for p in predictions]
        position = 0
        for values, per_frame in zip(batch.values, regions, strict=True):
            values[self.output("predictions")] = predictions[position:position + len(per_frame)]
            position += len(per_frame)


@register_step
class ModelStep(Inferring):
    """Runs a model on an image or on crops. `model_id`: an ONNX file, `demo`, `stub`, or `<dataset>/0` (the
    documented way to ask for a dataset's null model). `class_agnostic_nms`, `max_candidates` and
    `keypoint_confidence` are honoured; `disable_active_learning`, `active_learning_target_dataset`,
    `mask_decode_mode` and `tradeoff_factor` are accepted and have no effect: framesift's model steps never collect
    by themselves, and masks are always decoded at full resolution. Each field only on the step types Roboflow gave
    it (`keypoint_confidence` on keypoint models, ...)."""

    type: Literal[tuple(MODEL_TASKS)]  # type: ignore[valid-type]
    model_id: Text
    confidence: Fraction = None
    iou_threshold: Fraction = None
    class_filter: Classes = None
    max_detections: Count = None
    class_agnostic_nms: Flag = False
    max_candidates: Count = None
    keypoint_confidence: Fraction = None
    mask_decode_mode: Annotated[Any, or_parameter("accurate, tradeoff or fast", DECODE_MODES.__contains__)] = None
    tradeoff_factor: Fraction = None
    disable_active_learning: Flag = False
    active_learning_target_dataset: Text = None

    ONCE: ClassVar[tuple[str, ...]] = ("model_id", "confidence", "iou_threshold", "max_detections", "class_filter",
                                       "class_agnostic_nms", "max_candidates", "keypoint_confidence")

    @classmethod
    def outputs_of(cls, type: str) -> tuple[str, ...]:
        return _OUTPUTS[type]

    @classmethod
    def detections_of(cls, type: str) -> bool:
        return type in DETECTION_MODELS

    @classmethod
    def collected_of(cls, type: str) -> tuple[str, ...]:
        return _COLLECTED[type]

    @model_validator(mode="after")
    def _fields_of_its_type(self) -> ModelStep:
        common = {"type", "name", "image", "model_id", "confidence", "disable_active_learning",
                  "active_learning_target_dataset"}
        foreign = sorted(self.model_fields_set - common - _TYPE_FIELDS[self.type])
        if foreign:
            raise ValueError(f"{self.type} has no field {foreign[0]!r}")
        return self

    @property
    def task_type(self) -> str:
        return MODEL_TASKS[self.type]

    def model_id_from(self, value: Any) -> Any:
        return value(self.model_id)

    @property
    def multi_label(self) -> bool:
        return self.type in MULTI_LABEL_MODELS


def _with_ids(prediction: Prediction) -> Prediction:
    if not isinstance(prediction, DetectionPrediction) or prediction.detection_id is not None:
        return prediction
    return dataclasses.replace(prediction, detection_id=[str(uuid.uuid4()) for _ in range(len(prediction))])


def _only(prediction: Prediction, classes: set[str]) -> Prediction:
    if not isinstance(prediction, DetectionPrediction):
        return prediction
    return prediction.subset(np.array([name in classes for name in prediction.class_name], dtype=bool))
