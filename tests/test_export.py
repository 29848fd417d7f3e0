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
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from framesift import export_dataset
from framesift.collectors import Collector, LocalDataset
from framesift.collectors.targets.local import read_records
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
    assert (tmp_path / "plain" / "data.yaml").read_text() == (tmp_path / "scored" / "data.yaml").read_text()


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
