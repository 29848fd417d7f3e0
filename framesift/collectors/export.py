"""Export a local dataset to COCO, YOLO or Pascal VOC with supervision's dataset tools.

Class ids are renumbered over the class names found in the dataset (sorted), so an export is self-consistent
even when datapoints came from several models. Datapoints without a persisted prediction (the stub model, or
`persist_predictions: false`) are exported as images without annotations. A record that cannot be exported (a
key missing, its image or prediction file deleted or damaged by hand) is skipped and named in the result; the
rest is exported.

Example:
    >>> result = export_dataset("framesift-data", "coco", "out")  # doctest: +SKIP
    >>> result.exported, result.skipped                            # doctest: +SKIP
    (120, [('line 7', "no 'image' key")])
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from framesift.collectors.targets.local import RECORDS
from framesift.errors import InputError
from framesift.predictions import DetectionPrediction, prediction_from_json

FORMATS = ("coco", "yolo", "voc")


@dataclass
class ExportResult:
    exported: int = 0  # images written
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (record id or line, why) of each record left out


def export_dataset(dataset: str | os.PathLike[str], fmt: str, out: str | os.PathLike[str]) -> ExportResult:
    """Write the dataset at `dataset` to `out` in `fmt` (coco, yolo or voc)."""
    import supervision as sv

    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r} (expected one of {', '.join(FORMATS)})")
    root, out = Path(dataset), Path(out)
    if not (root / RECORDS).is_file():
        raise InputError(f"{root} is not a framesift dataset (no {RECORDS})")
    result = ExportResult()
    predictions: dict[str, DetectionPrediction | None] = {}
    with open(root / RECORDS, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                image, prediction = _datapoint(root, line)
            except _Skip as skip:
                result.skipped.append((skip.name or f"line {number}", str(skip)))
                continue
            predictions[image] = prediction
    classes = sorted({name for p in predictions.values() if p is not None for name in p.class_name})
    annotations = {image: _detections(p, classes) for image, p in predictions.items()}
    exported = sv.DetectionDataset(classes=classes, images=list(annotations), annotations=annotations)
    images_dir = str(out / "images")
    if fmt == "coco":
        exported.as_coco(images_directory_path=images_dir, annotations_path=str(out / "annotations.json"))
    elif fmt == "yolo":
        exported.as_yolo(images_directory_path=images_dir, annotations_directory_path=str(out / "labels"),
                         data_yaml_path=str(out / "data.yaml"))
    else:
        exported.as_pascal_voc(images_directory_path=images_dir, annotations_directory_path=str(out / "annotations"))
    result.exported = len(annotations)
    return result


class _Skip(Exception):
    """A record left out, and why; `name` is its id when it has one."""

    def __init__(self, name: str | None, reason: str):
        super().__init__(reason)
        self.name = name


def _datapoint(root: Path, line: bytes) -> tuple[str, DetectionPrediction | None]:
    """The image path and detections of one records line; raises `_Skip` saying why it cannot be exported."""
    try:
        record: Any = json.loads(line)
    except ValueError:
        raise _Skip(None, "not a complete JSON record") from None
    if not isinstance(record, dict):
        raise _Skip(None, "not a JSON object")
    name = str(record["id"]) if "id" in record else None
    if not isinstance(record.get("image"), str):
        raise _Skip(name, "no 'image' key")
    image = root / record["image"]
    if not image.is_file():
        raise _Skip(name, f"its image {record['image']} is missing")
    if not record.get("prediction"):
        return str(image), None
    try:
        parsed = prediction_from_json(json.loads((root / record["prediction"]).read_text()))
    except FileNotFoundError:
        raise _Skip(name, f"its prediction {record['prediction']} is missing") from None
    except (ValueError, KeyError, TypeError) as error:
        raise _Skip(name, f"its prediction {record['prediction']} cannot be read ({type(error).__name__})") from None
    if not isinstance(parsed, DetectionPrediction):
        raise InputError(f"{name} holds a {parsed.task_type} prediction; only detection-like datasets export to "
                         "coco, yolo or voc")
    return str(image), parsed


def _detections(prediction: DetectionPrediction | None, classes: list[str]) -> Any:  # sv.Detections
    import supervision as sv

    if prediction is None or len(prediction) == 0:
        return sv.Detections.empty()
    mask = None
    if prediction.polygons is not None:
        width, height = prediction.image_size
        mask = np.stack([sv.polygon_to_mask(p.astype(np.int32), (width, height)).astype(bool)
                         for p in prediction.polygons])
    return sv.Detections(
        xyxy=prediction.xyxy.astype(np.float32),
        confidence=prediction.confidence.astype(np.float32),
        class_id=np.asarray([classes.index(n) for n in prediction.class_name], dtype=int),
        mask=mask,
    )
