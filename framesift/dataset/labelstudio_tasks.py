"""Label Studio's side of a datapoint: the labeling configuration built from a model's classes, the names a
project's configuration gives its image and controls, and a datapoint as a task whose predictions are its
pre-annotations.

Geometry follows Label Studio: percentages of the image's width and height from its top-left corner, for the
image that was uploaded (the saved image, which the datapoint's prediction JSON already measures).

Example:
    >>> config = labeling_config(Labels("object-detection", ("car", "bus")))
    >>> LabelingInterface.parse(config).controls
    {'rectanglelabels': 'label'}
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from framesift.predictions import ClassificationPrediction, DetectionPrediction, prediction_from_json

KEYPOINT_MIN_CONFIDENCE = 0.5  # below it a keypoint is not visible (as in Ultralytics' drawings): not pre-annotated
KEYPOINT_SIZE = 0.5  # the drawn size of a keypoint, in percent of the image width
CONTROL_TYPES = ("rectanglelabels", "polygonlabels", "keypointlabels", "choices")
TASK_FIELDS = ("batch", "tags", "source", "frame_id", "captured_at", "strategy")
EXTRA_TASK_FIELDS = ("config_version", "config_sha", "crop")  # when the datapoint has them


@dataclass(frozen=True)
class Labels:
    """What a new project is set up to label: the task type and the model's class (and keypoint) names; several
    classes per image for a multi-label classifier."""

    task_type: str = "object-detection"
    class_names: tuple[str, ...] = ()
    keypoint_names: tuple[str, ...] = ()
    multi_label: bool = False

    @classmethod
    def of(cls, model: Any) -> Labels:
        """The labels of a loaded model (an ONNX model or the stub)."""
        return cls(model.task_type, tuple(model.class_names), tuple(getattr(model, "keypoint_names", None) or ()),
                   bool(getattr(model, "multi_label", False)))


def labeling_config(labels: Labels) -> str:
    """The configuration of a new project: the image, and one control for the model's task with its classes."""
    view = ET.Element("View")
    ET.SubElement(view, "Image", name="image", value="$image", zoom="true")
    if labels.task_type == "classification":
        control = ET.SubElement(view, "Choices", name="class", toName="image",
                                choice="multiple" if labels.multi_label else "single")
        for name in labels.class_names:
            ET.SubElement(control, "Choice", value=name)
    else:
        tag = "PolygonLabels" if labels.task_type == "instance-segmentation" else "RectangleLabels"
        control = ET.SubElement(view, tag, name="label", toName="image")
        for name in labels.class_names:
            ET.SubElement(control, "Label", value=name)
        if labels.task_type == "keypoint-detection":
            points = ET.SubElement(view, "KeyPointLabels", name="keypoint", toName="image")
            for name in labels.keypoint_names:
                ET.SubElement(points, "Label", value=name)
    return ET.tostring(view, encoding="unicode")


@dataclass(frozen=True)
class LabelingInterface:
    """The names a project's labeling configuration uses: predictions must be written with them."""

    image_name: str  # the Image tag's name: every result's `to_name`
    image_key: str  # the task data field the Image tag shows (`value="$image"` → `image`)
    controls: dict[str, str]  # control type (lower case) → the name of the first such control on that image

    @classmethod
    def parse(cls, label_config: str) -> LabelingInterface:
        """Read a configuration; `ValueError` when it shows no image from a task field."""
        try:
            root = ET.fromstring(label_config)
        except ET.ParseError as error:
            raise ValueError(f"the project's labeling configuration is not valid XML ({error})") from None
        image = next((tag for tag in root.iter() if tag.tag.lower() == "image"
                      and tag.get("value", "").startswith("$") and tag.get("name")), None)
        if image is None:
            raise ValueError("the project's labeling configuration has no Image tag showing a task field "
                             '(like <Image name="image" value="$image"/>)')
        image_name, image_key = image.get("name", ""), image.get("value", "")[1:]
        controls: dict[str, str] = {}
        for tag in root.iter():
            kind, name = tag.tag.lower(), tag.get("name")
            if kind in CONTROL_TYPES and tag.get("toName") == image_name and name:
                controls.setdefault(kind, name)
        return cls(image_name, image_key, controls)


def task_json(meta: Mapping[str, Any], image_url: str, interface: LabelingInterface) -> dict[str, Any]:
    """The task of an outbox entry's metadata: the image and the datapoint's fields as data, its prediction (when
    persisted) as a pre-annotation — unless it holds no region or choice (no detections, or nothing the project
    has a control for): an empty pre-annotation would read as "nothing here"."""
    data = {interface.image_key: image_url, "datapoint_id": meta["id"], **{k: meta[k] for k in TASK_FIELDS},
            **{k: v for k, v in (meta.get("extra") or {}).items() if k in EXTRA_TASK_FIELDS}}
    task: dict[str, Any] = {"data": data}
    if meta.get("prediction") is not None:
        prediction = prediction_json(meta["prediction"], meta["width"], meta["height"], meta["model_id"], interface)
        if prediction["result"]:
            task["predictions"] = [prediction]
    return task


def prediction_json(prediction: Mapping[str, Any], width: int, height: int, model_version: str,
                    interface: LabelingInterface) -> dict[str, Any]:
    """A prediction (SPEC §2 JSON, in pixels of the `width` × `height` image) as a Label Studio prediction: one
    result per box / polygon / visible keypoint / chosen class, each with its confidence as `score`; the
    prediction's `score` is the mean of theirs."""
    parsed = prediction_from_json(prediction)
    place = _Placement(interface, width, height)
    if isinstance(parsed, DetectionPrediction):
        results = _detection_results(parsed, place)
    elif isinstance(parsed, ClassificationPrediction):
        results = _classification_results(parsed, place)
    else:
        results = []  # the stub predicted nothing
    out: dict[str, Any] = {"model_version": model_version, "result": results}
    scores = [r["score"] for r in results if r["type"] != "keypointlabels"]
    if scores:
        out["score"] = sum(scores) / len(scores)
    return out


@dataclass(frozen=True)
class _Placement:
    interface: LabelingInterface
    width: int
    height: int

    def x(self, value: float) -> float:
        return min(max(float(value) / self.width * 100.0, 0.0), 100.0)

    def y(self, value: float) -> float:
        return min(max(float(value) / self.height * 100.0, 0.0), 100.0)

    def result(self, kind: str, region: str, value: dict[str, Any], score: float) -> dict[str, Any] | None:
        name = self.interface.controls.get(kind)
        if name is None:
            return None  # the project has no control of this kind: nothing to pre-annotate it with
        return {"id": region, "from_name": name, "to_name": self.interface.image_name, "type": kind,
                "original_width": self.width, "original_height": self.height, "image_rotation": 0,
                "value": value, "score": float(score)}


def _detection_results(prediction: DetectionPrediction, place: _Placement) -> list[dict[str, Any]]:
    results = []
    keypoint_names = prediction.keypoint_names or []
    for i in range(len(prediction)):
        label, score = prediction.class_name[i], prediction.confidence[i]
        x1, y1, x2, y2 = prediction.xyxy[i]
        shape = None
        if prediction.polygons is not None and len(prediction.polygons[i]) >= 3:
            points = [[place.x(px), place.y(py)] for px, py in prediction.polygons[i]]
            shape = place.result("polygonlabels", f"o{i}", {"points": points, "closed": True,
                                                            "polygonlabels": [label]}, score)
        if shape is None:
            box = {"x": place.x(x1), "y": place.y(y1), "width": place.x(x2) - place.x(x1),
                   "height": place.y(y2) - place.y(y1), "rotation": 0, "rectanglelabels": [label]}
            shape = place.result("rectanglelabels", f"o{i}", box, score)
        results.append(shape)
        if prediction.keypoints is not None:
            for k, (kx, ky, kc) in enumerate(prediction.keypoints[i]):
                if kc >= max(KEYPOINT_MIN_CONFIDENCE, prediction.keypoint_confidence):
                    name = keypoint_names[k] if k < len(keypoint_names) else str(k)
                    point = {"x": place.x(kx), "y": place.y(ky), "width": KEYPOINT_SIZE, "keypointlabels": [name]}
                    results.append(place.result("keypointlabels", f"o{i}k{k}", point, kc))
    return [r for r in results if r is not None]


def _classification_results(prediction: ClassificationPrediction, place: _Placement) -> list[dict[str, Any]]:
    confidence = dict(zip(prediction.class_names, prediction.confidences, strict=True))
    chosen = prediction.predicted_classes if prediction.multi_label else [prediction.top]
    if not chosen:
        return []
    score = sum(float(confidence[c]) for c in chosen) / len(chosen)
    result = place.result("choices", "c0", {"choices": list(chosen)}, score)
    return [] if result is None else [result]
