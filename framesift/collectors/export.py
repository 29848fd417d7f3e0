"""Export a local dataset to COCO, YOLO or Pascal VOC with supervision's dataset tools.

Class ids are renumbered over the class names found in the dataset (sorted), so an export is self-consistent
even when datapoints came from several models. Datapoints without a persisted prediction (the stub model, or
`persist_predictions: false`) are exported as images without annotations. A record that cannot be exported (a
key missing, its image or prediction file deleted or damaged by hand) is skipped and named in the result; the
rest is exported.

Confidences stay with the boxes, so tools such as FiftyOne import an export as predictions: each COCO annotation
carries the detection's confidence as `score`, and `with_confidence=True` ends each YOLO label line with it
(Ultralytics' `save_conf` layout: `class cx cy w h conf`, or a polygon's points then `conf`). Without it the YOLO
labels are exactly supervision's. Pascal VOC has no field for a confidence. A datapoint whose persisted prediction
lacks a confidence for any detection exports without them.

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

from framesift.collectors.targets.local import RECORDS, UnusableRecord, record_with_image
from framesift.errors import InputError
from framesift.predictions import DetectionPrediction, prediction_from_json

FORMATS = ("coco", "yolo", "voc")
_YOLO_APPROXIMATION = 0.0  # polygon simplification: as_yolo's default, passed to both writers so their lines agree


@dataclass
class ExportResult:
    exported: int = 0  # images written
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (record id or line, why) of each record left out


def export_dataset(dataset: str | os.PathLike[str], fmt: str, out: str | os.PathLike[str], *,
                   with_confidence: bool = False) -> ExportResult:
    """Write the dataset at `dataset` to `out` in `fmt` (coco, yolo or voc).

    COCO annotations always carry `score`; `with_confidence` adds the confidence to YOLO labels as a last column.
    """
    import supervision as sv

    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r} (expected one of {', '.join(FORMATS)})")
    if with_confidence and fmt == "voc":
        raise InputError("voc has no field for a confidence (--with-confidence); export coco, whose annotations "
                         "carry score, or yolo instead")
    root, out = Path(dataset), Path(out)
    if not (root / RECORDS).is_file():
        raise InputError(f"{root} is not a framesift dataset (no {RECORDS})")
    result = ExportResult()
    predictions: dict[str, DetectionPrediction | None] = {}
    named: dict[str, str] = {}  # an image's file name -> the record whose image has it
    with open(root / RECORDS, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                name, image, prediction = _datapoint(root, line, number)
                if Path(image).name in named:  # the formats name an image by its file name: one of each
                    raise UnusableRecord(name, f"its image's file name {Path(image).name} is that of the image "
                                               f"of {named[Path(image).name]}, exported already")
            except UnusableRecord as skip:
                result.skipped.append((skip.name or f"line {number}", str(skip)))
                continue
            named[Path(image).name] = name
            predictions[image] = prediction
    classes = sorted({name for p in predictions.values() if p is not None for name in p.class_name})
    annotations = {image: _detections(p, classes) for image, p in predictions.items()}
    exported = sv.DetectionDataset(classes=classes, images=list(annotations), annotations=annotations)
    try:
        _write(exported, fmt, out, annotations, with_confidence)
    except OSError as error:
        raise InputError(f"cannot write the export to {out}: {error.strerror or error}") from None
    result.exported = len(annotations)
    return result


def _write(exported: Any, fmt: str, out: Path, annotations: dict[str, Any], with_confidence: bool) -> None:
    """Write supervision's dataset in `fmt` under `out`, with the confidences framesift adds."""
    images_dir = str(out / "images")
    if fmt == "coco":
        exported.as_coco(images_directory_path=images_dir, annotations_path=str(out / "annotations.json"))
        _add_coco_scores(out / "annotations.json", annotations)
    elif fmt == "yolo":
        exported.as_yolo(images_directory_path=images_dir, annotations_directory_path=str(out / "labels"),
                         data_yaml_path=str(out / "data.yaml"), approximation_percentage=_YOLO_APPROXIMATION)
        if with_confidence:
            _add_yolo_confidences(out / "labels", annotations)
    else:
        exported.as_pascal_voc(images_directory_path=images_dir, annotations_directory_path=str(out / "annotations"))


def _datapoint(root: Path, line: bytes, number: int) -> tuple[str, str, DetectionPrediction | None]:
    """The record's id (or `line N`), image path and detections of one records line; raises `UnusableRecord`
    saying why it cannot be exported."""
    record = record_with_image(root, line)
    name = str(record["id"]) if "id" in record else f"line {number}"
    image = root / record["image"]
    if not record.get("prediction"):
        return name, str(image), None
    try:
        parsed = prediction_from_json(json.loads((root / record["prediction"]).read_text()))
    except FileNotFoundError:
        raise UnusableRecord(name, f"its prediction {record['prediction']} is missing") from None
    except (ValueError, KeyError, TypeError) as error:
        raise UnusableRecord(name, f"its prediction {record['prediction']} cannot be read "
                                   f"({type(error).__name__})") from None
    if not isinstance(parsed, DetectionPrediction):
        raise InputError(f"{name} holds a {parsed.task_type} prediction; only detection-like datasets export to "
                         "coco, yolo or voc")
    return name, str(image), parsed


def _add_coco_scores(path: Path, annotations: dict[str, Any]) -> None:
    """Give each annotation supervision wrote (one per detection, in order) its detection's confidence as `score`."""
    coco = json.loads(path.read_text())
    by_name = {Path(image).name: detections for image, detections in annotations.items()}
    by_id: dict[int, list[dict[str, Any]]] = {}
    for annotation in coco["annotations"]:
        by_id.setdefault(annotation["image_id"], []).append(annotation)
    for image in coco["images"]:
        confidence = by_name[image["file_name"]].confidence
        if confidence is not None:
            for annotation, score in zip(by_id.get(image["id"], []), confidence, strict=True):
                annotation["score"] = float(score)
    path.write_text(json.dumps(coco, indent=3))  # supervision's indent


def _add_yolo_confidences(labels: Path, annotations: dict[str, Any]) -> None:
    """Write the labels of each image with scored detections again, each line ending in its detection's confidence."""
    import cv2
    from supervision.dataset.formats.yolo import detections_to_yolo_annotations

    for image, detections in annotations.items():
        if detections.confidence is None or len(detections) == 0:
            continue  # supervision's lines (or empty file) stay
        pixels = cv2.imread(image)  # as supervision reads it for its own lines
        if pixels is None:
            raise InputError(f"{image} cannot be read as an image")
        lines = [f"{line} {confidence:.5f}\n"
                 for i, confidence in enumerate(detections.confidence)
                 for line in detections_to_yolo_annotations(detections[i:i + 1], pixels.shape,
                                                            approximation_percentage=_YOLO_APPROXIMATION)]
        (labels / f"{Path(image).stem}.txt").write_text("".join(lines))


def _detections(prediction: DetectionPrediction | None, classes: list[str]) -> Any:  # sv.Detections
    """The detections of one datapoint; `confidence` is None when its prediction lacks a confidence anywhere."""
    import supervision as sv

    if prediction is None or len(prediction) == 0:
        return sv.Detections.empty()
    mask = None
    if prediction.polygons is not None:
        width, height = prediction.image_size
        mask = np.stack([sv.polygon_to_mask(p.astype(np.int32), (width, height)).astype(bool)
                         for p in prediction.polygons])
    items = prediction.source["predictions"] if prediction.source is not None else []
    scored = all("confidence" in item for item in items)
    return sv.Detections(
        xyxy=prediction.xyxy.astype(np.float32),
        confidence=prediction.confidence.astype(np.float32) if scored else None,
        class_id=np.asarray([classes.index(n) for n in prediction.class_name], dtype=int),
        mask=mask,
    )
