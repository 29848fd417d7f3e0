"""SPEC §7: the layout, the record, durability under SIGKILL, torn-line repair, appending."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from framesift.collectors import Collector, LocalDataset
from framesift.collectors.targets.datapoint import Datapoint
from framesift.dataset.records import read_records
from framesift.predictions import DetectionPrediction, StubPrediction
from tests.helpers import collect_all_config, wait_until

WRITER = """
import sys, time, cv2, numpy as np  # cv2 loaded up front so kills land among writes
from framesift.collectors import Collector, LocalDataset
from framesift.collectors.targets.datapoint import Datapoint
from framesift.predictions import DetectionPrediction
from tests.helpers import collect_all_config, wait_until
collector = Collector(collect_all_config(), LocalDataset(sys.argv[1]), max_queue_items=4)
frame = np.random.default_rng(0).integers(0, 255, (360, 480, 3), dtype=np.uint8)
p = DetectionPrediction.from_lists("object-detection", "m/1", (480, 360), xyxy=[[1, 2, 30, 40]],
                                   confidence=[0.5], class_name=["a"])
print("ready", flush=True)
i = 0
while True:
    collector.submit(frame, p, frame_id=i)
    i += 1
    time.sleep(0.002)  # a frame source paces itself; a busy loop would starve the writer thread of the GIL
"""


def assert_dataset_complete(root: Path) -> int:
    records = list(read_records(root))
    for record in records:
        image = cv2.imread(str(root / record["image"]))
        assert image is not None and image.shape == (record["height"], record["width"], 3), record["image"]
        if record["prediction"] is not None:
            json.loads((root / record["prediction"]).read_text())
    return len(records)


def test_sigkill_at_random_moments_never_leaves_a_broken_record(tmp_path):
    root = tmp_path / "ds"
    rng = random.Random(11)
    counts = []
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    for _ in range(25):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, env=env)
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        LocalDataset(root).close()  # the next run repairs a torn last line
        counts.append(assert_dataset_complete(root))
        assert not list(root.glob("*/*/.*.tmp"))  # leftovers of the killed run are gone
    assert counts == sorted(counts) and counts[-1] > 25  # every run appended, none overwrote


def test_torn_last_line_is_ignored_then_repaired(tmp_path, caplog):
    root = tmp_path / "ds"
    with Collector(collect_all_config(), LocalDataset(root)) as collector:
        collector.submit(np.zeros((10, 10, 3), np.uint8), StubPrediction("stub"))
    records_file = root / "datapoints.jsonl"
    with open(records_file, "ab") as f:
        f.write(b'{"id": "torn", "batch": "b", "ima')
    assert [r["id"] for r in read_records(root)] != ["torn"] and len(list(read_records(root))) == 1
    LocalDataset(root).close()
    assert records_file.read_bytes().endswith(b"}\n")
    assert "torn last line" in caplog.text


def test_layout_and_record_fields(tmp_path):
    root = tmp_path / "ds"
    prediction = DetectionPrediction.from_lists("object-detection", "people/3", (64, 48), xyxy=[[1, 2, 3, 4]],
                                                confidence=[0.5], class_name=["person"])
    config = collect_all_config(tags=["site"], target_project="people")
    collector = Collector(config, LocalDataset(root), environ={"ACTIVE_LEARNING_TAGS": "env1, site"})
    collector.submit(np.zeros((48, 64, 3), np.uint8), prediction, source="rtsp://admin:s3cret@cam/1",
                     frame_id=42)
    collector.submit(np.zeros((48, 64, 3), np.uint8), StubPrediction("stub"), frame_id=43)
    collector.close()
    first, stub = read_records(root)
    assert first["image"] == f"b/images/{first['id']}.jpg" and (root / first["image"]).is_file()
    assert first["prediction"] == f"b/predictions/{first['id']}.json"
    assert json.loads((root / first["prediction"]).read_text())["model_id"] == "people/3"
    assert first["tags"] == ["env1", "site", "people-3"]
    assert first["source"] == "rtsp://admin:***@cam/1"
    assert "s3cret" not in (root / "datapoints.jsonl").read_text()
    assert first["captured_at"].endswith("Z") and first["frame_id"] == 42
    assert (first["width"], first["height"], first["original_width"], first["original_height"]) == (64, 48, 64, 48)
    assert (first["model_id"], first["task_type"], first["strategy"]) == ("people/3", "object-detection", "all")
    assert first["target_project"] == "people"
    # a stub prediction is never persisted as an annotation, so it gets no model tag either
    assert stub["prediction"] is None and stub["tags"] == ["env1", "site"]
    assert not (root / "b" / "predictions" / f"{stub['id']}.json").exists()


def test_a_run_appends_and_the_batch_cap_counts_what_is_there(tmp_path):
    root = tmp_path / "ds"
    config = collect_all_config(batching_strategy={"batches_name_prefix": "b", "recreation_interval": "never",
                                                   "max_batch_images": 5})
    frame = np.zeros((8, 8, 3), np.uint8)
    for expected in (3, 2):
        collector = Collector(config, LocalDataset(root))
        for _ in range(3):
            collector.submit(frame, StubPrediction("stub"))
        collector.close()
        assert collector.snapshot().datapoints_registered == expected
    assert collector.snapshot().datapoints_rejected_by_batch_cap == 1
    assert len(list(read_records(root))) == 5


def test_a_full_disk_is_counted_and_does_not_stop_the_collector(tmp_path, caplog):
    root = tmp_path / "ds"
    dataset = LocalDataset(root)
    (root / "b").write_text("a file where the batch folder should be")  # every write into it fails
    collector = Collector(collect_all_config(), dataset)
    for _ in range(3):
        assert collector.submit(np.zeros((8, 8, 3), np.uint8), StubPrediction("stub"))
    collector.close()
    assert collector.snapshot().datapoints_failed == 3
    assert "could not register a datapoint" in caplog.text


def test_a_real_full_disk_leaves_only_complete_datapoints_and_recovers(small_disk):
    """A disk filled to a random few pages before each datapoint: the image, the prediction or the record is the
    write that fails, in turn. Whatever fails, nothing of that datapoint is left, and no record is torn."""
    disk = small_disk("256k")
    dataset = LocalDataset(disk / "ds")
    rng = random.Random(1)
    registered, refused = [], 0
    for i in range(150):
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        leave = rng.randrange(0, 6) * 4096
        if free > leave:
            (disk / "filler").write_bytes(bytes(free - leave))
        side = rng.randrange(16, 40)
        frame = np.random.default_rng(i).integers(0, 255, (side, side, 3), dtype=np.uint8)
        datapoint = Datapoint(
            id=f"dp{i:04d}", batch="b", jpeg=cv2.imencode(".jpg", frame)[1].tobytes(), width=side, height=side,
            original_width=side, original_height=side, prediction={"predictions": [], "pad": "x" * rng.randrange(3000)},
            tags=["t" * rng.randrange(2000)], strategy="s", source="cam", frame_id=i,
            captured_at=datetime.now(timezone.utc), model_id="m", task_type="object-detection")
        try:
            dataset.register(datapoint)
            registered.append(datapoint.id)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
            refused += 1
        (disk / "filler").unlink(missing_ok=True)
    dataset.close()
    assert registered and refused > 50
    lines = (disk / "ds" / "datapoints.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["id"] for line in lines] == registered  # every line whole, none of a refused one
    assert assert_dataset_complete(disk / "ds") == len(registered)
    on_disk = {p.relative_to(disk / "ds").as_posix() for p in (disk / "ds").rglob("*") if p.is_file()}
    recorded = {r[k] for r in read_records(disk / "ds") for k in ("image", "prediction")}
    assert on_disk == recorded | {"datapoints.jsonl"}  # no orphan file, no temporary left


def assert_every_image_has_its_record(root: Path) -> int:
    """Every image in the folder has a record in its datapoints.jsonl, and every record points at its files."""
    records = list(read_records(root))
    assert {r["image"] for r in records} == {p.relative_to(root).as_posix() for p in root.glob("*/images/*.jpg")}
    return assert_dataset_complete(root)


@pytest.mark.parametrize("how", ["rm -rf the folder", "mv the folder", "mv the records file"])
def test_a_dataset_moved_or_deleted_while_running_keeps_each_image_with_its_record(tmp_path, caplog, how):
    root = tmp_path / "ds"
    collector = Collector(collect_all_config(), LocalDataset(root))
    frame = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    prediction = DetectionPrediction.from_lists("object-detection", "m/1", (64, 48), xyxy=[[1, 2, 30, 40]],
                                                confidence=[0.5], class_name=["a"])
    for i in range(10):
        collector.submit(frame, prediction, frame_id=i)
    assert wait_until(lambda: collector.snapshot().datapoints_registered == 10)
    if how == "rm -rf the folder":
        shutil.rmtree(root)
    elif how == "mv the folder":
        root.rename(tmp_path / "moved")
    else:
        (root / "datapoints.jsonl").rename(tmp_path / "records-elsewhere.jsonl")
    for i in range(10, 20):
        collector.submit(frame, prediction, frame_id=i)
    collector.close()
    assert collector.snapshot().datapoints_registered == 20 and collector.snapshot().datapoints_failed == 0
    assert "was moved or deleted while framesift wrote to it" in caplog.text
    after = [r["frame_id"] for r in read_records(root)]
    assert after == list(range(10, 20))  # what came after the change is all there, each record with its files
    if how == "mv the records file":
        assert_dataset_complete(root)  # the earlier images stayed; their records went with the moved file
    else:
        assert assert_every_image_has_its_record(root) == 10
    if how == "mv the folder":
        assert assert_every_image_has_its_record(tmp_path / "moved") == 10


def test_a_complete_last_record_without_its_newline_is_kept(tmp_path, caplog):
    root = tmp_path / "ds"
    with Collector(collect_all_config(), LocalDataset(root)) as collector:
        for i in range(2):
            collector.submit(np.zeros((10, 10, 3), np.uint8), StubPrediction("stub"), frame_id=i)
    records_file = root / "datapoints.jsonl"
    records_file.write_bytes(records_file.read_bytes().rstrip(b"\n"))  # an editor saved it without the newline
    assert [r["frame_id"] for r in read_records(root)] == [0, 1]
    with Collector(collect_all_config(), LocalDataset(root)) as collector:  # a new run appends after it
        collector.submit(np.zeros((10, 10, 3), np.uint8), StubPrediction("stub"), frame_id=2)
    assert [r["frame_id"] for r in read_records(root)] == [0, 1, 2]
    assert_every_image_has_its_record(root)
    assert "added the missing newline" in caplog.text
