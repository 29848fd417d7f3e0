"""The prediction types that models produce and the active-learning sampler reads.

Three plain dataclasses cover every task type:

- `DetectionPrediction` for `object-detection`, `instance-segmentation` and `keypoint-detection`;
- `ClassificationPrediction` for single- and multi-label `classification`;
- `StubPrediction` for the stub model, which predicts nothing.

What a user already holds converts once, where it arrives (`as_prediction`: `Collector.submit`, a model of your own
in a `Pipeline` or a workflow): `supervision.Detections` (`DetectionPrediction.from_detections`) and
`supervision.Classifications` (`ClassificationPrediction.from_classifications`).

Each one turns into the JSON shape of Roboflow Inference responses with `to_json(scale_x, scale_y)`, where the
factors map the original frame onto the saved image; `prediction_from_json` reads that shape back, so the
sampler accepts either form. A prediction read from JSON keeps that JSON (`source`): it is persisted as it came,
with only its geometry scaled, so every id it carried (class ids, detection ids, keypoint class ids) and every
other field stays as it was.

Example:
    >>> p = DetectionPrediction.from_lists("object-detection", "people/3", (640, 480),
    ...                                    xyxy=[[10, 20, 50, 100]], confidence=[0.9], class_name=["person"])
    >>> p.to_json()["predictions"][0]["x"]
    30.0
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

if TYPE_CHECKING:
    import supervision as sv

DETECTION_TASKS = ("object-detection", "instance-segmentation", "keypoint-detection")
CLASSIFICATION_TASK = "classification"
TASK_TYPES = (*DETECTION_TASKS, CLASSIFICATION_TASK)


@dataclass(frozen=True)
class DetectionPrediction:
    """Boxes (and optionally polygons and keypoints) in pixels of the frame the model saw.

    `xyxy` is `(N, 4)`, `confidence` `(N,)`, `class_id` `(N,)`, `class_name` a list of N names. `polygons` holds one
    `(M, 2)` array per detection (instance segmentation); `keypoints` is `(N, K, 3)` with x, y, confidence
    (keypoint detection), named by `keypoint_names`; those below `keypoint_confidence` are left out of the JSON (as
    Roboflow's `keypoint_confidence` leaves them out). `mask` (N, H, W) bool is kept for drawing, never persisted.
    `tracker_id` `(N,)`, when a tracker gave them, is persisted as each detection's `tracker_id`.
    """

    task_type: str
    model_id: str
    image_size: tuple[int, int]  # (width, height) of the frame
    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    class_name: list[str]
    polygons: list[np.ndarray] | None = None
    keypoints: np.ndarray | None = None
    keypoint_names: list[str] | None = None
    keypoint_confidence: float = 0.0
    mask: np.ndarray | None = field(default=None, repr=False)
    detection_id: list[str] | None = None
    tracker_id: np.ndarray | None = None
    source: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)  # the JSON it was read from
    # What the model computed before its confidence threshold and NMS (never persisted): the best class score and
    # class of every candidate at or above the runner's floor. None when not known (a prediction read from JSON).
    candidate_score: np.ndarray | None = field(default=None, repr=False, compare=False)
    candidate_class: list[str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_lists(
        cls,
        task_type: str,
        model_id: str,
        image_size: tuple[int, int],
        *,
        xyxy: Sequence[Sequence[float]],
        confidence: Sequence[float],
        class_name: Sequence[str],
        class_id: Sequence[int] | None = None,
        polygons: Sequence[Sequence[Sequence[float]]] | None = None,
        keypoints: Sequence[Sequence[Sequence[float]]] | np.ndarray | None = None,
        keypoint_names: Sequence[str] | None = None,
    ) -> DetectionPrediction:
        """Build a prediction from plain Python lists (handy in tests and callbacks)."""
        names = list(class_name)
        if class_id is None:
            class_id = _ids_of(names)
        return cls(
            task_type=task_type,
            model_id=model_id,
            image_size=(int(image_size[0]), int(image_size[1])),
            xyxy=np.asarray(xyxy, dtype=np.float32).reshape(-1, 4),
            confidence=np.asarray(confidence, dtype=np.float32),
            class_id=np.asarray(class_id, dtype=np.int64),
            class_name=names,
            polygons=None if polygons is None else [np.asarray(p, dtype=np.float32) for p in polygons],
            keypoints=None if keypoints is None else np.asarray(keypoints, dtype=np.float32),
            keypoint_names=None if keypoint_names is None else list(keypoint_names),
        )

    @classmethod
    def from_detections(cls, detections: sv.Detections, image_size: tuple[int, int], *,
                        class_names: ClassNames | None = None, model_id: str = "") -> DetectionPrediction:
        """A `supervision.Detections` (`sv.Detections.from_ultralytics(result)`, ...) of an image of `image_size`
        (width, height): its boxes, confidences (1 when it has none), class ids named by its `data["class_name"]`,
        else by `class_names` (a list, or a dict of id to name), else by the ids themselves; its masks (which make
        it an instance segmentation, each traced to a polygon), its tracker ids and its `data["detection_id"]`."""
        import supervision as sv

        n = len(detections)
        data = detections.data or {}
        if data.get("class_name") is not None:
            names = [str(name) for name in data["class_name"]]
            class_id = detections.class_id if detections.class_id is not None else _ids_of(names)
        elif detections.class_id is not None:
            class_id, names = detections.class_id, _names_of(detections.class_id, class_names)
        else:
            raise ValueError("the detections have no class: give sv.Detections a class_id or data['class_name']")
        polygons = None
        if detections.mask is not None:
            if detections.mask.shape[1:] != (image_size[1], image_size[0]):
                raise ValueError(f"the detections' masks are {detections.mask.shape[2]}x{detections.mask.shape[1]}, "
                                 f"the image {image_size[0]}x{image_size[1]}")
            polygons = [_largest_polygon(sv.mask_to_polygons(mask)) for mask in detections.mask]
        ids = data.get("detection_id")
        return cls(
            task_type="instance-segmentation" if polygons is not None else "object-detection",
            model_id=model_id, image_size=(int(image_size[0]), int(image_size[1])),
            xyxy=np.asarray(detections.xyxy, dtype=np.float32).reshape(-1, 4),
            confidence=np.ones(n, np.float32) if detections.confidence is None
            else np.asarray(detections.confidence, dtype=np.float32),
            class_id=np.asarray(class_id, dtype=np.int64), class_name=names, polygons=polygons,
            mask=None if detections.mask is None else np.asarray(detections.mask, dtype=bool),
            detection_id=None if ids is None else [str(i) for i in ids],
            tracker_id=None if detections.tracker_id is None else np.asarray(detections.tracker_id, np.int64))

    def __len__(self) -> int:
        return len(self.class_name)

    def subset(self, keep: np.ndarray) -> DetectionPrediction:
        """The detections where the boolean `keep` holds, with everything that goes with them (the JSON it was
        read from, if any, is dropped: it would no longer match)."""
        index = np.flatnonzero(keep)
        return replace(
            self, xyxy=self.xyxy[index], confidence=self.confidence[index], class_id=self.class_id[index],
            class_name=[self.class_name[i] for i in index],
            polygons=None if self.polygons is None else [self.polygons[i] for i in index],
            keypoints=None if self.keypoints is None else self.keypoints[index],
            mask=None if self.mask is None else self.mask[index],
            detection_id=None if self.detection_id is None else [self.detection_id[i] for i in index],
            tracker_id=None if self.tracker_id is None else self.tracker_id[index], source=None)

    def to_detections(self) -> Any:
        """The boxes, classes and masks as `supervision.Detections` (for drawing and dataset export)."""
        import supervision as sv

        return sv.Detections(
            xyxy=self.xyxy.astype(np.float32).reshape(-1, 4),
            confidence=self.confidence.astype(np.float32),
            class_id=self.class_id.astype(int),
            mask=self.mask,
            tracker_id=self.tracker_id,
            data={"class_name": np.asarray(self.class_name, dtype=object)},
        )

    def to_json(self, scale_x: float = 1.0, scale_y: float = 1.0) -> dict[str, Any]:
        """The Roboflow-Inference-shaped JSON, geometry scaled by `scale_x`, `scale_y`."""
        if self.source is not None:
            return scaled_json(self.source, scale_x, scale_y)
        width, height = self.image_size
        ids = self.detection_id or [str(uuid.uuid4()) for _ in range(len(self))]
        items = []
        for i in range(len(self)):
            x1, y1, x2, y2 = (float(v) for v in self.xyxy[i])
            item: dict[str, Any] = {
                "x": (x1 + x2) / 2 * scale_x,
                "y": (y1 + y2) / 2 * scale_y,
                "width": (x2 - x1) * scale_x,
                "height": (y2 - y1) * scale_y,
                "confidence": float(self.confidence[i]),
                "class": self.class_name[i],
                "class_id": int(self.class_id[i]),
                "detection_id": ids[i],
            }
            if self.tracker_id is not None:
                item["tracker_id"] = int(self.tracker_id[i])
            if self.polygons is not None:
                item["points"] = [
                    {"x": float(px) * scale_x, "y": float(py) * scale_y} for px, py in self.polygons[i]
                ]
            if self.keypoints is not None:
                names = self.keypoint_names or [str(k) for k in range(self.keypoints.shape[1])]
                item["keypoints"] = [
                    {"x": float(kx) * scale_x, "y": float(ky) * scale_y, "confidence": float(kc),
                     "class_id": k, "class": names[k]}
                    for k, (kx, ky, kc) in enumerate(self.keypoints[i]) if kc >= self.keypoint_confidence
                ]
            items.append(item)
        return {
            "image": {"width": round(width * scale_x), "height": round(height * scale_y)},
            "predictions": items,
            "model_id": self.model_id,
            "task_type": self.task_type,
        }


@dataclass(frozen=True)
class ClassificationPrediction:
    """Class confidences of a classifier.

    `class_names` and `confidences` cover every class the model knows. Single-label: the top class is the
    prediction. Multi-label: `predicted_classes` are those at or above the model's threshold.
    """

    model_id: str
    image_size: tuple[int, int]
    class_names: list[str]
    confidences: np.ndarray
    multi_label: bool = False
    predicted_classes: list[str] = field(default_factory=list)
    task_type: str = CLASSIFICATION_TASK
    source: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)  # the JSON it was read from

    @classmethod
    def from_classifications(cls, classifications: sv.Classifications, image_size: tuple[int, int], *,
                             class_names: ClassNames | None = None, model_id: str = "") -> ClassificationPrediction:
        """A `supervision.Classifications` of an image of `image_size` (width, height), single-label: with
        `class_names` given as a list, the confidences of every class (0 for those it does not list); else those it
        lists, named by `class_names` (a dict of id to name) or by their ids. Confidence 1 when it has none."""
        ids = np.asarray(classifications.class_id, dtype=np.int64)
        confidence = np.ones(len(ids), np.float32) if classifications.confidence is None \
            else np.asarray(classifications.confidence, dtype=np.float32)
        size = (int(image_size[0]), int(image_size[1]))
        if isinstance(class_names, Sequence) and not isinstance(class_names, str):
            _names_of(ids, class_names)  # every id has a name
            every = np.zeros(len(class_names), np.float32)
            every[ids] = confidence
            return cls(model_id, size, [str(name) for name in class_names], every)
        return cls(model_id, size, _names_of(ids, class_names), confidence)

    @property
    def top(self) -> str:
        return self.class_names[int(np.argmax(self.confidences))]

    @property
    def top_confidence(self) -> float:
        return float(np.max(self.confidences))

    def to_json(self, scale_x: float = 1.0, scale_y: float = 1.0) -> dict[str, Any]:
        if self.source is not None:
            return scaled_json(self.source, scale_x, scale_y)
        width, height = self.image_size
        out: dict[str, Any] = {"image": {"width": round(width * scale_x), "height": round(height * scale_y)}}
        if self.multi_label:
            out["predictions"] = {
                name: {"class_id": i, "confidence": float(c)}
                for i, (name, c) in enumerate(zip(self.class_names, self.confidences, strict=True))
            }
            out["predicted_classes"] = list(self.predicted_classes)
        else:
            order = np.argsort(-self.confidences, kind="stable")
            out["predictions"] = [
                {"class": self.class_names[i], "class_id": int(i), "confidence": float(self.confidences[i])}
                for i in order
            ]
            out["top"] = self.top
            out["confidence"] = self.top_confidence
        out["model_id"] = self.model_id
        out["task_type"] = self.task_type
        return out


@dataclass(frozen=True)
class StubPrediction:
    """What the stub model returns: nothing predicted, only who and when."""

    model_id: str
    task_type: str = "object-detection"
    time: float = field(default_factory=time.time)

    def to_json(self, scale_x: float = 1.0, scale_y: float = 1.0) -> dict[str, Any]:
        return {"is_stub": True, "model_id": self.model_id, "task_type": self.task_type, "time": self.time}


Prediction = DetectionPrediction | ClassificationPrediction | StubPrediction
ClassNames = Sequence[str] | Mapping[int, str]
# What framesift takes as a prediction, converted once by `as_prediction`
PredictionLike: TypeAlias = "Prediction | Mapping[str, Any] | sv.Detections | sv.Classifications"
ACCEPTED = ("a DetectionPrediction, ClassificationPrediction or StubPrediction, a supervision Detections or "
            "Classifications, or the JSON of a Roboflow Inference response (a mapping)")


def as_prediction(value: Any, image_size: tuple[int, int], *, class_names: ClassNames | None = None,
                  model_id: str = "") -> Prediction:
    """`value` as one of framesift's predictions: as it is when it is one; read from JSON (`prediction_from_json`);
    converted from `supervision.Detections` or `Classifications` of an image of `image_size` (width, height),
    their classes named by `class_names` when they carry no names. Anything else: `TypeError` naming what is
    accepted."""
    if isinstance(value, (DetectionPrediction, ClassificationPrediction, StubPrediction)):
        return value
    if isinstance(value, Mapping):
        return prediction_from_json(value)
    if type(value).__module__.split(".")[0] == "supervision":
        import supervision as sv

        if isinstance(value, sv.Detections):
            return DetectionPrediction.from_detections(value, image_size, class_names=class_names,
                                                       model_id=model_id)
        if isinstance(value, sv.Classifications):
            return ClassificationPrediction.from_classifications(value, image_size, class_names=class_names,
                                                                 model_id=model_id)
    raise TypeError(f"a prediction is {ACCEPTED}, not {type(value).__module__}.{type(value).__qualname__}")


def _names_of(class_id: Any, class_names: ClassNames | None) -> list[str]:
    """The name of each class id: from `class_names` (a list or a dict), else the id itself."""
    ids = [int(i) for i in class_id]
    if class_names is None:
        return [str(i) for i in ids]
    known = dict(enumerate(class_names)) if not isinstance(class_names, Mapping) else class_names
    missing = sorted({i for i in ids if i not in known})
    if missing:
        raise ValueError(f"class id {missing[0]} has no name among the {len(known)} class names given")
    return [str(known[i]) for i in ids]


def _ids_of(names: Sequence[str]) -> list[int]:
    """Class ids for names that came without them: each name's place among the names, sorted."""
    order = sorted(set(names))
    return [order.index(name) for name in names]


def _largest_polygon(polygons: list[np.ndarray]) -> np.ndarray:
    import cv2

    if not polygons:
        return np.zeros((0, 2), np.float32)
    return max(polygons, key=lambda p: cv2.contourArea(p.astype(np.float32))).astype(np.float32)


def has_annotation(data: Mapping[str, Any] | None) -> bool:
    """Whether a persisted prediction (SPEC §2 JSON) holds anything to pre-annotate: a detection, or a class. An
    empty detection list is no pre-annotation (a labeling tool would read it as "nothing here")."""
    if data is None or data.get("is_stub"):
        return False
    return bool(data.get("predictions")) or "top" in data


def scaled_json(data: Mapping[str, Any], scale_x: float, scale_y: float) -> dict[str, Any]:
    """A copy of a SPEC §2 JSON with its geometry (image size, boxes, polygon points, keypoints) scaled; every
    other field as it was."""
    out = copy.deepcopy(dict(data))
    image = out.get("image")
    if isinstance(image, dict):
        for key, scale in (("width", scale_x), ("height", scale_y)):
            if isinstance(image.get(key), (int, float)):
                image[key] = round(image[key] * scale)
    items = out.get("predictions")
    for item in items if isinstance(items, list) else ():
        _scale_point(item, scale_x, scale_y, ("x", "width"), ("y", "height"))
        for point in [*item.get("points", ()), *item.get("keypoints", ())]:
            _scale_point(point, scale_x, scale_y, ("x",), ("y",))
    return out


def _scale_point(item: Any, scale_x: float, scale_y: float, xs: tuple[str, ...], ys: tuple[str, ...]) -> None:
    if not isinstance(item, dict):
        return
    for keys, scale in ((xs, scale_x), (ys, scale_y)):
        for key in keys:
            if isinstance(item.get(key), (int, float)):
                item[key] = item[key] * scale


def prediction_from_json(data: Mapping[str, Any]) -> Prediction:
    """Read the SPEC §2 JSON shape (a Roboflow Inference response) into a prediction object that keeps `data` as
    its `source` (persisted as it came, geometry scaled)."""
    model_id = str(data.get("model_id") or "")
    if data.get("is_stub"):
        return StubPrediction(model_id=model_id, task_type=str(data.get("task_type", "object-detection")),
                              time=float(data.get("time", 0.0)))
    image = data.get("image") or {}
    size = (int(image.get("width", 0)), int(image.get("height", 0)))
    items = data.get("predictions", [])
    task_type = data.get("task_type")
    if isinstance(items, Mapping) or task_type == CLASSIFICATION_TASK or "top" in data:
        return replace(_classification_from_json(model_id, size, items, data), source=data)
    task_type = task_type or _infer_detection_task(items)
    xyxy = [[p["x"] - p["width"] / 2, p["y"] - p["height"] / 2, p["x"] + p["width"] / 2, p["y"] + p["height"] / 2]
            for p in items]
    polygons = [[(pt["x"], pt["y"]) for pt in p.get("points", [])] for p in items] \
        if task_type == "instance-segmentation" else None
    keypoints, names = _keypoints_from_json(items) if task_type == "keypoint-detection" and items else (None, None)
    prediction = DetectionPrediction.from_lists(
        task_type, model_id, size,
        xyxy=xyxy,
        confidence=[p.get("confidence", 1.0) for p in items],
        class_name=[str(p["class"]) for p in items],
        class_id=[int(p.get("class_id", 0)) for p in items],
        polygons=polygons,
        keypoints=keypoints,
        keypoint_names=names,
    )
    ids = [p.get("detection_id") for p in items]
    tracks = [p.get("tracker_id") for p in items]
    return replace(prediction, detection_id=None if None in ids else [str(i) for i in ids],
                   tracker_id=None if not items or None in tracks else np.asarray(tracks, np.int64), source=data)


def _keypoints_from_json(items: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, list[str]]:
    """Keypoints as `(N, K, 3)`, each at the position its `class_id` names (a response may leave out the keypoints
    it did not see, so detections can list different ones); those not listed have confidence 0."""
    listed = [[(int(k.get("class_id", i)), k) for i, k in enumerate(p.get("keypoints", []))] for p in items]
    count = max((position + 1 for points in listed for position, _ in points), default=0)
    array = np.zeros((len(items), count, 3), dtype=np.float32)
    names = [str(i) for i in range(count)]
    for n, points in enumerate(listed):
        for position, k in points:
            array[n, position] = (k["x"], k["y"], k.get("confidence", 1.0))
            names[position] = str(k.get("class", position))
    return array, names


def _infer_detection_task(items: Sequence[Mapping[str, Any]]) -> str:
    if any("points" in p for p in items):
        return "instance-segmentation"
    if any("keypoints" in p for p in items):
        return "keypoint-detection"
    return "object-detection"


def _classification_from_json(
    model_id: str, size: tuple[int, int], items: Any, data: Mapping[str, Any]
) -> ClassificationPrediction:
    if isinstance(items, Mapping):  # multi-label
        names = list(items)
        return ClassificationPrediction(
            model_id=model_id,
            image_size=size,
            class_names=names,
            confidences=np.asarray([float(items[n]["confidence"]) for n in names], dtype=np.float32),
            multi_label=True,
            predicted_classes=[str(c) for c in data.get("predicted_classes", [])],
        )
    return ClassificationPrediction(
        model_id=model_id,
        image_size=size,
        class_names=[str(p["class"]) for p in items],
        confidences=np.asarray([float(p["confidence"]) for p in items], dtype=np.float32),
    )
