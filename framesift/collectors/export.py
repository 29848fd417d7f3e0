"""Export a local dataset to COCO, YOLO or Pascal VOC with supervision's dataset tools.

Class ids are renumbered over the class names found in the dataset (sorted), so an export is self-consistent
even when datapoints came from several models. Datapoints without a persisted prediction (the stub model, or
`persist_predictions: false`) are exported as images without annotations.

Example:
    >>> export_dataset("framesift-data", "coco", "out")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from framesift.collectors.targets.local import read_records
from framesift.predictions import DetectionPrediction, prediction_from_json

FORMATS = ("coco", "yolo", "voc")


def export_dataset(dataset: str | os.PathLike[str], fmt: str, out: str | os.PathLike[str]) -> int:
    """Write the dataset at `dataset` to `out` in `fmt` (coco, yolo or voc); returns the number of images."""
    import supervision as sv

    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (expected one of {', '.join(FORMATS)})")
    root, out = Path(dataset), Path(out)
    if not (root / "datapoints.jsonl").exists():
        raise FileNotFoundError(f"{root} is not a framesift dataset (no datapoints.jsonl)")
    predictions: dict[str, DetectionPrediction | None] = {}
    for record in read_records(root):
        image = str(root / record["image"])
        prediction = None
        if record.get("prediction"):
            parsed = prediction_from_json(json.loads((root / record["prediction"]).read_text()))
            if not isinstance(parsed, DetectionPrediction):
                raise ValueError(f"{record['id']} holds a {parsed.task_type} prediction; "
                                 "only detection-like datasets export to coco, yolo or voc")
            prediction = parsed
        predictions[image] = prediction
    classes = sorted({name for p in predictions.values() if p is not None for name in p.class_name})
    annotations = {image: _detections(p, classes) for image, p in predictions.items()}
    dataset_ = sv.DetectionDataset(classes=classes, images=list(annotations), annotations=annotations)
    images_dir = str(out / "images")
    if fmt == "coco":
        dataset_.as_coco(images_directory_path=images_dir, annotations_path=str(out / "annotations.json"))
    elif fmt == "yolo":
        dataset_.as_yolo(images_directory_path=images_dir, annotations_directory_path=str(out / "labels"),
                         data_yaml_path=str(out / "data.yaml"))
    else:
        dataset_.as_pascal_voc(images_directory_path=images_dir, annotations_directory_path=str(out / "annotations"))
    return len(annotations)


def _detections(prediction: DetectionPrediction | None, classes: list[str]):  # -> sv.Detections
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
