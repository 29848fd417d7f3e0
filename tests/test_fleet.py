"""Issue 28: one archive replayed by several boxes (real processes) sharing one real Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from framesift.dataset.records import read_records
from tests.helpers import wait_until
from tests.test_archives import every_frame
from tests.test_cli import run_cli
from tests.test_video_time import write_recording


def archive(tmp_path: Path, count: int, seconds: int) -> Path:
    """`count` recordings of `seconds` at 10 fps, an hour apart."""
    folder = tmp_path / "archive"
    folder.mkdir()
    for i in range(count):
        write_recording(folder / f"cam{i:02d}.mp4", seconds, creation_time=f"2026-11-20T{i:02d}:00:00Z", fps=10)
    return folder


def box(folder: Path, config: Path, target: Path, redis_url: str | None, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "framesift.cli", "run", str(folder), "--model", "stub", "--al-config",
               str(config), "--target", str(target), "--seed", "7", "--no-progress"]
    return command + (["--redis", redis_url, "--replay-lease", "3"] if redis_url else []) + list(extra)


def holding(redis_url: str, boxes: list[subprocess.Popen]) -> subprocess.Popen | None:
    """A running box that holds a recording's lease now."""
    from framesift.stream.fleet import fleet_status

    pids = {int(holder["box"].rsplit(":", 1)[1]) for holder in fleet_status(redis_url, "fleet")["holders"].values()}
    return next((p for p in boxes if p.pid in pids and p.poll() is None), None)


def collected(target: Path) -> Counter[tuple[str, int]]:
    return Counter((Path(r["source"]).name, r["frame_id"]) for r in read_records(target))


def test_three_boxes_one_killed_twice_and_restarted_register_every_frame_once_as_one_box_would(tmp_path, redis_server):
    folder = archive(tmp_path, 12, 5)
    config = every_frame(tmp_path, 0.5)
    alone = subprocess.run(box(folder, config, tmp_path / "alone", None), capture_output=True, text=True,
                           timeout=300)
    assert alone.returncode == 0, alone.stderr
    expected = collected(tmp_path / "alone")
    assert set(expected.values()) == {1} and 100 < sum(expected.values()) < 500  # about half of 600 frames

    target = tmp_path / "fleet"
    logs = [tmp_path / f"box{i}.log" for i in range(5)]
    command = box(folder, config, target, redis_server.url)
    boxes = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("w")) for log in logs[:3]]
    try:
        for enough in (40, 120):  # a box holding a recording, twice, each time another started in its place
            assert wait_until(lambda n=enough: target.exists() and len(collected(target)) >= n, timeout=120)
            assert wait_until(lambda: holding(redis_server.url, boxes), timeout=60)
            killed = holding(redis_server.url, boxes)
            assert killed is not None
            os.kill(killed.pid, signal.SIGKILL)  # a power cut, mid-recording
            killed.wait()
            boxes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=logs[len(boxes)].open("w")))
        for process in boxes:
            assert process.wait(timeout=300) in (0, -signal.SIGKILL), [log.read_text()[-2000:] for log in logs]
    finally:
        for process in boxes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert collected(target) == expected  # every frame once, drawn as one box draws it

    status = run_cli("replay", "status", "--redis", redis_server.url, "--target", str(target), "--json")
    assert status.returncode == 0, status.stderr
    fleet = json.loads(status.stdout)
    assert fleet["recordings"] == 12 and fleet["done"] == 12 and fleet["left"] == 0 and fleet["claimed"] == 0
    assert fleet["frames"] == fleet["frames_total"] == 12 * 50
    assert fleet["taken_over"] >= 2  # the killed boxes' recordings, once their leases ran out


def test_a_box_paused_past_its_lease_stops_its_recording_and_writes_nothing_twice(tmp_path, redis_server):
    folder = archive(tmp_path, 2, 30)
    config = every_frame(tmp_path, 1.0)
    target = tmp_path / "ds"
    command = box(folder, config, target, redis_server.url, "--summary")
    slow_log, other_log = tmp_path / "slow.log", tmp_path / "other.log"
    slow = subprocess.Popen([*command, str(tmp_path / "slow.json")], stdout=subprocess.DEVNULL,
                            stderr=slow_log.open("w"))
    other = None
    try:
        assert wait_until(lambda: target.exists() and len(collected(target)) >= 10, timeout=60)
        os.kill(slow.pid, signal.SIGSTOP)  # swapping, a stalled disk: alive, but not renewing its lease
        other = subprocess.Popen([*command, str(tmp_path / "other.json")], stdout=subprocess.DEVNULL,
                                 stderr=other_log.open("w"))
        assert other.wait(timeout=120) == 0, other_log.read_text()[-2000:]  # took both recordings over
        os.kill(slow.pid, signal.SIGCONT)
        assert slow.wait(timeout=60) == 0, slow_log.read_text()[-2000:]
    finally:
        for process in (slow, other):
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.kill()
                process.wait()
    assert "lost its lease on" in slow_log.read_text()
    assert collected(target) == Counter({(f"cam{i:02d}.mp4", n): 1 for i in range(2) for n in range(300)})
    slow_summary = json.loads((tmp_path / "slow.json").read_text())
    assert slow_summary["fleet"]["leases_lost"] == 1
    assert json.loads((tmp_path / "other.json").read_text())["fleet"]["recordings_taken_over"] == 1


def test_a_box_that_loses_redis_stops_claiming_says_so_and_goes_on_once_it_is_back(tmp_path, redis_server):
    folder = archive(tmp_path, 3, 30)
    target = tmp_path / "ds"
    log = tmp_path / "box.log"
    sampling = every_frame(tmp_path, 1.0)
    process = subprocess.Popen([*box(folder, sampling, target, redis_server.url), "--summary",
                                str(tmp_path / "summary.json")], stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        assert wait_until(lambda: target.exists() and len(collected(target)) >= 10, timeout=60)
        redis_server.stop()
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "this box stops claiming recordings" in log.read_text()
    records = collected(target)
    assert set(records.values()) == {1} and len(records) < 3 * 300  # it did not go on with the archive
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["fleet"]["redis_lost"]

    redis_server.start()  # back, empty (no persistence): the same command goes on after what the records hold
    again = subprocess.run(box(folder, sampling, target, redis_server.url), capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert collected(target) == Counter({(f"cam{i:02d}.mp4", n): 1 for i in range(3) for n in range(300)})


def test_one_archive_mounted_at_two_paths_is_one_archive_and_a_failed_recording_is_failed_for_all(tmp_path,
                                                                                                  redis_server):
    from framesift.stream.archives import list_recordings
    from framesift.stream.fleet import FleetLog, fleet_status

    folder = archive(tmp_path, 2, 1)
    (tmp_path / "mnt").mkdir()
    (tmp_path / "mnt" / "nas").symlink_to(folder)  # the same files under another path, as an NFS mount elsewhere
    here, there = list_recordings(str(folder)), list_recordings(str(tmp_path / "mnt" / "nas"))
    assert [r.path for r in here] != [r.path for r in there]
    with FleetLog(redis_server.url, "ds", box="a") as a, FleetLog(redis_server.url, "ds", box="b") as b:
        a.known(here, str(folder))
        b.known(there, str(tmp_path / "mnt" / "nas"))
        assert a.claim(here[0]) == "claimed" and b.claim(there[0]) == "held"
        a.fail(here[0], "cannot open it: Invalid data found when processing input")
        assert b.claim(there[0]) == "failed" and a.claim(here[0]) == "failed"
        assert b.claim(there[1]) == "claimed" and a.claim(here[1]) == "held"
        status = fleet_status(redis_server.url, "ds")
    assert status["recordings"] == 2 and status["left"] == 1
    assert list(status["failed"].values()) == ["cannot open it: Invalid data found when processing input"]
    assert list(status["holders"]) == ["cam01.mp4"]  # held by b


def test_the_fleets_counts_reach_each_box_metrics(tmp_path, redis_server):
    from framesift.stats import StreamStats, samples
    from framesift.stream.archives import list_recordings
    from framesift.stream.fleet import FleetLog

    folder = archive(tmp_path, 3, 1)
    recordings = list_recordings(str(folder))
    with FleetLog(redis_server.url, "ds", box="a", lease_s=1.5) as a:
        a.known(recordings, str(folder))
        assert a.claim(recordings[0]) == "claimed" and a.claim(recordings[1]) == "claimed"
        a.record(recordings[0], 10, finished=True)
        assert wait_until(lambda: a.stats().recordings_done == 1, timeout=30)  # read every third of a lease
        exposed = {name: value for name, _, _, _, value in samples(StreamStats(fleet=a.stats()))}
    assert exposed["framesift_fleet_recordings"] == 3 and exposed["framesift_fleet_recordings_left"] == 2
    assert exposed["framesift_fleet_recordings_held"] == 1 and exposed["framesift_fleet_recordings_claimed"] == 2
    assert exposed["framesift_fleet_frames"] == 10


def test_a_lease_renewal_thread_that_dies_ends_the_replay_loudly(tmp_path, redis_server):
    """It was a plain thread: dead, the box went on claiming recordings whose leases nobody renewed (another box
    then replayed them beside it). Now the next claim or entry raises its failure, which ends the run."""
    from framesift.errors import WorkerFailed
    from framesift.stream.archives import list_recordings
    from framesift.stream.fleet import FleetLog

    class BrokenRenewal(FleetLog):  # a bug injected into our own code: no real input kills this thread
        def _renew(self) -> None:
            raise RuntimeError("injected")

    folder = archive(tmp_path, 1, 1)
    recordings = list_recordings(str(folder))
    with BrokenRenewal(redis_server.url, "ds", box="a") as fleet:
        fleet.known(recordings, str(folder))
        assert wait_until(lambda: not fleet._renewer.is_alive(), timeout=30)
        with pytest.raises(WorkerFailed, match="the lease renewal thread failed: RuntimeError: injected"):
            fleet.claim(recordings[0])
