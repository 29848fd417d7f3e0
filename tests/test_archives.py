"""Issue 15, part 3: a folder or a glob of recordings as one source, in time order, resumable."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from framesift.dataset.records import read_records
from framesift.runner import RunOptions, run
from framesift.stream.archives import list_recordings
from framesift.stream.replay import ReplayLog
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


def test_each_real_file_is_replayed_once_whichever_links_name_it(tmp_path):
    """Issue 22, 2: a glob followed `day1/loop -> ..` as deep as the system allowed, and `latest -> day2` too:
    4 files of 30 frames gave 7,320 records (every frame 61 times)."""
    folder = tmp_path / "rec"
    for day in (1, 2):
        (folder / f"day{day}").mkdir(parents=True)
        for i in range(2):
            write_recording(folder / f"day{day}" / f"cam{i}.mp4", 1, creation_time=f"2026-11-2{day}T0{i}:00:00Z")
    (folder / "day1" / "loop").symlink_to("..")
    (folder / "latest").symlink_to("day2")
    (folder / "a-link").symlink_to("day2")  # a link named before the folder it names: the real name is kept
    (tmp_path / "elsewhere").mkdir()  # a folder only a link reaches is followed, under the link's name
    write_recording(tmp_path / "elsewhere" / "cam9.mp4", 1, creation_time="2026-11-23T00:00:00Z")
    (folder / "day2" / "more").symlink_to(tmp_path / "elsewhere")
    names = ["day1/cam0.mp4", "day1/cam1.mp4", "day2/cam0.mp4", "day2/cam1.mp4"]
    frames = frames_of(folder / names[0])
    for n, (source, found) in enumerate(((folder / "**" / "*.mp4", [*names, "day2/more/cam9.mp4"]),
                                         (folder, [*names, "day2/more/cam9.mp4"]),
                                         (folder / "*" / "*.mp4", names))):
        run(RunOptions(sources=[str(source)], model="stub", al_config=str(every_frame(tmp_path)),
                       target=str(tmp_path / f"ds{n}"), seed=1))
        collected = Counter((r["source"], r["frame_id"]) for r in read_records(tmp_path / f"ds{n}"))
        assert collected == Counter({(str(folder / name), i): 1 for name in found for i in range(frames)}), source


def test_an_interrupted_bootstrap_goes_on_where_it_stopped_and_samples_every_frame_once(tmp_path):
    folder, clips = recordings(tmp_path, 3)
    command = paced_bootstrap(tmp_path, folder)
    first = subprocess.Popen([*command, "--summary", str(tmp_path / "first.json")], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    replayed = tmp_path / "ds" / "replayed.jsonl"
    try:  # stop it once the first recording is done (it is replayed at its frame rate: 3 s each)
        assert wait_until(lambda: replayed.exists() and '"finished": true' in replayed.read_text(), timeout=30)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0, first.communicate()[1]
    finally:
        first.kill()
    before = [(Path(r["source"]).name, r["frame_id"]) for r in read_records(tmp_path / "ds")]
    assert {name for name, _ in before} <= {"part0.mp4", "part1.mp4"}
    # paced, the replay behaves as live: a frame the model could not take in time (a busy machine) was replaced by
    # the next one, and counted
    late = json.loads((tmp_path / "first.json").read_text())["sources"]["source0"]["dropped_by_reason"]
    late = late.get("newer_frame", 0)

    unpaced = [argument for argument in command if argument != "--realtime"]
    second = subprocess.run([*unpaced, "--summary", str(tmp_path / "s.json")], capture_output=True, text=True,
                            timeout=60)
    assert second.returncode == 0, second.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    read = summary["frames_decoded"] + summary["frames_unsampled"]
    assert 30 <= read == 90 - len(before) - late  # part0 was skipped: part1's rest and part2 were replayed
    after = Counter((Path(r["source"]).name, r["frame_id"]) for r in read_records(tmp_path / "ds"))
    assert set(after.values()) == {1} and len(after) == 90 - late
    assert set(after) <= {(clip.name, i) for clip in clips for i in range(frames_of(clip))}
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
    assert first.stats.frames_unsampled == 90 - first.stats.frames_inferred
    assert len(records) == first.stats.frames_inferred
    last = max((r["frame_id"] for r in records if r["source"].endswith("part2.mp4")), default=None)
    assert last is None or last < 29  # the case this is about: frames after the last sampled one
    entries = [json.loads(line) for line in (tmp_path / "ds" / "replayed.jsonl").read_text().splitlines()]
    last = {Path(e["file"]).name: (e["frames"], e["finished"]) for e in entries}  # a recording's last line tells
    assert last == {f"part{i}.mp4": (30, True) for i in range(3)}

    again = run(options).stats
    assert again.frames_decoded == again.frames_unsampled == 0
    assert list(read_records(tmp_path / "ds")) == records


def test_a_bootstrap_killed_mid_recording_goes_on_after_its_last_collected_frame(tmp_path):
    """A power cut leaves no orderly stop: the log only said the recording had begun, and the same command started
    it over, collecting again every frame collected before the crash."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    clips = [write_recording(folder / f"part{i}.mp4", 10, creation_time=f"2026-11-20T0{i}:00:00Z", fps=10)
             for i in range(2)]
    command = [sys.executable, "-m", "framesift.cli", "run", str(folder), "--model", "stub", "--al-config",
               str(every_frame(tmp_path)), "--target", str(tmp_path / "ds"), "--no-progress"]  # unpaced: no frame
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # dropped as live
    try:  # killed early in the first recording (of 100 frames; each record is fsynced)
        assert wait_until(lambda: len(list(read_records(tmp_path / "ds"))) >= 12, timeout=30)
    finally:
        first.kill()
        first.wait()
    before = Counter(r["frame_id"] for r in read_records(tmp_path / "ds"))
    assert 12 <= len(before) < 100 and set(before.values()) == {1}

    second = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    after = Counter((Path(r["source"]).name, r["frame_id"]) for r in read_records(tmp_path / "ds"))
    assert after == Counter({(clip.name, i): 1 for clip in clips for i in range(frames_of(clip))})


def test_a_bootstrap_killed_again_and_again_collects_every_frame_exactly_once(tmp_path):
    """Issue 22, 1: the log said a recording "finished" once its last frame was inferred, while its datapoints were
    still queued; a `kill -9` then lost them for good (the rerun skipped the recording), exit 0, no warning."""
    folder, clips = recordings(tmp_path, 4)
    command = [sys.executable, "-m", "framesift.cli", "run", str(folder), "--model", "stub", "--al-config",
               str(every_frame(tmp_path)), "--target", str(tmp_path / "ds"), "--no-progress"]

    def collected() -> int:
        return len(list(read_records(tmp_path / "ds")))

    def killed_at(enough: int) -> None:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert wait_until(lambda: collected() >= enough or process.poll() is not None, timeout=60)
        finally:
            process.kill()
            process.wait()

    for more in (1, 1, 8, 20, 1):  # killed at once after its first new record, or a few records later
        killed_at(collected() + more)
    last = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert last.returncode == 0, last.stderr
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
    good = {"file": str(clip), "key": recording.key, "frames": 3, "finished": False}
    bad = [{**good, "frames": -5}, {**good, "frames": "3"}, {**good, "frames": 3.5}, {**good, "finished": "yes"},
           {"file": str(clip)}, ["a list"]]
    log_file = tmp_path / "replayed.jsonl"
    log_file.write_bytes(b"\n".join([json.dumps(good).encode(), *(json.dumps(b).encode() for b in bad),
                                      b'{"key": broken', b"\x00\xffbinary"]) + b"\n")
    assert ReplayLog(log_file).frames_done(recording) == 3
    assert [r.getMessage() for r in caplog.records] == \
        [f"{log_file} line {n} is not a replay entry; it is left out" for n in range(2, 10)]


@pytest.mark.parametrize("suffix", [".mp4", ".ts"])  # the container says how many frames it holds, or not
@pytest.mark.parametrize("finished", [False, True])
def test_a_replay_entry_claiming_more_frames_than_its_file_holds_is_named_and_left_out(tmp_path, caplog, suffix,
                                                                                        finished):
    """Issue 22, 12: `"frames": 10**18` skipped the recording silently (every frame taken as replayed)."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    clip = write_recording(folder / f"a{suffix}", 2)
    recording = list_recordings(str(folder))[0]
    (tmp_path / "ds").mkdir()
    log_file = tmp_path / "ds" / "replayed.jsonl"
    log_file.write_text(json.dumps({"file": str(clip.resolve()), "key": recording.key, "frames": 10**18,
                                    "finished": finished}) + "\n")
    run(RunOptions(sources=[str(folder)], model="stub", al_config=str(every_frame(tmp_path)),
                   target=str(tmp_path / "ds"), seed=1))
    assert f"{log_file} says {10**18} frames of {clip} were replayed, but it holds {frames_of(clip)}: the entry is " \
        "wrong and left out" in caplog.text
    assert sorted(r["frame_id"] for r in read_records(tmp_path / "ds")) == list(range(frames_of(clip)))


def write_ts(path: Path, frames: int) -> Path:
    """An MPEG-TS recording of `frames` frames, one keyframe every 5 and no B-frames."""
    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=10, options={"g": "5", "bf": "0"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.full((48, 64, 3), i * 9 % 256, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode(None))
    return path


def test_a_recording_still_being_written_goes_on_after_its_last_replayed_frame(tmp_path):
    """Issue 22, 12: a `.ts` that grew since the last run was replayed from frame 0 (each frame collected again)."""
    whole = write_ts(tmp_path / "whole.ts", 25)
    with av.open(str(whole)) as container:
        cut = [packet.pos for packet in container.demux(video=0) if packet.size][10]  # where its 11th frame begins
    data = whole.read_bytes()
    folder = tmp_path / "recordings"
    folder.mkdir()
    growing = folder / "cam.ts"
    growing.write_bytes(data[:cut])  # the recorder has written 10 frames so far
    options = RunOptions(sources=[str(folder)], model="stub", al_config=str(every_frame(tmp_path)),
                         target=str(tmp_path / "ds"), seed=1)
    run(options)
    assert sorted(r["frame_id"] for r in read_records(tmp_path / "ds")) == list(range(10))
    with open(growing, "ab") as recorder:  # ... and goes on: the same file, grown
        recorder.write(data[cut:])
    run(options)
    assert Counter(r["frame_id"] for r in read_records(tmp_path / "ds")) == Counter(range(25))


def test_a_file_given_alone_is_skipped_when_replayed_and_resumed_when_not_as_in_an_archive(tmp_path):
    """Issue 22, 12: a file given alone was collected again by every run into the same target."""
    clip = write_recording(tmp_path / "clip.mp4", 3)
    frames = frames_of(clip)
    options = RunOptions(sources=[str(clip)], model="stub", al_config=str(every_frame(tmp_path)),
                         target=str(tmp_path / "ds"), seed=1)
    run(dataclasses.replace(options, max_frames=5))  # stopped after 5 frames
    assert [r["frame_id"] for r in read_records(tmp_path / "ds")] == list(range(5))
    rest = run(options).stats
    assert rest.frames_decoded == frames - 5
    again = run(options).stats
    assert again.frames_decoded == again.frames_unsampled == 0
    assert [(r["source"], r["frame_id"]) for r in read_records(tmp_path / "ds")] == \
        [(str(clip), i) for i in range(frames)]
    predicted = run(dataclasses.replace(options, al_config=None))  # collecting nothing: nothing to resume
    assert predicted.stats.frames_inferred == frames


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
