"""Issue 15, part 3: a folder or a glob of recordings as one source, in time order, resumable."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import av
import pytest
import yaml

from framesift.collectors.targets.local import read_records
from framesift.runner import RunOptions, run
from framesift.stream.archives import ReplayLog, list_recordings
from tests.helpers import wait_until
from tests.test_cli import run_cli
from tests.test_video_time import utc, write_recording


def every_frame(tmp_path: Path, share: float = 1.0) -> Path:
    """A configuration sampling `share` of the frames (every one by default) at random."""
    config = {"enabled": True, "persist_predictions": True,
              "sampling_strategies": [{"name": "every", "type": "random", "traffic_percentage": share}],
              "batching_strategy": {"batches_name_prefix": "rec", "recreation_interval": "daily"}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def frames_of(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def recordings(tmp_path: Path, count: int) -> tuple[Path, list[Path]]:
    """A folder of `count` recordings of 3 s at 10 fps, an hour apart."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    return folder, [write_recording(folder / f"part{i}.mp4", 3, creation_time=f"2026-11-20T0{i}:00:00Z", fps=10)
                    for i in range(count)]


def paced_bootstrap(tmp_path: Path, folder: Path) -> list[str]:
    """The command replaying `folder` at its frame rate, collecting every frame into tmp_path/ds."""
    return [sys.executable, "-m", "framesift.cli", "run", str(folder), "--model", "stub", "--realtime",
            "--al-config", str(every_frame(tmp_path)), "--target", str(tmp_path / "ds"), "--no-progress"]


def test_a_folder_is_replayed_oldest_first_each_frame_named_by_its_recording(tmp_path):
    folder = tmp_path / "recordings"
    (folder / "day2").mkdir(parents=True)
    late = write_recording(folder / "a-late.mp4", 2, creation_time="2026-11-21T09:00:00Z")
    early = write_recording(folder / "day2" / "z-early.mp4", 2, creation_time="2026-11-20T09:00:00Z")
    (folder / "notes.txt").write_text("not a video")
    (folder / "broken.mp4").write_bytes(b"\x00" * 4096)  # left out, with a warning
    run(RunOptions(sources=[str(folder)], model="stub", al_config=str(every_frame(tmp_path)),
                   target=str(tmp_path / "ds"), seed=1))
    records = list(read_records(tmp_path / "ds"))
    assert [(Path(r["source"]).name, r["frame_id"]) for r in records] == \
        [("z-early.mp4", i) for i in range(frames_of(early))] + [("a-late.mp4", i) for i in range(frames_of(late))]
    assert [r["batch"] for r in records[:2]] == ["rec_2026_11_20"] * 2
    times = [utc(r["captured_at"]) for r in records]
    assert times == sorted(times)


def test_a_glob_spans_folders_and_a_pattern_matching_nothing_is_one_sentence(tmp_path):
    for day in ("2026-11-20", "2026-11-21"):
        (tmp_path / day).mkdir()
        write_recording(tmp_path / day / "cam1.mp4", 1, creation_time=f"{day}T08:00:00Z")
        write_recording(tmp_path / day / "cam2.mkv", 1, creation_time=f"{day}T08:00:00Z")
    done = run_cli("run", str(tmp_path / "**" / "cam1.mp4"), "--model", "stub", "--al-config",
                   str(every_frame(tmp_path)), "--target", str(tmp_path / "ds"), "--no-progress")
    assert done.returncode == 0, done.stderr
    sources = Counter(Path(r["source"]).parent.name for r in read_records(tmp_path / "ds"))
    assert sources == {"2026-11-20": 5, "2026-11-21": 5}

    nothing = run_cli("run", str(tmp_path / "**" / "*.avi"), "--model", "stub", "--no-progress")
    assert nothing.returncode == 2
    assert nothing.stderr.strip().splitlines() == [f"framesift: no video files found in {tmp_path}/**/*.avi"]


def test_an_interrupted_bootstrap_goes_on_where_it_stopped_and_samples_every_frame_once(tmp_path):
    folder, clips = recordings(tmp_path, 3)
    command = paced_bootstrap(tmp_path, folder)
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    replayed = tmp_path / "ds" / "replayed.jsonl"
    try:  # stop it once the first recording is done (it is replayed at its frame rate: 3 s each)
        assert wait_until(lambda: replayed.exists() and '"finished": true' in replayed.read_text(), timeout=30)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0, first.communicate()[1]
    finally:
        first.kill()
    before = [(Path(r["source"]).name, r["frame_id"]) for r in read_records(tmp_path / "ds")]
    assert {name for name, _ in before} <= {"part0.mp4", "part1.mp4"}
    assert sum(name == "part0.mp4" for name, _ in before) == 30

    started = time.monotonic()
    second = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert time.monotonic() - started < 8  # part0 was skipped: at most part1's rest and part2 were replayed
    after = Counter((Path(r["source"]).name, r["frame_id"]) for r in read_records(tmp_path / "ds"))
    assert after == Counter({(clip.name, i): 1 for clip in clips for i in range(frames_of(clip))})
    entries = [json.loads(line) for line in replayed.read_text().splitlines()]
    assert {Path(e["file"]).name for e in entries if e["finished"]} == {"part0.mp4", "part1.mp4", "part2.mp4"}

    third = subprocess.run(command, capture_output=True, text=True, timeout=60)  # nothing left: nothing sampled
    assert third.returncode == 0, third.stderr
    assert len(list(read_records(tmp_path / "ds"))) == sum(after.values())


@pytest.mark.parametrize("share", [0.1, 0.0])
def test_a_bootstrap_replayed_to_its_end_is_not_replayed_again(tmp_path, share):
    """Only sampled frames are handed to the model, so the last one inferred is seldom a recording's last frame: the
    log said the last recording was replayed up to its last sampled frame (and, with nothing sampled, said nothing
    at all), and the same command ran again drew the frames after it a second time."""
    folder, _ = recordings(tmp_path, 3)
    options = RunOptions(sources=[str(folder)], model="stub", al_config=str(every_frame(tmp_path, share)),
                         target=str(tmp_path / "ds"), seed=3)
    first = run(options)
    records = list(read_records(tmp_path / "ds"))
    assert first["frames_unsampled"] == 90 - first["frames_inferred"] and len(records) == first["frames_inferred"]
    last = max((r["frame_id"] for r in records if r["source"].endswith("part2.mp4")), default=None)
    assert last is None or last < 29  # the case this is about: frames after the last sampled one
    entries = [json.loads(line) for line in (tmp_path / "ds" / "replayed.jsonl").read_text().splitlines()]
    last = {Path(e["file"]).name: (e["frames"], e["finished"]) for e in entries}  # a recording's last line tells
    assert last == {f"part{i}.mp4": (30, True) for i in range(3)}

    again = run(options)
    assert again["frames_decoded"] == again["frames_unsampled"] == 0
    assert list(read_records(tmp_path / "ds")) == records


def test_a_bootstrap_killed_mid_recording_goes_on_after_its_last_collected_frame(tmp_path):
    """A power cut leaves no orderly stop: the log only said the recording had begun, and the same command started
    it over, collecting again every frame collected before the crash."""
    folder, clips = recordings(tmp_path, 2)
    command = paced_bootstrap(tmp_path, folder)
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # killed halfway through the first recording (replayed at its frame rate: 3 s)
        assert wait_until(lambda: len(list(read_records(tmp_path / "ds"))) >= 12, timeout=30)
    finally:
        first.kill()
        first.wait()
    before = Counter(r["frame_id"] for r in read_records(tmp_path / "ds"))
    assert 12 <= len(before) < 30 and set(before.values()) == {1}

    second = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    after = Counter((Path(r["source"]).name, r["frame_id"]) for r in read_records(tmp_path / "ds"))
    assert after == Counter({(clip.name, i): 1 for clip in clips for i in range(frames_of(clip))})


def test_a_second_bootstrap_into_the_same_target_is_refused_while_the_first_runs(tmp_path):
    """Both replayed every recording, each drawing its own sample: the budgets were spent twice over."""
    folder, _ = recordings(tmp_path, 9)  # 27 s replayed: the second starts long before, on a busy machine too
    command = paced_bootstrap(tmp_path, folder)
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: len(list(read_records(tmp_path / "ds"))) > 0, timeout=30)
        second = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and second.stderr.strip().splitlines()[-1] == (
            f"framesift: another framesift process (pid {first.pid}) replays recordings into {tmp_path / 'ds'}: "
            "both would sample them; let it finish, or give this run its own --target")
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0, first.communicate()[1]
    finally:
        first.kill()
    third = subprocess.run(command, capture_output=True, text=True, timeout=60)  # the lock went with the first
    assert third.returncode == 0, third.stderr


def test_a_hand_edited_replay_log_keeps_its_good_lines_and_names_the_others(tmp_path, caplog):
    clip = write_recording(tmp_path / "a.mp4", 1)
    recording = list_recordings(str(tmp_path))[0]
    good = {"file": str(clip), "key": recording.key, "frames": 7, "finished": False}
    bad = [{**good, "frames": -5}, {**good, "frames": "7"}, {**good, "frames": 7.5}, {**good, "finished": "yes"},
           {"file": str(clip)}, ["a list"]]
    log_file = tmp_path / "replayed.jsonl"
    log_file.write_bytes(b"\n".join([json.dumps(good).encode(), *(json.dumps(b).encode() for b in bad),
                                      b'{"key": broken', b"\x00\xffbinary"]) + b"\n")
    assert ReplayLog(log_file).frames_done(recording) == 7
    assert [r.getMessage() for r in caplog.records] == \
        [f"{log_file} line {n} is not a replay entry; it is left out" for n in range(2, 10)]


def test_a_disk_that_fills_up_under_a_bootstrap_fails_datapoints_and_the_log_not_the_run(small_disk, tmp_path):
    """The replay log's write failed with the disk full: the file being read was taken for a damaged one, and at the
    end the error escaped the pipeline's close: `framesift: OSError`, then the process aborted (exit 134)."""
    folder, _ = recordings(tmp_path, 3)
    disk = small_disk("64k")
    (disk / "ds").mkdir()
    with open(disk / "filler", "wb", buffering=0) as filler, pytest.raises(OSError):
        while True:
            filler.write(b"\0" * 4096)
    result = run_cli("run", str(folder), "--model", "stub", "--al-config", str(every_frame(tmp_path)),
                     "--target", str(disk / "ds"), "--summary", str(tmp_path / "s.json"), "--no-progress")
    summary = json.loads((tmp_path / "s.json").read_text())
    assert result.returncode == 1 and "Traceback" not in result.stderr and "damaged" not in result.stderr
    assert summary["frames_inferred"] == 90 and summary["decode_errors"] == 0  # every recording was read
    assert summary["datapoints_failed"] == 90
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"framesift: {summary['datapoints_failed']} datapoints could not be written")
    assert f"cannot write {disk / 'ds' / 'replayed.jsonl'} (No space left on device)" in result.stderr
    for line in (disk / "ds" / "replayed.jsonl").read_text().splitlines():  # no half line
        json.loads(line)
