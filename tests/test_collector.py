"""The collector: never blocks the caller, bounded queue, counters, kill switches, orderly close."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from framesift.collectors import Collector, LocalDataset, RedisLimiter
from framesift.collectors.budgets.limits import FallbackLimiter
from framesift.dataset.records import read_records
from framesift.predictions import DetectionPrediction, StubPrediction
from framesift.stats import StrategyStats
from tests.helpers import collect_all_config

FRAME = np.zeros((48, 64, 3), np.uint8)
STUB = StubPrediction("stub")


class SlowDataset(LocalDataset):
    """A real local dataset whose writes take `delay` seconds each."""

    def __init__(self, root, delay: float):
        super().__init__(root)
        self.delay = delay

    def register(self, datapoint):
        time.sleep(self.delay)
        return super().register(datapoint)


def test_ten_thousand_submits_never_block_and_the_overflow_is_counted(tmp_path):
    collector = Collector(collect_all_config(), SlowDataset(tmp_path / "ds", delay=0.05), max_queue_items=16)
    started = time.perf_counter()
    queued = sum(collector.submit(FRAME, STUB, frame_id=i) for i in range(10_000))
    elapsed = time.perf_counter() - started
    # The caller never waited for a write (each takes 50 ms): what found the queue full was dropped, and no more
    # went in than the 16 it holds and the writes made meanwhile freed, however busy the machine.
    assert queued < 10_000 and queued <= 17 + elapsed / 0.05
    collector.close(timeout=0.2)
    c = collector.snapshot()
    assert c.datapoints_sampled == 10_000
    assert c.datapoints_dropped == 10_000 - queued + c.dropped_by_reason.get("drain_timeout", 0)
    assert c.dropped_by_reason["queue_full"] == 10_000 - queued
    assert c.datapoints_registered + c.datapoints_dropped == 10_000
    assert len(list(read_records(tmp_path / "ds"))) == c.datapoints_registered


def test_queue_is_bounded_by_bytes_too(tmp_path):
    big = np.zeros((1000, 1000, 3), np.uint8)  # 3 MB
    collector = Collector(collect_all_config(), SlowDataset(tmp_path / "ds", delay=0.2),
                          max_queue_items=1000, max_queue_bytes=10_000_000)
    results = [collector.submit(big, STUB) for _ in range(10)]
    assert 3 <= sum(results) <= 4  # at most 3 waiting plus the one being written
    collector.close(timeout=5)
    assert collector.snapshot().dropped_by_reason["queue_full"] == 10 - sum(results)


def test_close_writes_what_is_queued_within_the_timeout(tmp_path):
    collector = Collector(collect_all_config(), SlowDataset(tmp_path / "ds", delay=0.01), max_queue_items=100)
    for i in range(50):
        collector.submit(FRAME, STUB, frame_id=i)
    collector.close(timeout=10)
    assert collector.snapshot().datapoints_registered == 50
    ids = [r["frame_id"] for r in read_records(tmp_path / "ds")]
    assert ids == list(range(50))  # written in the order they were offered


class CountingFrame:
    """A lazy frame that records which thread converted it."""

    width, height = 64, 48

    def __init__(self, tag: int, calls: list):
        self.tag, self.calls = tag, calls

    def bgr(self):
        self.calls.append((self.tag, threading.current_thread().name))
        return FRAME


def test_a_lazy_frame_is_converted_only_when_sampled_and_on_the_collector_thread(tmp_path):
    calls = []
    config = collect_all_config(sampling_strategies=[
        {"name": "crowded", "type": "detections_number_based", "probability": 1.0, "more_than": 1}])
    collector = Collector(config, LocalDataset(tmp_path / "ds"))
    one = DetectionPrediction.from_lists("object-detection", "m", (64, 48), xyxy=[[0, 0, 1, 1]],
                                         confidence=[0.5], class_name=["a"])
    two = DetectionPrediction.from_lists("object-detection", "m", (64, 48), xyxy=[[0, 0, 1, 1]] * 2,
                                         confidence=[0.5] * 2, class_name=["a"] * 2)
    assert not collector.submit(CountingFrame(1, calls), one)
    assert collector.submit(CountingFrame(2, calls), two)
    collector.close()
    assert calls == [(2, "framesift-collector")] and collector.snapshot().datapoints_registered == 1


def test_kill_switches(tmp_path):
    for environ, config in (({"ACTIVE_LEARNING_ENABLED": "Off"}, collect_all_config()),
                            ({}, collect_all_config(enabled=False))):
        collector = Collector(config, LocalDataset(tmp_path / "ds"), environ=environ)
        assert not collector.enabled and not collector.submit(FRAME, STUB)
        collector.close()
        assert collector.snapshot().datapoints_sampled == 0
    assert not list(read_records(tmp_path / "ds"))


def test_counters_by_strategy_and_limits(tmp_path):
    config = collect_all_config(sampling_strategies=[
        {"name": "limited", "type": "random", "traffic_percentage": 1.0, "limits": [{"type": "minutely", "value": 3}]},
        {"name": "never", "type": "random", "traffic_percentage": 0.0},
    ])
    collector = Collector(config, LocalDataset(tmp_path / "ds"))
    for _ in range(10):
        collector.submit(FRAME, STUB)
    collector.close()
    snap = collector.snapshot()
    assert snap.datapoints_sampled == 10 and snap.datapoints_registered == 3
    assert snap.datapoints_rejected_by_limits == 7
    assert snap.strategies == {"limited": StrategyStats(sampled=10, registered=3), "never": StrategyStats()}


def test_seeded_collectors_sample_the_same_frames(tmp_path):
    config = collect_all_config(sampling_strategies=[{"name": "r", "type": "random", "traffic_percentage": 0.3}])
    runs = []
    for k in range(2):
        collector = Collector(config, LocalDataset(tmp_path / f"ds{k}"), seed=5)
        runs.append([collector.submit(FRAME, STUB, frame_id=i) for i in range(100)])
        collector.close()
    assert runs[0] == runs[1] and 10 < sum(runs[0]) < 50


def test_redis_outage_mid_run_keeps_collecting_under_the_memory_policy(tmp_path, redis_server):
    limiter = FallbackLimiter(RedisLimiter(redis_server.url, timeout=0.2), "memory")
    config = collect_all_config(sampling_strategies=[
        {"name": "r", "type": "random", "traffic_percentage": 1.0, "limits": [{"type": "minutely", "value": 4}]}])
    collector = Collector(config, LocalDataset(tmp_path / "ds"), limiter)
    for _ in range(2):
        collector.submit(FRAME, STUB)
    deadline = time.monotonic() + 5
    while collector.snapshot().datapoints_registered < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    redis_server.stop()
    for _ in range(6):
        collector.submit(FRAME, STUB)
    collector.close()
    snap = collector.snapshot()
    # 2 through Redis, then local budgets of 4 per minute: the process never stopped
    assert snap.datapoints_registered == 6 and snap.datapoints_rejected_by_limits == 2
    assert snap.limit_store_available is False


# -- predictions given as Roboflow Inference JSON keep every id they came with -----------------------------------
CLASSIFICATION = {"image": {"width": 64, "height": 48}, "inference_id": "inf-1", "model_id": "vehicles/4",
                  "predictions": [{"class": "Ambulance", "class_id": 0, "confidence": 0.61},
                                  {"class": "Limousine", "class_id": 16, "confidence": 0.3},
                                  {"class": "Truck", "class_id": 7, "confidence": 0.09}],
                  "top": "Ambulance", "confidence": 0.61, "task_type": "classification"}
MULTI_LABEL = {"image": {"width": 64, "height": 48}, "model_id": "tags/2",
               "predictions": {"rain": {"class_id": 12, "confidence": 0.9},
                               "night": {"class_id": 3, "confidence": 0.2}},
               "predicted_classes": ["rain"]}
KEYPOINTS = {"image": {"width": 64, "height": 48}, "model_id": "pose/1", "task_type": "keypoint-detection",
             "predictions": [{"x": 32.0, "y": 24.0, "width": 20.0, "height": 30.0, "confidence": 0.8, "class": "person",
                              "class_id": 5, "detection_id": "d-17", "tracker_id": 3,
                              "keypoints": [{"x": 30.0, "y": 12.0, "confidence": 0.9, "class_id": 6,
                                             "class": "right_shoulder"},
                                            {"x": 34.0, "y": 12.0, "confidence": 0.7, "class_id": 0, "class": "nose"}]},
                             {"x": 10.0, "y": 10.0, "width": 4.0, "height": 6.0, "confidence": 0.6, "class": "person",
                              "class_id": 5, "detection_id": "d-18", "keypoints": []}]}


def test_a_prediction_given_as_json_is_persisted_with_every_id_it_came_with(tmp_path):
    config = collect_all_config(max_image_size=[24, 32])  # half size: geometry is scaled, nothing else changes
    with Collector(config, LocalDataset(tmp_path / "ds")) as collector:
        for i, prediction in enumerate((CLASSIFICATION, MULTI_LABEL, KEYPOINTS)):
            assert collector.submit(FRAME, prediction, frame_id=i)
    saved = {r["frame_id"]: json.loads((tmp_path / "ds" / r["prediction"]).read_text())
             for r in read_records(tmp_path / "ds")}
    assert saved[0] == {**CLASSIFICATION, "image": {"width": 32, "height": 24}}
    assert saved[1] == {**MULTI_LABEL, "image": {"width": 32, "height": 24}}
    person, small = saved[2]["predictions"]
    assert (person["class_id"], person["detection_id"], person["tracker_id"]) == (5, "d-17", 3)
    assert (person["x"], person["y"], person["width"], person["height"]) == (16.0, 12.0, 10.0, 15.0)
    assert person["keypoints"] == [{"x": 15.0, "y": 6.0, "confidence": 0.9, "class_id": 6, "class": "right_shoulder"},
                                   {"x": 17.0, "y": 6.0, "confidence": 0.7, "class_id": 0, "class": "nose"}]
    assert small["detection_id"] == "d-18" and small["keypoints"] == []
    assert KEYPOINTS["predictions"][0]["x"] == 32.0  # the caller's prediction is never modified


def test_draws_made_ahead_come_back_as_the_collectors_own_and_anything_else_is_refused(tmp_path):
    """The stream carries a frame's draws typed as `framesift.frames.Drawn` (it knows no collector): what comes
    back to `submit` is the collector's `Draw`, used as it is; another truthy value is a `TypeError`, not a frame
    sampled under no configuration."""
    with Collector(collect_all_config(), LocalDataset(tmp_path / "ds"), seed=0) as collector:
        drawn = collector.draw_ahead(stub_model=True, frame="clip.mp4 7")
        assert drawn and collector.submit(FRAME, STUB, frame_id=7, drawn=drawn)
        with pytest.raises(TypeError, match="draw_ahead"):
            collector.submit(FRAME, STUB, frame_id=8, drawn=True)
    assert [r["frame_id"] for r in read_records(tmp_path / "ds")] == [7]
