"""Issue 15, part 1: a file replayed faster than real time is sampled on its recording's clock."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from framesift.dataset.records import read_records
from framesift.runner import RunOptions, run
from tests.test_cli import run_cli

FPS = 5


def write_recording(path: Path, seconds: int, creation_time: str | None = None, fps: int = FPS) -> Path:
    """A small H.264 recording whose frames change every second (so nothing looks alike for long)."""
    with av.open(str(path), "w") as container:
        if creation_time is not None:
            container.metadata["creation_time"] = creation_time
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(seconds * fps):
            image = np.full((48, 64, 3), (i // fps) * 7 % 256, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode(None))
    return path


def two_a_minute(tmp_path: Path) -> Path:
    """Every frame matches; a minutely limit of 2; a batch per day."""
    config = {"enabled": True, "persist_predictions": True,
              "sampling_strategies": [{"name": "every", "type": "random", "traffic_percentage": 1.0,
                                       "limits": [{"type": "minutely", "value": 2}]}],
              "batching_strategy": {"batches_name_prefix": "rec", "recreation_interval": "daily"}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("budgets", ["memory", "redis"])
def test_a_minutely_limit_admits_what_it_would_have_live_and_batches_follow_the_recordings_days(
        tmp_path, budgets, request):
    clip = write_recording(tmp_path / "night.mp4", 200, creation_time="2026-11-20T23:58:00.000000Z")
    redis = request.getfixturevalue("redis_server").url if budgets == "redis" else None
    run(RunOptions(sources=[str(clip)], model="stub", al_config=str(two_a_minute(tmp_path)),
                   target=str(tmp_path / "ds"), seed=1, redis=redis))
    records = list(read_records(tmp_path / "ds"))
    start = datetime(2026, 11, 20, 23, 58, tzinfo=timezone.utc)
    # Live, a sliding 60 s window of 2 admits the first two frames of each minute of the 200 s recording.
    assert [r["frame_id"] for r in records] == [0, 1, 300, 301, 600, 601, 900, 901]
    for record in records:
        assert utc(record["captured_at"]) == start + timedelta(seconds=record["frame_id"] / FPS)
    assert {r["batch"] for r in records if r["frame_id"] < 600} == {"rec_2026_11_20"}  # before midnight
    assert {r["batch"] for r in records if r["frame_id"] >= 600} == {"rec_2026_11_21"}


def test_the_wall_clock_switch_keeps_the_replays_own_time(tmp_path):
    clip = write_recording(tmp_path / "night.mp4", 200, creation_time="2026-11-20T23:58:00Z")
    before = datetime.now(timezone.utc)
    run(RunOptions(sources=[str(clip)], model="stub", al_config=str(two_a_minute(tmp_path)),
                   target=str(tmp_path / "ds"), seed=1, wall_clock=True))
    records = list(read_records(tmp_path / "ds"))
    assert len(records) == 2  # the whole replay took less than a minute of wall clock
    assert all(utc(r["captured_at"]) >= before for r in records)


def test_without_a_creation_time_the_start_is_the_modification_time_less_the_duration(tmp_path):
    clip = write_recording(tmp_path / "plain.mp4", 20)
    ended = datetime(2026, 3, 1, 12, 0, 20, tzinfo=timezone.utc).timestamp()
    os.utime(clip, (ended, ended))
    run(RunOptions(sources=[str(clip)], model="stub", al_config=str(two_a_minute(tmp_path)),
                   target=str(tmp_path / "ds"), seed=1))
    first = next(iter(read_records(tmp_path / "ds")))
    assert abs(utc(first["captured_at"]) - datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)) < timedelta(
        seconds=0.5)
    assert first["batch"] == "rec_2026_03_01"


def test_start_time_from_the_command_line_and_its_errors(tmp_path):
    clip = write_recording(tmp_path / "tagged.mp4", 4, creation_time="2026-11-20T08:00:00Z")
    config = two_a_minute(tmp_path)
    done = run_cli("run", str(clip), "--model", "stub", "--al-config", str(config), "--target",
                   str(tmp_path / "ds"), "--start-time", "2025-01-02T03:04:05", "--no-progress", "--seed", "1")
    assert done.returncode == 0, done.stderr
    first = next(iter(read_records(tmp_path / "ds")))
    assert first["captured_at"] == "2025-01-02T03:04:05Z"  # given without a zone: UTC, and it wins
    assert first["batch"] == "rec_2025_01_02"

    bad = run_cli("run", str(clip), "--model", "stub", "--start-time", "yesterday", "--no-progress")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "framesift: --start-time 'yesterday' is not an ISO 8601 date and time (for example 2026-11-20T08:00:00Z)"]
    two = run_cli("run", str(clip), str(clip), "--model", "stub", "--start-time", "2025-01-02T03:04:05Z",
                  "--no-progress")
    assert two.returncode == 2 and "one recording" in two.stderr and "Traceback" not in two.stderr


@pytest.mark.parametrize("tag", ["1970-01-01T00:00:00.000000Z", "not a date"])
def test_a_meaningless_creation_time_falls_back_to_the_modification_time(tmp_path, tag):
    clip = write_recording(tmp_path / "odd.mp4", 4, creation_time=tag)
    ended = datetime(2026, 5, 5, 5, 5, 4, tzinfo=timezone.utc).timestamp()
    os.utime(clip, (ended, ended))
    summary = run(RunOptions(sources=[str(clip)], model="stub", al_config=str(two_a_minute(tmp_path)),
                             target=str(tmp_path / "ds"), seed=1))
    first = next(iter(read_records(tmp_path / "ds")))
    assert first["batch"] == "rec_2026_05_05", json.dumps(summary.as_dict())
