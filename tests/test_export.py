"""Exports keep the predictions' confidences: COCO `score`, YOLO's sixth column with `--with-confidence`.

COCO scores are read back by a real importer, not by our own code: pycocotools (the COCO reference API) loads the
annotations as detection results (`COCO.loadRes`) and evaluates them (`COCOeval`, which needs `score`). FiftyOne
is not used: its database package `fiftyone-db` downloads MongoDB from fastdl.mongodb.org when it is installed (only
PyPI and apt are reachable here), and its last wheel that bundles `mongod` (0.4.5) needs OpenSSL 1.1, which Debian 12
no longer ships, so FiftyOne cannot open a dataset on this machine; with its dependencies it is also about 1.2 GB
and starts a MongoDB server, heavy for a test suite. supervision's `DetectionDataset.from_yolo` reads a sixth column
but drops it, so YOLO labels are read by the small reader below (and by supervision, to check polygons still load).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from framesift import export_dataset
from framesift.collectors import Collector, LocalDataset
from framesift.dataset.records import read_records
from framesift.errors import InputError
from framesift.predictions import DetectionPrediction, Prediction, StubPrediction
from tests.helpers import collect_all_config, point_records_outside

WIDTH, HEIGHT = 320, 240
# frame_id -> (class, xyxy, confidence) of each detection the model "saw"; frame 2 is a stub (no prediction)
KNOWN = {
    0: [("person", (32, 24, 96, 72), 0.9123), ("car", (160, 120, 320, 240), 0.40712),
        ("person", (0, 0, 16, 12), 0.66666)],
    1: [("car", (64, 48, 128, 144), 0.13)],
}
# the 5-column labels supervision wrote before confidences were kept: classes sorted (car 0, person 1), 5 decimals
YOLO_LINES = {
    0: ["1 0.20000 0.20000 0.20000 0.20000", "0 0.75000 0.75000 0.50000 0.50000", "1 0.02500 0.02500 0.05000 0.05000"],
    1: ["0 0.30000 0.40000 0.20000 0.40000"],
    2: [],
}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framesift.cli", *args], capture_output=True, text=True, timeout=300)


def collect(root: Path, predictions: dict[int, Prediction | dict[str, Any]]) -> dict[str, int]:
    """Collect one frame per prediction through the real collector; returns each record's image name -> frame id."""
    frame = np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    with Collector(collect_all_config(), LocalDataset(root)) as collector:
        for frame_id, prediction in predictions.items():
            assert collector.submit(frame, prediction, frame_id=frame_id)
    return {Path(r["image"]).name: r["frame_id"] for r in read_records(root)}


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    predictions: dict[int, Prediction | dict[str, Any]] = {
        frame_id: DetectionPrediction.from_lists("object-detection", "m/1", (WIDTH, HEIGHT),
                                                 xyxy=[box for _, box, _ in known],
                                                 confidence=[c for _, _, c in known],
                                                 class_name=[name for name, _, _ in known])
        for frame_id, known in KNOWN.items()}
    predictions[2] = StubPrediction("stub")
    frames = collect(tmp_path / "ds", predictions)
    assert sorted(frames.values()) == [0, 1, 2]
    return tmp_path / "ds", frames


def read_yolo(out: Path) -> dict[str, list[tuple[str, list[float], float | None]]]:
    """Each label file's rows as (class name, coordinates, confidence or None), read the way Ultralytics writes
    them with `save_conf`: a box has 5 values or 6 with a confidence; a polygon an odd count, or even with one."""
    names = yaml.safe_load((out / "data.yaml").read_text())["names"]
    labels = {}
    for path in (out / "labels").glob("*.txt"):
        rows = []
        for line in path.read_text().splitlines():
            values = line.split()
            has_confidence = len(values) == 6 if len(values) <= 6 else len(values) % 2 == 0
            coordinates = [float(v) for v in values[1:-1 if has_confidence else None]]
            rows.append((names[int(values[0])], coordinates, float(values[-1]) if has_confidence else None))
        labels[path.stem] = rows
    return labels


def test_coco_annotations_carry_score_and_pycocotools_loads_them_as_results(dataset, tmp_path, capsys):
    root, frames = dataset
    export_dataset(root, "coco", tmp_path / "coco")
    path = tmp_path / "coco" / "annotations.json"
    truth = COCO(str(path))
    results = truth.loadRes(json.loads(path.read_text())["annotations"])  # asserts every image and category exists
    for image in results.dataset["images"]:
        found = results.loadAnns(results.getAnnIds(imgIds=[image["id"]]))
        got = sorted((results.cats[a["category_id"]]["name"], [round(v, 3) for v in a["bbox"]], round(a["score"], 6))
                     for a in found)
        expected = sorted((name, [x1, y1, x2 - x1, y2 - y1], c) for name, (x1, y1, x2, y2), c
                          in KNOWN.get(frames[image["file_name"]], []))
        assert got == expected, image["file_name"]
    assert len(results.dataset["annotations"]) == sum(map(len, KNOWN.values()))
    # the score is the persisted confidence itself, not a rounding of it
    for record in read_records(root):
        if record["prediction"]:
            persisted = [p["confidence"] for p in json.loads((root / record["prediction"]).read_text())["predictions"]]
            image_id = next(i["id"] for i in truth.dataset["images"] if i["file_name"] == Path(record["image"]).name)
            assert [a["score"] for a in truth.imgToAnns[image_id]] == persisted
    # scored results evaluate: the export against itself is a perfect detector (COCOeval sorts by score)
    evaluation = COCOeval(truth, results, "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[1] == pytest.approx(1.0)  # AP at IoU 0.5
    capsys.readouterr()


@pytest.mark.parametrize("how", ["api", "cli"])
def test_yolo_with_confidence_round_trips_the_scores(dataset, tmp_path, how):
    root, frames = dataset
    out = tmp_path / "yolo"
    if how == "api":
        assert export_dataset(root, "yolo", out, with_confidence=True).exported == 3
    else:
        result = run_cli("export", str(root), "--format", "yolo", "--out", str(out), "--with-confidence")
        assert result.returncode == 0, result.stderr
        assert "exported 3 images" in result.stdout
    labels = read_yolo(out)
    assert len(labels) == 3
    for stem, rows in labels.items():
        frame_id = frames[f"{stem}.jpg"]
        expected = sorted((name, [(x1 + x2) / 2 / WIDTH, (y1 + y2) / 2 / HEIGHT, (x2 - x1) / WIDTH,
                                  (y2 - y1) / HEIGHT], c) for name, (x1, y1, x2, y2), c in KNOWN.get(frame_id, []))
        got = sorted(rows)
        assert [(name, c) for name, _, c in got] == [(name, pytest.approx(c, abs=5e-6)) for name, _, c in expected]
        assert [xywh for _, xywh, _ in got] == [pytest.approx(xywh, abs=1e-5) for _, xywh, _ in expected]


def test_yolo_without_the_flag_is_unchanged_and_the_flag_only_appends_a_column(dataset, tmp_path):
    root, frames = dataset
    export_dataset(root, "yolo", tmp_path / "plain")
    export_dataset(root, "yolo", tmp_path / "scored", with_confidence=True)
    for path in (tmp_path / "plain" / "labels").glob("*.txt"):
        plain = path.read_text().splitlines()
        assert plain == YOLO_LINES[frames[f"{path.stem}.jpg"]]
        scored = (tmp_path / "scored" / "labels" / path.name).read_text().splitlines()
        assert [line.rsplit(" ", 1)[0] for line in scored] == plain
        assert all(len(line.split()) == 6 for line in scored)
    plain, scored = (yaml.safe_load((tmp_path / name / "data.yaml").read_text()) for name in ("plain", "scored"))
    assert plain.pop("path") == str((tmp_path / "plain").resolve())
    assert scored.pop("path") == str((tmp_path / "scored").resolve()) and plain == scored


def test_segmentation_keeps_its_polygons_and_gains_the_score(tmp_path):
    angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    disc = np.stack([100 + 40 * np.cos(angles), 100 + 40 * np.sin(angles)], axis=1)  # a polygon of 32 points
    prediction = DetectionPrediction.from_lists("instance-segmentation", "seg/1", (WIDTH, HEIGHT),
                                                xyxy=[(60, 60, 140, 140)], confidence=[0.777], class_name=["disc"],
                                                polygons=[disc.tolist()])
    collect(tmp_path / "ds", {0: prediction})
    export_dataset(tmp_path / "ds", "coco", tmp_path / "coco")
    [annotation] = json.loads((tmp_path / "coco" / "annotations.json").read_text())["annotations"]
    assert len(annotation["segmentation"][0]) > 8 and annotation["score"] == pytest.approx(0.777)
    export_dataset(tmp_path / "ds", "yolo", tmp_path / "plain")
    export_dataset(tmp_path / "ds", "yolo", tmp_path / "yolo", with_confidence=True)
    [[(name, points, confidence)]] = read_yolo(tmp_path / "yolo").values()
    assert name == "disc" and confidence == pytest.approx(0.777, abs=5e-6) and len(points) > 8
    [plain] = (tmp_path / "plain" / "labels").glob("*.txt")
    [scored] = (tmp_path / "yolo" / "labels").glob("*.txt")
    assert scored.read_text().rsplit(" ", 1)[0] == plain.read_text().rstrip("\n")  # the same polygon, then conf
    # supervision's reader takes the trailing confidence off the polygon and still makes its mask
    import supervision as sv

    loaded = sv.DetectionDataset.from_yolo(str(tmp_path / "yolo" / "images"), str(tmp_path / "yolo" / "labels"),
                                           str(tmp_path / "yolo" / "data.yaml"))
    [detections] = loaded.annotations.values()
    assert detections.xyxy[0] == pytest.approx([60, 60, 140, 140], abs=2)
    assert detections.mask is not None and detections.mask[0].sum() == pytest.approx(np.pi * 40**2, rel=0.05)


def test_a_prediction_without_confidences_exports_without_scores(tmp_path):
    box = {"x": 64.0, "y": 48.0, "width": 64.0, "height": 48.0, "class": "person", "class_id": 0}
    unscored = {"image": {"width": WIDTH, "height": HEIGHT}, "predictions": [box], "model_id": "hand/1",
                "task_type": "object-detection"}
    scored = {**unscored, "predictions": [{**box, "confidence": 0.5}]}
    frames = collect(tmp_path / "ds", {0: unscored, 1: scored})
    export_dataset(tmp_path / "ds", "coco", tmp_path / "coco")
    coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    frame_of = {i["id"]: frames[i["file_name"]] for i in coco["images"]}
    assert {frame_of[a["image_id"]]: a.get("score") for a in coco["annotations"]} == {0: None, 1: 0.5}
    export_dataset(tmp_path / "ds", "yolo", tmp_path / "yolo", with_confidence=True)
    labels = {frames[f"{stem}.jpg"]: rows for stem, rows in read_yolo(tmp_path / "yolo").items()}
    assert [c for _, _, c in labels[0]] == [None] and [c for _, _, c in labels[1]] == [pytest.approx(0.5)]


def test_voc_refuses_a_confidence_in_one_sentence(dataset, tmp_path):
    root, _ = dataset
    with pytest.raises(InputError, match="voc has no field for a confidence"):
        export_dataset(root, "voc", tmp_path / "voc", with_confidence=True)
    result = run_cli("export", str(root), "--format", "voc", "--out", str(tmp_path / "voc"), "--with-confidence")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("framesift: voc has no field for a confidence") and not (tmp_path / "voc").exists()


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_records_pointing_outside_the_dataset_are_skipped_and_named_the_rest_exported(dataset, tmp_path, fmt):
    """Before, `/etc/hostname` and `../../../../etc/passwd` were copied into the export's images/ and the export
    failed with supervision's ValueError; an outside JPEG was exported silently; two with one base name failed."""
    root, frames = dataset
    skipped = point_records_outside(root, tmp_path / "elsewhere")
    first = next(read_records(root))
    copy = root / "b2" / "images" / Path(first["image"]).name  # an image copied into a second batch by hand
    copy.parent.mkdir(parents=True)
    copy.write_bytes((root / first["image"]).read_bytes())
    with open(root / "datapoints.jsonl", "a") as f:
        f.write(json.dumps({**first, "id": "same_name", "image": f"b2/images/{copy.name}"}) + "\n")
    skipped.append(("same_name", f"its image's file name {copy.name} is that of the image of {first['id']}, "
                                 "exported already"))
    result = run_cli("export", str(root), "--format", fmt, "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert f"exported {len(frames)} images" in result.stdout
    assert result.stderr.splitlines() == [f"framesift: skipped {len(skipped)} records that cannot be exported:",
                                          *(f"  {name}: {why}" for name, why in skipped)]
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == sorted(frames)


# -- data that goes on: YOLO that trains, COCO that keeps the trail ---------------------------------------------------
IMG_FORMATS = {"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm", "heic"}


def ultralytics_check(data_yaml: Path) -> dict[str, list[Path]]:
    """The rules Ultralytics applies to a detection dataset file before training, restated from its source
    (`ultralytics/data/utils.py`: `check_det_dataset`, `img2label_paths`; `ultralytics/data/dataset.py`): the
    `ultralytics` package itself needs PyTorch (about 2 GB), too heavy for the test extra. `train` and `val` are
    required; `names` or `nc`, of one length; paths are joined to `path` (else the YAML's folder); `val` must exist;
    each image's labels are the file of its stem under the same path with `/images/` replaced by `/labels/`, every
    class id below `nc`. Returns each part's images."""
    data = yaml.safe_load(data_yaml.read_text())
    for key in ("train", "val"):
        assert key in data, f"'{key}:' key missing: 'train' and 'val' are required in all data YAMLs"
    assert "names" in data or "nc" in data
    if "names" in data and "nc" in data:
        assert len(data["names"]) == data["nc"]
    root = Path(data.get("path") or data_yaml.parent)
    assert root.is_absolute() or root.exists()  # else Ultralytics looks for it under its own datasets folder
    found = {}
    for part in ("train", "val"):
        folder = (root / data[part]).resolve()
        assert folder.exists(), f"Dataset images not found, missing path {folder}"
        images = sorted(p for p in folder.rglob("*.*") if p.suffix[1:].lower() in IMG_FORMATS)
        assert images, f"no images found in {folder}"
        for image in images:
            sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
            label = Path(sb.join(str(image).rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt")
            assert label.is_file(), f"no labels for {image}"
            for line in label.read_text().splitlines():
                assert 0 <= int(line.split()[0]) < len(data["names"])
        found[part] = images
    return found


def test_a_yolo_export_names_its_root_train_and_val_as_ultralytics_requires(dataset, tmp_path):
    """Before, data.yaml held only nc and names: Ultralytics refused it ('train' and 'val' are required)."""
    root, frames = dataset
    export_dataset(root, "yolo", tmp_path / "yolo")
    data = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    assert data["path"] == str((tmp_path / "yolo").resolve()) and data["names"] == ["car", "person"]
    images = ultralytics_check(tmp_path / "yolo" / "data.yaml")
    assert sorted(p.name for p in images["train"]) == sorted(p.name for p in images["val"]) == sorted(frames)


def collect_timed(root: Path, timeline: list[tuple[str, float]]) -> dict[str, tuple[str, float]]:
    """Collect one detection per (source, seconds) through the real collector; returns image name -> them."""
    start = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
    frame = np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    prediction = DetectionPrediction.from_lists("object-detection", "m/1", (WIDTH, HEIGHT), xyxy=[(10, 10, 50, 50)],
                                                confidence=[0.5], class_name=["car"])
    with Collector(collect_all_config(), LocalDataset(root), max_queue_items=len(timeline)) as collector:
        for frame_id, (source, seconds) in enumerate(timeline):
            assert collector.submit(frame, prediction, source=source, frame_id=frame_id,
                                    captured_at=start + timedelta(seconds=seconds))
    return {Path(r["image"]).name: timeline[r["frame_id"]] for r in read_records(root)}


def test_split_keeps_frames_of_one_source_close_in_time_on_one_side_and_is_deterministic(tmp_path):
    # bursts: cam-a every 2 s for 30 s at 0, 300 and 900 s; cam-b every 3 s for 15 s at 0 and 600 s; a 3-minute
    # stream of cam-c, one frame every 5 s (cut into minute-long groups)
    timeline = [("cam-a", t + s) for t in (0, 300, 900) for s in range(0, 30, 2)]
    timeline += [("cam-b", t + s) for t in (0, 600) for s in range(0, 15, 3)]
    timeline += [("cam-c", 1200 + s) for s in range(0, 180, 5)]
    frames = collect_timed(tmp_path / "ds", timeline)
    result = run_cli("export", str(tmp_path / "ds"), "--format", "yolo", "--out", str(tmp_path / "a"),
                     "--split", "0.8", "--with-confidence")
    assert result.returncode == 0, result.stderr
    images = ultralytics_check(tmp_path / "a" / "data.yaml")
    side = {p.name: part for part, paths in images.items() for p in paths}
    assert sorted(side) == sorted(frames)  # every image exactly once
    assert f"exported {len(frames)} images" in result.stdout and f"{len(images['val'])} val" in result.stdout
    assert 0.1 <= len(images["val"]) / len(frames) <= 0.35
    for a, b in ((a, b) for a in frames for b in frames if a < b):  # near frames of one source: one side
        (source_a, at_a), (source_b, at_b) = frames[a], frames[b]
        if source_a == source_b and abs(at_a - at_b) < 5 and source_a != "cam-c":
            assert side[a] == side[b], (frames[a], frames[b])
    assert {frames[name][0] for name, part in side.items() if part == "val"} >= {"cam-a"}
    for label in (tmp_path / "a" / "labels" / "val").glob("*.txt"):
        assert len(label.read_text().split()) == 6  # --with-confidence works in a split too
    export_dataset(tmp_path / "ds", "yolo", tmp_path / "b", split=0.8)  # again: the same sides
    assert {p.name: part for part, paths in ultralytics_check(tmp_path / "b" / "data.yaml").items()
            for p in paths} == side


@pytest.mark.parametrize("args,message", [
    (["--format", "coco", "--split", "0.8"], "--split makes YOLO's train and val folders; coco is exported as one"),
    (["--format", "yolo", "--split", "1.5"], "--split is the share of images for training, between 0 and 1"),
    (["--format", "yolo", "--split", "0.8"], "--split needs frames of at least two moments"),
])
def test_a_split_that_cannot_be_made_is_refused_in_one_sentence(tmp_path, args, message):
    collect_timed(tmp_path / "ds", [("cam", 0.0), ("cam", 1.0)])
    result = run_cli("export", str(tmp_path / "ds"), *args, "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.startswith(f"framesift: {message}"), result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_coco_images_keep_their_capture_time_and_provenance(dataset, tmp_path, capsys):
    """Before, date_captured was the export's time, info was empty and nothing named the source, frame, strategy,
    batch or tags of an image."""
    root, frames = dataset
    export_dataset(root, "coco", tmp_path / "coco")
    path = tmp_path / "coco" / "annotations.json"
    coco = COCO(str(path))  # the reference reader loads it
    capsys.readouterr()
    records = {Path(r["image"]).name: r for r in read_records(root)}
    for image in coco.dataset["images"]:
        record = records[image["file_name"]]
        captured = datetime.fromisoformat(record["captured_at"]).astimezone(timezone.utc)
        assert image["date_captured"] == captured.strftime("%Y-%m-%d %H:%M:%S")
        assert image["framesift"] == {key: record[key] for key in ("id", "source", "frame_id", "captured_at",
                                                                   "strategy", "batch", "tags", "model_id")}
        assert image["framesift"]["frame_id"] == frames[image["file_name"]]
    info = coco.dataset["info"]
    assert info["description"] == "framesift export of the dataset ds" and info["version"]
    assert datetime.strptime(info["date_created"], "%Y-%m-%d %H:%M:%S")
