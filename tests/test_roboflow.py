"""SPEC §8: the Roboflow target never loses a datapoint, never duplicates one, never shows its key.

Against a local server implementing the documented endpoints (tests/roboflow_server.py): the hosted API is the
one outside service the tests may stand in for.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import numpy as np
import pytest
import requests

from framesift.collectors import Collector
from framesift.collectors.targets import open_target
from framesift.collectors.targets.datapoint import Datapoint
from framesift.collectors.targets.outbox import Outbox, describe
from framesift.collectors.targets.roboflow import RoboflowTarget
from framesift.errors import OutboxFull
from framesift.http_answers import retry_after
from framesift.observe.exposition import SnapshotCollector
from framesift.predictions import DetectionPrediction
from framesift.stats import CollectorStats, StreamStats
from tests.helpers import ROBOFLOW_KEY, collect_all_config, wait_until
from tests.roboflow_server import FakeRoboflow

KEY = ROBOFLOW_KEY


BOX = {"x": 5.0, "y": 5.0, "width": 4.0, "height": 4.0, "confidence": 0.8, "class": "person", "class_id": 0,
       "detection_id": "d-1"}


def datapoint(i: int, prediction: bool = True, boxes: tuple[dict, ...] = (BOX,)) -> Datapoint:
    return Datapoint(
        id=f"dp{i:04d}", batch="b1", jpeg=b"\xff\xd8 fake jpeg " + bytes([i % 256]) * 100, width=10, height=10,
        original_width=10, original_height=10,
        prediction={"image": {"width": 10, "height": 10}, "predictions": list(boxes), "model_id": "m/1"}
        if prediction else None,
        tags=["t1", "t2"], strategy="s", source="cam", frame_id=i, captured_at=datetime.now(timezone.utc),
        model_id="m/1", task_type="object-detection")


def target_for(server: FakeRoboflow, folder: Path, **kwargs) -> RoboflowTarget:
    target = RoboflowTarget("people", KEY, Outbox(folder), base_url=server.url, timeout=2)
    target.sender._initial, target.sender._max = 0.05, 0.3  # fast retries for the test
    target.sender.start()
    return target


def test_outage_then_flaky_server_then_lost_replies_delivers_exactly_n(tmp_path, roboflow):
    n = 24
    roboflow.stop()  # down
    target = target_for(roboflow, tmp_path / "outbox")
    for i in range(8):
        target.register(datapoint(i))
    time.sleep(1.0)
    assert target.stats().retried > 0 and target.stats().pending == 8
    roboflow.start()  # up, but failing every other request with 503
    roboflow.mode = "flaky"
    for i in range(8, 16):
        target.register(datapoint(i))
    assert wait_until(lambda: len(roboflow.uploads) >= 12)
    roboflow.mode = "drop"  # processes each request, then loses every other reply
    for i in range(16, n):
        target.register(datapoint(i))
    time.sleep(1.5)
    roboflow.mode = "ok"
    assert wait_until(lambda: target.stats().pending == 0)
    target.close()
    assert roboflow.names() == [f"dp{i:04d}.jpg" for i in range(n)]  # every image once
    # every annotation once, on its own image: an annotate whose reply was lost was sent again and answered 409
    assert sorted(name for name, _ in roboflow.annotations.values()) == [f"dp{i:04d}.json" for i in range(n)]
    for image_id, (name, _) in roboflow.annotations.items():
        assert roboflow.uploads[image_id].name == name.replace(".json", ".jpg")
    assert roboflow.annotate_requests > n
    upload = next(iter(roboflow.uploads.values()))
    assert upload.batch == "b1" and upload.tags == ["t1", "t2"]
    stats = target.stats()
    assert stats.delivered == n and stats.pending_bytes == 0 and stats.dead == 0


WORKER = """
import sys, time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
sys.path.insert(0, sys.argv[3])
from framesift.collectors.targets.outbox import Outbox
from framesift.collectors.targets.roboflow import RoboflowTarget
from tests.test_roboflow import datapoint, KEY
target = RoboflowTarget("people", KEY, Outbox(sys.argv[1]), base_url=sys.argv[2], timeout=2)
target.start()
if len(sys.argv) > 4:
    for i in range(int(sys.argv[4])):
        target.register(datapoint(i))
print("ready", flush=True)
while target.stats().pending:
    time.sleep(0.01)
print("done", flush=True)
"""


def test_sigkill_of_the_sender_mid_delivery_then_restart_delivers_exactly_n(tmp_path, roboflow):
    n, rng = 30, random.Random(4)
    outbox = tmp_path / "outbox"
    root = str(Path(__file__).parents[1])
    args = [sys.executable, "-c", WORKER, str(outbox), roboflow.url, root]
    roboflow.mode = "drop"  # replies lost half the time: kills land between processing and confirmation
    first = True
    for attempt in range(40):
        roboflow.mode = "drop" if attempt % 2 else "ok"
        child = subprocess.Popen(args + ([str(n)] if first else []), stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        first = False
        time.sleep(rng.uniform(0.02, 0.2))
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if not describe(outbox)["pending"]:
            break
    roboflow.mode = "ok"
    child = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert child.stdout.strip().endswith("done")
    assert roboflow.names() == [f"dp{i:04d}.jpg" for i in range(n)]
    assert sorted(name for name, _ in roboflow.annotations.values()) == [f"dp{i:04d}.json" for i in range(n)]


def test_an_empty_detection_list_registers_the_image_without_an_annotation(tmp_path, roboflow):
    """Roboflow reads an empty annotation as "this image holds no objects": a label, not a pre-annotation."""
    target = target_for(roboflow, tmp_path / "outbox")
    target.register(datapoint(0, boxes=()))
    target.register(datapoint(1))
    target.register(datapoint(2, prediction=False))
    assert wait_until(lambda: target.stats().delivered == 3)
    target.close()
    assert roboflow.names() == ["dp0000.jpg", "dp0001.jpg", "dp0002.jpg"]
    assert [name for name, _ in roboflow.annotations.values()] == ["dp0001.json"]
    assert roboflow.annotate_requests == 1


def test_a_full_outbox_refuses_and_the_collector_counts_it(tmp_path, roboflow):
    roboflow.stop()
    box = Outbox(tmp_path / "outbox", max_bytes=1000)
    with pytest.raises(OutboxFull):
        for i in range(20):
            box.add(datapoint(i))
    target = RoboflowTarget("people", KEY, Outbox(tmp_path / "outbox2", max_bytes=2000), base_url=roboflow.url)
    collector = Collector(collect_all_config(), target, max_queue_items=100)
    prediction = DetectionPrediction.from_lists("object-detection", "m", (64, 48), xyxy=[], confidence=[],
                                                class_name=[])
    for _ in range(30):
        collector.submit(np.zeros((48, 64, 3), np.uint8), prediction)
    collector.close()
    snap = collector.snapshot()
    assert snap.dropped_by_reason["outbox_full"] > 0
    assert snap.datapoints_registered + snap.datapoints_dropped == 30
    assert snap.target.refused_full == snap.dropped_by_reason["outbox_full"]


def test_dead_letters_count_toward_the_bound(tmp_path):
    with Outbox(tmp_path / "probe") as probe:
        probe.add(datapoint(0))
        bound = int(2.5 * probe.stats().pending_bytes)  # room for two entries, not three
    box = Outbox(tmp_path / "outbox", max_bytes=bound)
    box.add(datapoint(1))
    box.kill(box.oldest(), "HTTP 401 from upload")  # say the key was revoked
    box.add(datapoint(2))
    with pytest.raises(OutboxFull):  # one dead and one pending: a revoked key cannot fill the disk over months
        box.add(datapoint(3))
    box.close()
    reopened = Outbox(tmp_path / "outbox", max_bytes=bound)
    assert reopened.stats().dead_bytes > 0
    with pytest.raises(OutboxFull):
        reopened.add(datapoint(4))
    assert reopened.retry_dead() == 1 and reopened.stats().dead_bytes == 0
    assert reopened.stats().pending == 2


@pytest.mark.parametrize("status", [401, 413])
def test_permanent_refusals_go_to_dead_letters_with_the_reason(tmp_path, roboflow, status):
    roboflow.mode = status
    target = target_for(roboflow, tmp_path / "outbox")
    target.register(datapoint(1))
    assert wait_until(lambda: target.stats().dead == 1)
    target.close()
    [dead] = describe(tmp_path / "outbox")["dead_letters"]
    assert f"HTTP {status}" in dead["dead_reason"]
    result = subprocess.run([sys.executable, "-m", "framesift.cli", "outbox", str(tmp_path / "outbox")],
                            capture_output=True, text=True)
    assert "dead:    1" in result.stdout and f"HTTP {status}" in result.stdout
    roboflow.mode = "ok"
    result = subprocess.run([sys.executable, "-m", "framesift.cli", "outbox", str(tmp_path / "outbox"),
                             "--retry-dead"], capture_output=True, text=True)
    assert "moved 1 dead" in result.stdout
    target = target_for(roboflow, tmp_path / "outbox")
    assert wait_until(lambda: target.stats().pending == 0)
    target.close()
    assert roboflow.names() == ["dp0001.jpg"]


def test_the_api_key_never_appears_in_logs_errors_records_or_metrics(tmp_path, roboflow, caplog, clip_path):
    caplog.set_level(logging.DEBUG)
    roboflow.mode = 413  # errors are logged and stored
    config = tmp_path / "all.json"
    config.write_text(json.dumps({"enabled": True, "persist_predictions": True,
                                  "sampling_strategies": [{"name": "s", "type": "random", "traffic_percentage": 0.1}],
                                  "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}))
    env = {**os.environ, "ROBOFLOW_API_KEY": KEY, "ROBOFLOW_API_URL": roboflow.url}
    result = subprocess.run([sys.executable, "-m", "framesift.cli", "-v", "run", str(clip_path), "--model", "stub",
                             "--al-config", str(config), "--target", "roboflow:people", "--outbox",
                             str(tmp_path / "outbox"), "--summary", str(tmp_path / "s.json"), "--seed", "3",
                             "--no-progress"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert KEY not in result.stdout + result.stderr
    assert f"dead: framesift outbox {tmp_path / 'outbox' / 'roboflow-people'})" in result.stderr  # where to look
    parent = subprocess.run([sys.executable, "-m", "framesift.cli", "outbox", str(tmp_path / "outbox")],
                            capture_output=True, text=True)  # the folder of outboxes, not one: say which are there
    assert parent.returncode == 2 and "it holds the outboxes roboflow-people" in parent.stderr
    roboflow.stop()  # network errors carry the URL (and so the key) in requests' messages
    target = target_for(roboflow, tmp_path / "outbox2")
    target.register(datapoint(1))
    assert wait_until(lambda: target.stats().retried > 0)
    metrics = scrape(StreamStats(collectors={"collect": CollectorStats(target=target.stats())}))
    target.close(0)
    assert 'framesift_outbox_pending{collector="collect"} 1.0' in metrics
    assert "framesift_outbox_retried_total" in metrics
    assert KEY not in metrics
    assert KEY not in caplog.text and "HTTP 413" in (result.stderr + json.dumps(describe(tmp_path / "outbox" /
                                                                                         "roboflow-people")))
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def scrape(snapshot: StreamStats) -> str:
    """What Prometheus reads from `--metrics-port` for this snapshot."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot))
    return generate_latest(registry).decode()


@pytest.mark.parametrize("header,seconds", [("7", 7.0), ("in a while", None), ("86400", 3600.0), ("date", 120.0)])
def test_retry_after_is_read_in_seconds_or_as_a_date_and_believed_up_to_an_hour(roboflow, header, seconds):
    if header == "date":
        header = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=120), usegmt=True)
    roboflow.mode, roboflow.retry_after = 503, header
    waited = retry_after(requests.post(f"{roboflow.url}/dataset/people/upload", timeout=10))
    assert waited == (None if seconds is None else pytest.approx(seconds, abs=2.0))


def test_open_target_reads_the_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("ROBOFLOW_API_KEY", raising=False)
    with pytest.raises(ValueError, match="needs an API key"):
        open_target("roboflow:people", outbox=tmp_path)
    for dataset, why in (("", "it is empty"), ("..", "it names no folder of its own")):  # `..` went into the URL
        with pytest.raises(ValueError, match=f"roboflow:<dataset>: '{re.escape(dataset)}' is no dataset name: {why}"):
            open_target(f"roboflow:{dataset}", outbox=tmp_path)
