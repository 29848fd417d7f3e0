"""framesift's own `new_objects` strategy (issue 14, part 2): each object that enters is sampled about once, with
its track id — on a synthetic clip whose squares enter at known frames, found by a test-built detector."""

from __future__ import annotations

import json
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest

from framesift import Collector, LocalDataset, Pipeline, SourceSpec, load_model, parse_config, read_records
from framesift.collectors.config import NearDuplicates
from framesift.collectors.tracking import IouTracker
from tests.helpers import CONFIGS
from tests.model_builders import BGR, build_model

SIDE = 40
# (colour, first frame, last frame, where it is at frame f)
OBJECTS = [("red", 10, 39, lambda f: (10 + 3 * (f - 10), 30)),
           ("green", 20, 59, lambda f: (150, 100)),
           ("blue", 30, 59, lambda f: (240, 160)),
           ("red", 50, 59, lambda f: (20, 180))]  # a second red object, far from where the first left


@pytest.fixture(scope="module")
def arrivals(tmp_path_factory):
    folder = tmp_path_factory.mktemp("arrivals")
    path = folder / "arrivals.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"qp": "0"}
        for f in range(60):
            frame = np.full((240, 320, 3), 90, np.uint8)
            for colour, first, last, at in OBJECTS:
                if first <= f <= last:
                    x, y = at(f)
                    cv2.rectangle(frame, (x, y), (x + SIDE - 1, y + SIDE - 1), BGR[colour], -1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode(None))
    model = build_model(folder / "det.onnx", "detect", size=160)
    return path, load_model(str(model), confidence=0.3), model


def configuration(**fields) -> object:
    return parse_config({"enabled": True, "persist_predictions": True, "sampling_strategies": [
        {"name": "arrivals", "type": "new_objects", "probability": 1.0, **fields}],
        "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}})


def test_each_object_that_enters_is_sampled_once_with_its_track(arrivals, tmp_path):
    clip, detector, _ = arrivals
    collector = Collector(configuration(), LocalDataset(tmp_path / "ds"))
    with Pipeline([str(clip)], detector, collector) as pipeline:
        pipeline.run()
    records = list(read_records(tmp_path / "ds"))
    assert [r["frame_id"] for r in records] == [11, 21, 31, 51]  # seen two frames in a row (min_frames 2)
    reasons = [r["selected_because"] for r in records]
    assert [why["classes"] for why in reasons] == [["red"], ["green"], ["blue"], ["red"]]
    assert len({tuple(why["track_ids"]) for why in reasons}) == 4  # four tracks: the second red is another
    for record, why in zip(records, reasons, strict=True):  # the box of each new track, in the saved prediction
        boxes = json.loads((tmp_path / "ds" / record["prediction"]).read_text())["predictions"]
        assert [boxes[i]["class"] for i in why["boxes"]] == why["classes"]
    stats = collector.snapshot()
    assert stats.datapoints_sampled == 4 and stats.strategies["arrivals"].registered == 4


def test_classes_are_filtered_and_each_source_has_its_own_tracks(arrivals, tmp_path):
    clip, detector, _ = arrivals
    other = tmp_path / "other.mp4"
    other.write_bytes(clip.read_bytes())
    collector = Collector(configuration(selected_class_names=["red"], min_frames=1), LocalDataset(tmp_path / "ds"))
    with Pipeline([SourceSpec(str(clip), "a"), SourceSpec(str(other), "b")], detector, collector) as pipeline:
        pipeline.run()
    frames = sorted((r["source"], r["frame_id"]) for r in read_records(tmp_path / "ds"))
    assert frames == sorted((str(camera), f) for camera in (clip, other) for f in (10, 50))


def test_a_new_object_passes_the_near_duplicate_gate(arrivals, tmp_path):
    clip, detector, _ = arrivals  # a 40-pixel square changes few bits of the whole frame's signature
    config = configuration().model_copy(update={"near_duplicates": NearDuplicates(max_distance=64)})
    collector = Collector(config, LocalDataset(tmp_path / "ds"))  # every frame a near-duplicate of the first
    with Pipeline([str(clip)], detector, collector) as pipeline:
        pipeline.run()
    records = list(read_records(tmp_path / "ds"))
    assert [r["frame_id"] for r in records] == [11, 21, 31, 51]
    assert all(r["near_duplicates"]["nearest_distance"] is not None for r in records[1:])
    assert collector.snapshot().datapoints_rejected_near_duplicate == 0


def test_the_video_aware_configuration_from_the_command_line(arrivals, tmp_path):
    clip, _, model = arrivals
    result = subprocess.run([sys.executable, "-m", "framesift.cli", "run", str(clip), "--model", str(model),
                             "--al-config", str(CONFIGS / "video_aware.yaml"), "--confidence", "0.3",
                             "--target", str(tmp_path / "ds"), "--summary", str(tmp_path / "s.json"),
                             "--seed", "1", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    records = list(read_records(tmp_path / "ds"))
    arrived = [r for r in records if r["strategy"] == "arrivals"]
    assert [r["frame_id"] for r in arrived] == [11, 21, 31, 51]
    assert all(r["selected_because"]["track_ids"] for r in arrived)
    others = [r["near_duplicates"]["nearest_distance"] for r in records if r["strategy"] != "arrivals"]
    assert all(d is None or d > 6 for d in others)  # the gate let no copy through for another strategy
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["strategies"]["arrivals"] == 4 and summary["datapoints_rejected_near_duplicate"] > 0


def test_the_tracker_follows_a_moving_box_and_ends_lost_tracks():
    tracker = IouTracker(min_iou=0.3, max_missed=2, min_frames=1)
    box = np.array([[0, 0, 40, 40]], np.float32)
    assert tracker.update(box, ["car"]) == [1]
    assert tracker.update(box + [6, 0, 6, 0], ["car"]) == []  # moved a little: the same track
    assert tracker.update(box + [12, 0, 12, 0], ["bus"]) == [2]  # another class: another object
    for _ in range(3):
        tracker.update(np.zeros((0, 4), np.float32), [])
    assert tracker.update(box + [12, 0, 12, 0], ["car"]) == [3]  # lost for longer than max_missed: new again
