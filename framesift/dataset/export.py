"""Export a local dataset to COCO, YOLO or Pascal VOC with supervision's dataset tools, or to Label Studio tasks.

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

What a dataset knows stays with it: a YOLO export's `data.yaml` names its root, `train` and `val` (Ultralytics
trains from it), optionally split by groups of frames (`split_items`); each COCO image keeps its capture time as
`date_captured` and its provenance under `framesift`, and `info` says what made the file.

Example:
    >>> result = export_dataset("framesift-data", "coco", "out")  # doctest: +SKIP
    >>> result.exported, result.skipped                            # doctest: +SKIP
    (120, [('line 7', "no 'image' key")])
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from framesift.dataset.records import RECORDS, Item, UnusableRecord, record_with_image
from framesift.errors import InputError
from framesift.predictions import DetectionPrediction, prediction_from_json
from framesift.version import __version__

FORMATS = ("coco", "yolo", "voc", "labelstudio")
_YOLO_APPROXIMATION = 0.0  # polygon simplification: as_yolo's default, passed to both writers so their lines agree
SPLIT_GAP_S = 10.0  # --split: a frame this long after the previous one of its source starts a new group...
SPLIT_SPAN_S = 60.0  # ...and so does one this long after the group's first: a group is at most a minute
PROVENANCE = ("id", "source", "frame_id", "captured_at", "strategy", "batch", "tags", "model_id")  # COCO `framesift`


@dataclass
class ExportResult:
    exported: int = 0  # images written
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (record id or line, why) of each record left out
    parts: dict[str, int] = field(default_factory=dict)  # images per part of a --split (train, val)


def export_dataset(dataset: str | os.PathLike[str], fmt: str, out: str | os.PathLike[str], *,
                   with_confidence: bool = False, split: float | None = None,
                   image_prefix: str = "/data/local-files/?d=images/") -> ExportResult:
    """Write the dataset at `dataset` to `out` in `fmt` (coco, yolo, voc or labelstudio).

    COCO annotations always carry `score`; `with_confidence` adds the confidence to YOLO labels as a last column.
    `split` (yolo only): the share of images for training; the rest go to validation, whole groups of frames of one
    source close in time at a time. `image_prefix` (labelstudio only): what each task's image URL starts with.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r} (expected one of {', '.join(FORMATS)})")
    if with_confidence and fmt == "voc":
        raise InputError("voc has no field for a confidence (--with-confidence); export coco, whose annotations "
                         "carry score, or yolo instead")
    if with_confidence and fmt == "labelstudio":
        raise InputError("labelstudio tasks always carry each result's score; --with-confidence is for yolo")
    if split is not None and fmt != "yolo":
        raise InputError(f"--split makes YOLO's train and val folders; {fmt} is exported as one set")
    if split is not None and not 0.0 < split < 1.0:
        raise InputError(f"--split is the share of images for training, between 0 and 1 (not {split})")
    root, out = Path(dataset), Path(out)
    result = ExportResult()
    items = list(_items(root, result))
    try:
        if fmt == "labelstudio":
            from framesift.dataset.labelstudio_export import write_tasks

            write_tasks(items, out, image_prefix)
        else:
            _write(items, fmt, out, with_confidence, split, result, root.resolve().name)
    except OSError as error:
        raise InputError(f"cannot write the export to {out}: {error.strerror or error}") from None
    result.exported = len(items)
    return result


def _items(root: Path, result: ExportResult) -> Iterator[Item]:
    """The dataset's exportable datapoints; each record that is not one is added to `result.skipped`."""
    if not (root / RECORDS).is_file():
        raise InputError(f"{root} is not a framesift dataset (no {RECORDS})")
    named: dict[str, str] = {}  # an image's file name -> the record whose image has it
    with open(root / RECORDS, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                item = _item(root, line, number)
                if Path(item.image).name in named:  # the formats name an image by its file name: one of each
                    raise UnusableRecord(item.name, f"its image's file name {Path(item.image).name} is that of the "
                                                    f"image of {named[Path(item.image).name]}, exported already")
            except UnusableRecord as skip:
                result.skipped.append((skip.name or f"line {number}", str(skip)))
                continue
            named[Path(item.image).name] = item.name
            yield item


def _item(root: Path, line: bytes, number: int) -> Item:
    """The datapoint of one records line; raises `UnusableRecord` saying why it cannot be exported."""
    record = record_with_image(root, line)
    name = str(record["id"]) if "id" in record else f"line {number}"
    try:
        captured_at = datetime.fromisoformat(str(record["captured_at"]))
    except (KeyError, ValueError):
        raise UnusableRecord(name, "its captured_at is missing or not a time") from None
    if captured_at.tzinfo is None:
        captured_at = captured_at.replace(tzinfo=timezone.utc)
    image, prediction = str(root / record["image"]), None
    if record.get("prediction"):
        try:
            prediction = json.loads((root / record["prediction"]).read_text())
            prediction_from_json(prediction)
        except FileNotFoundError:
            raise UnusableRecord(name, f"its prediction {record['prediction']} is missing") from None
        except (ValueError, KeyError, TypeError) as error:
            raise UnusableRecord(name, f"its prediction {record['prediction']} cannot be read "
                                       f"({type(error).__name__})") from None
    return Item(name, record, image, prediction, captured_at)


def _detection(item: Item) -> DetectionPrediction | None:
    if item.prediction is None:
        return None
    parsed = prediction_from_json(item.prediction)
    if not isinstance(parsed, DetectionPrediction):
        raise InputError(f"{item.name} holds a {parsed.task_type} prediction; only detection-like datasets export "
                         "to coco, yolo or voc (labelstudio takes every task type)")
    return parsed


def _write(items: list[Item], fmt: str, out: Path, with_confidence: bool, split: float | None,
           result: ExportResult, dataset: str) -> None:
    """Write the items in `fmt` under `out` with supervision's dataset tools, with what framesift adds."""
    import supervision as sv

    predictions = {item.image: _detection(item) for item in items}
    classes = sorted({name for p in predictions.values() if p is not None for name in p.class_name})
    annotations = {image: _detections(p, classes) for image, p in predictions.items()}
    if fmt == "yolo":
        parts = {"": items} if split is None else split_items(items, split)
        for part, members in parts.items():
            chosen = {item.image: annotations[item.image] for item in members}
            sv.DetectionDataset(classes=classes, images=list(chosen), annotations=chosen).as_yolo(
                images_directory_path=str(out / "images" / part),
                annotations_directory_path=str(out / "labels" / part),
                approximation_percentage=_YOLO_APPROXIMATION)
            if with_confidence:
                _add_yolo_confidences(out / "labels" / part, chosen)
        _write_data_yaml(out, classes, split is not None)
        if split is not None:
            result.parts = {part: len(members) for part, members in parts.items()}
        return
    exported = sv.DetectionDataset(classes=classes, images=list(annotations), annotations=annotations)
    if fmt == "coco":
        exported.as_coco(images_directory_path=str(out / "images"), annotations_path=str(out / "annotations.json"))
        _complete_coco(out / "annotations.json", annotations, items, dataset)
    else:
        exported.as_pascal_voc(images_directory_path=str(out / "images"),
                               annotations_directory_path=str(out / "annotations"))


def split_items(items: list[Item], train: float) -> dict[str, list[Item]]:
    """The items parted into `train` and `val`, deterministically, a group at a time: the frames of one source
    each less than `SPLIT_GAP_S` after the previous one, spanning less than `SPLIT_SPAN_S`, go to the same side,
    so near-identical frames never land on both. Groups are taken in time order; each goes to `val` while `val`
    holds less than its share of what was seen so far (so `val` spreads over the whole period)."""
    by_source: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_source[str(item.record.get("source", ""))].append(item)
    groups: list[list[Item]] = []
    for _, timed in sorted(by_source.items()):
        timed.sort(key=lambda i: (i.captured_at, i.name))
        for item in timed:
            if not groups or groups[-1][0].record.get("source") != item.record.get("source") \
                    or (item.captured_at - groups[-1][-1].captured_at).total_seconds() >= SPLIT_GAP_S \
                    or (item.captured_at - groups[-1][0].captured_at).total_seconds() >= SPLIT_SPAN_S:
                groups.append([])
            groups[-1].append(item)
    if len(groups) < 2:
        raise InputError(f"--split needs frames of at least two moments (or sources); all {len(items)} images are "
                         f"one group of frames less than {SPLIT_GAP_S:g} s apart: export without --split")
    groups.sort(key=lambda g: (g[0].captured_at, str(g[0].record.get("source", "")), g[0].name))
    parts: dict[str, list[Item]] = {"train": [], "val": []}
    for group in groups:
        seen = len(parts["train"]) + len(parts["val"]) + len(group)
        parts["val" if len(parts["val"]) < (1.0 - train) * seen else "train"].extend(group)
    if not parts["train"]:
        raise InputError(f"--split {train:g} leaves no image for training: the dataset is too few groups of frames")
    return parts


def _write_data_yaml(out: Path, classes: list[str], split: bool) -> None:
    """Ultralytics' dataset file: the root, train and val image folders, the class names."""
    import yaml

    data = {"path": str(out.resolve()), "train": "images/train" if split else "images",
            "val": "images/val" if split else "images", "nc": len(classes), "names": classes}
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def _complete_coco(path: Path, annotations: dict[str, Any], items: list[Item], dataset: str) -> None:
    """Fill what supervision leaves out: each annotation's confidence as `score`, each image's capture time as
    `date_captured` and its provenance as `framesift`, and `info`."""
    coco = json.loads(path.read_text())
    by_name = {Path(item.image).name: item for item in items}
    by_id: dict[int, list[dict[str, Any]]] = {}
    for annotation in coco["annotations"]:
        by_id.setdefault(annotation["image_id"], []).append(annotation)
    for image in coco["images"]:
        item = by_name[image["file_name"]]
        image["date_captured"] = item.captured_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        image["framesift"] = {key: item.record[key] for key in PROVENANCE if key in item.record}
        confidence = annotations[item.image].confidence
        if confidence is not None:
            for annotation, score in zip(by_id.get(image["id"], []), confidence, strict=True):
                annotation["score"] = float(score)
    now = datetime.now(timezone.utc)
    coco["info"] = {"description": f"framesift export of the dataset {dataset}", "version": __version__,
                    "year": now.year, "contributor": "framesift", "url": "",
                    "date_created": now.strftime("%Y-%m-%d %H:%M:%S")}
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
