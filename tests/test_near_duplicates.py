"""The near-duplicate gate (issue 14, part 1): a scene that stays the same is collected once, and again when it
changes — before any budget is spent; every rejection counted, per strategy too."""

from __future__ import annotations

import av
import numpy as np
import pytest

from framesift import Collector, ConfigError, LocalDataset, Pipeline, load_model, parse_config, read_records
from framesift.collectors.sampling.signatures import distance, signature
from framesift.demo import demo_frame

SCENES = (3, 140)  # two frames of the demo scene far apart in time: different squares, different places


@pytest.fixture(scope="module")
def two_scenes(tmp_path_factory):
    """30 frames of one still scene, then 30 of another."""
    path = tmp_path_factory.mktemp("scenes") / "two-scenes.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for scene in SCENES:
            for _ in range(30):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(demo_frame(scene), format="bgr24")))
        container.mux(stream.encode(None))
    return path


def configuration(gate: dict | None, per_minute: int = 2) -> dict:
    data = {"enabled": True, "persist_predictions": False,
            "sampling_strategies": [{"name": "all", "type": "random", "traffic_percentage": 1.0,
                                     "limits": [{"type": "minutely", "value": per_minute}]}],
            "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}
    if gate is not None:
        data["near_duplicates"] = gate
    return data


def collect(clip, folder, gate):
    collector = Collector(parse_config(configuration(gate)), LocalDataset(folder), max_queue_items=100)
    with Pipeline([str(clip)], load_model("stub"), collector) as pipeline:
        pipeline.run()
    return collector.snapshot(), list(read_records(folder))


def test_a_still_scene_is_collected_once_and_again_when_it_changes_spending_no_budget(two_scenes, tmp_path):
    stats, records = collect(two_scenes, tmp_path / "gated", {})
    assert [r["frame_id"] for r in records] == [0, 30]  # the first frame of each scene
    assert stats.datapoints_rejected_near_duplicate == 58 and stats.datapoints_rejected_by_limits == 0
    assert stats.strategies["all"].rejected_near_duplicate == 58
    first, second = (r["near_duplicates"] for r in records)
    assert first["nearest_distance"] is None and second["nearest_distance"] > 6  # why it was collected
    assert distance(int(first["signature"], 16), int(second["signature"], 16)) == second["nearest_distance"]
    # without the gate, a minutely limit of 2 is spent on the first scene's copies: the change is not collected
    stats, records = collect(two_scenes, tmp_path / "ungated", None)
    assert [r["frame_id"] for r in records] == [0, 1] and stats.datapoints_rejected_by_limits == 58


def test_the_same_scene_from_another_camera_is_not_a_duplicate(two_scenes, tmp_path):
    other = tmp_path / "other-camera.mp4"
    other.write_bytes(two_scenes.read_bytes())
    collector = Collector(parse_config(configuration({}, per_minute=10)), LocalDataset(tmp_path / "ds"),
                          max_queue_items=200)
    with Pipeline([str(two_scenes), str(other)], load_model("stub"), collector) as pipeline:
        pipeline.run()
    assert sorted((r["source"], r["frame_id"]) for r in read_records(tmp_path / "ds")) == sorted(
        (str(camera), frame) for camera in (two_scenes, other) for frame in (0, 30))


def test_signatures_of_the_decoders_luma_and_of_a_bgr_array_agree(two_scenes):
    with av.open(str(two_scenes)) as container:
        decoded = next(container.decode(video=0))

    class Decoded:
        image = decoded

    assert distance(signature(Decoded()), signature(decoded.to_ndarray(format="bgr24"))) <= 2
    assert distance(signature(demo_frame(SCENES[0])), signature(demo_frame(SCENES[1]))) > 6


@pytest.mark.parametrize(("gate", "problem"), [
    ({"max_distance": 65}, "near_duplicates.max_distance: must be <= 64"),
    ({"memory": 0}, "near_duplicates.memory: must be >= 1"),
    ({"within": 10}, "near_duplicates.within: unknown field (did you mean 'within_s'?)"),
])
def test_the_gate_is_validated_as_strictly_as_the_rest(gate, problem):
    with pytest.raises(ConfigError) as raised:
        parse_config(configuration(gate))
    assert problem in raised.value.problems


def test_defaults_need_no_tuning_for_a_fixed_camera():
    gate = parse_config(configuration({})).near_duplicates
    assert (gate.max_distance, gate.memory, gate.within_s) == (6, 32, 600.0)
    assert parse_config(configuration(None)).near_duplicates is None  # Roboflow's format: no gate
    assert np.iinfo(np.uint64).max >= signature(demo_frame(0))


def test_the_bundled_realistic_configuration_spends_no_budget_on_a_still_crowded_scene(tmp_path):
    """configs/realistic.yaml on a camera: before, `crowded` (hourly 50, no minutely limit, no gate) spent its hour's
    budget in seconds on copies of one crowded frame. Now each strategy has a minutely limit and the gate is on."""
    from datetime import datetime, timedelta, timezone

    from framesift.configs import path as config_path

    from framesift.collectors.config.schema import load_config
    from framesift.predictions import DetectionPrediction

    config = load_config(str(config_path("realistic.yaml")))
    assert config.near_duplicates is not None
    assert all(any(limit.type == "minutely" for limit in s.limits) for s in config.sampling_strategies)
    frame = demo_frame(3)
    crowd = DetectionPrediction.from_lists("object-detection", "m/1", (640, 480),
                                           xyxy=[(10 + 60 * i, 10, 50 + 60 * i, 50) for i in range(8)],
                                           confidence=[0.9] * 8, class_name=["person"] * 8)
    start = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
    with Collector(config, LocalDataset(tmp_path / "ds"), seed=1, max_queue_items=300) as collector:
        for i in range(300):  # ten seconds of a still crowded scene at 30 fps
            collector.submit(frame, crowd, source="cam", frame_id=i, captured_at=start + timedelta(seconds=i / 30))
    stats = collector.snapshot()
    assert stats.datapoints_dropped == 0
    assert stats.datapoints_registered == 1 and stats.strategies["crowded"].registered <= 1
