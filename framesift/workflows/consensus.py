"""The `DetectionsConsensus` step: the detections of several sources on one image merged by IoU voting, with the
semantics Roboflow documented for the step.

1. Only the classes in `classes_to_consider` are kept (all, when it is not given).
2. Each detection not yet merged (sources in order, detections in order) looks in every other source for the
   detection not yet merged that overlaps it most, by an IoU above `iou_threshold` (of its class, when
   `class_aware`). With at least `required_votes - 1` such sources, the detection and those matches merge into one
   — its class and confidence by `detections_merge_confidence_aggregation` (`average`: the majority class and the
   mean confidence; `max` / `min`: the class of the most / least confident, and that confidence), its box by
   `detections_merge_coordinates_aggregation` (`average`: the mean box; `max` / `min`: the largest / smallest box)
   — unless the merged confidence is below `confidence`; the merged ones are then taken.
3. `object_present`: the merged detections number at least `required_objects` (a number; or, per class, a mapping
   of class names to numbers — summed when not `class_aware`). `presence_confidence`: the merged detections'
   confidence aggregated by `presence_confidence_aggregation`, per class (`{"any_object": ...}` when not
   `class_aware`); `{}` when no object is present.

Example:
    >>> a = DetectionPrediction.from_lists("object-detection", "a", (100, 100), xyxy=[[0, 0, 10, 10]],
    ...                                    confidence=[0.8], class_name=["car"])
    >>> b = DetectionPrediction.from_lists("object-detection", "b", (100, 100), xyxy=[[0, 0, 10, 12]],
    ...                                    confidence=[0.6], class_name=["car"])
    >>> result = consensus([a, b], Rules(required_votes=2), "votes", (100, 100))
    >>> result.prediction.xyxy.tolist(), result.object_present, round(result.presence_confidence["car"], 3)
    ([[0.0, 0.0, 10.0, 11.0]], True, 0.7)
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from framesift.predictions import DetectionPrediction

_AGGREGATE: dict[str, Callable[[Any], Any]] = {"average": np.mean, "max": np.max, "min": np.min}


@dataclass(frozen=True)
class Rules:
    """A consensus step's fields, resolved (defaults: Roboflow's)."""

    required_votes: int
    class_aware: bool = True
    iou_threshold: float = 0.3
    confidence: float = 0.0
    classes_to_consider: Sequence[str] | None = None
    required_objects: int | Mapping[str, int] | None = None
    presence_confidence_aggregation: str = "max"
    detections_merge_confidence_aggregation: str = "average"
    detections_merge_coordinates_aggregation: str = "average"


@dataclass(frozen=True)
class Consensus:
    prediction: DetectionPrediction  # the merged detections (object detection: boxes only)
    object_present: bool
    presence_confidence: dict[str, float]


def consensus(sources: Sequence[DetectionPrediction], rules: Rules, model_id: str,
              image_size: tuple[int, int]) -> Consensus:
    """The consensus of the predictions of several sources on one image (`image_size`: width, height)."""
    if rules.classes_to_consider:
        wanted = set(rules.classes_to_consider)
        sources = [p.subset(np.array([name in wanted for name in p.class_name], dtype=bool)) for p in sources]
    taken: set[tuple[int, int]] = set()
    merged: list[tuple[np.ndarray, float, str, int]] = []
    for source, prediction in enumerate(sources):
        for index in range(len(prediction)):
            if (source, index) in taken:
                continue
            matches = _best_matches(sources, source, index, taken, rules)
            if len(matches) < rules.required_votes - 1:
                continue
            group = [(source, index), *matches]
            box, score, name, class_id = _merge([(sources[s], i) for s, i in group], rules)
            if score < rules.confidence:
                continue
            merged.append((box, score, name, class_id))
            taken.update(group)
    prediction = DetectionPrediction(
        task_type="object-detection", model_id=model_id, image_size=image_size,
        xyxy=np.array([m[0] for m in merged], dtype=np.float32).reshape(-1, 4),
        confidence=np.array([m[1] for m in merged], dtype=np.float32),
        class_id=np.array([m[3] for m in merged], dtype=np.int64), class_name=[m[2] for m in merged],
        detection_id=[str(uuid.uuid4()) for _ in merged])
    present, confidence = _presence(prediction, rules)
    return Consensus(prediction, present, confidence)


def _best_matches(sources: Sequence[DetectionPrediction], source: int, index: int, taken: set[tuple[int, int]],
                  rules: Rules) -> list[tuple[int, int]]:
    """Per other source, its detection not yet taken that overlaps detection `index` of `source` most (IoU above
    the threshold; of the same class when class-aware); the first of equals."""
    detection = sources[source]
    matches = []
    for other, prediction in enumerate(sources):
        if other == source or len(prediction) == 0:
            continue
        overlaps = _iou(detection.xyxy[index], prediction.xyxy)
        best, best_iou = None, rules.iou_threshold
        for k, value in enumerate(overlaps):
            if (other, k) in taken or value <= best_iou:
                continue
            if rules.class_aware and prediction.class_name[k] != detection.class_name[index]:
                continue
            best, best_iou = k, float(value)
        if best is not None:
            matches.append((other, best))
    return matches


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x2, y2 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = _area(box[None])[0] + _area(boxes) - inter
    return np.divide(inter, union, out=np.zeros_like(inter, dtype=np.float64), where=union > 0)


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _merge(group: list[tuple[DetectionPrediction, int]], rules: Rules) -> tuple[np.ndarray, float, str, int]:
    boxes = np.array([p.xyxy[i] for p, i in group], dtype=np.float64)
    scores = np.array([float(p.confidence[i]) for p, i in group])
    classes = [(p.class_name[i], int(p.class_id[i])) for p, i in group]
    mode = rules.detections_merge_confidence_aggregation
    if mode == "average":
        name, class_id = Counter(classes).most_common(1)[0][0]  # the majority; the first of equals
    else:
        name, class_id = classes[int(np.argmax(scores) if mode == "max" else np.argmin(scores))]
    shape = rules.detections_merge_coordinates_aggregation
    if shape == "average":
        box = boxes.mean(axis=0)
    else:
        box = boxes[int(np.argmax(_area(boxes)) if shape == "max" else np.argmin(_area(boxes)))]
    return box, float(_AGGREGATE[mode](scores)), name, class_id


def _presence(merged: DetectionPrediction, rules: Rules) -> tuple[bool, dict[str, float]]:
    if len(merged) == 0:
        return False, {}
    required = rules.required_objects or 0
    if isinstance(required, Mapping) and not rules.class_aware:
        required = sum(required.values())
    if isinstance(required, int) and len(merged) < required:
        return False, {}
    aggregate = _AGGREGATE[rules.presence_confidence_aggregation]
    if not rules.class_aware:
        return True, {"any_object": float(aggregate(merged.confidence))}
    names = np.array(merged.class_name, dtype=object)
    if isinstance(required, Mapping) and any(int((names == name).sum()) < count for name, count in required.items()):
        return False, {}
    return True, {str(name): float(aggregate(merged.confidence[names == name])) for name in dict.fromkeys(names)}
