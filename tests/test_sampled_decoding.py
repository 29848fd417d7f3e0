"""Decoding only what the draws sample (issue 15, part 2): with the same seed, the frames chosen, their pixels and
the records are those of decoding every frame — on camera-like files, long GOPs with B-frames, open GOPs (H.264
and HEVC), variable frame rate, and in MP4 and Matroska; files that do not allow it are decoded in full."""

from __future__ import annotations

import functools
import json
import random
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import yaml

from framesift.collectors import Collector, LocalDataset, parse_config
from framesift.dataset.records import read_records
from framesift.models import load_model
from framesift.pipeline.pipeline import Pipeline
from framesift.runner import RunOptions, run
from framesift.stream import SourceOptions
from framesift.stream.sampled_decoding import SampledDecoding, scan
from tests.helpers import collect_all_config
from tests.test_video_time import FPS, write_recording

FRAMES = 150

FILES: dict[str, dict[str, Any]] = {
    "camera": {"codec": "libx264", "options": {"g": "15", "bf": "0"}},  # a keyframe every 0.5 s, no B-frames
    "long-gop-b-frames": {"codec": "libx264", "options": {"g": "60", "bf": "3"}},
    "open-gop": {"codec": "libx264", "options": {"g": "15", "bf": "3", "x264-params": "open-gop=1"}},
    "open-gop-mkv": {"codec": "libx264", "options": {"g": "15", "bf": "3", "x264-params": "open-gop=1"},
                     "suffix": ".mkv"},
    "hevc-open-gop": {"codec": "libx265", "options": {"g": "15", "bf": "3",
                                                      "x265-params": "open-gop=1:log-level=error"}},
    "variable-frame-rate": {"codec": "libx264", "options": {"g": "12", "bf": "2"}, "vfr": True},
}


def write_video(path: Path, codec: str, options: dict[str, str], vfr: bool = False) -> Path:
    """Moving texture, so that every frame differs from the others; `vfr` spaces frames 20 to 100 ms apart."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = options
        if vfr:
            stream.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i in range(FRAMES):
            image = np.roll(texture, 3 * i, axis=1)
            image[5:20, 5:60] = (7 * i) % 255
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            if vfr:
                frame.pts, frame.time_base = t, Fraction(1, 1000)
                t += int(rng.choice([20, 33, 50, 100]))
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module", params=list(FILES))
def video(request, tmp_path_factory) -> Path:
    spec = FILES[request.param]
    path = tmp_path_factory.mktemp("videos") / f"{request.param}{spec.get('suffix', '.mp4')}"
    return write_video(path, spec["codec"], spec["options"], spec.get("vfr", False))


def full_decode(path: Path) -> list[tuple[int, np.ndarray]]:
    with av.open(str(path)) as container:
        container.streams.video[0].thread_type = "AUTO"
        return [(frame.pts, frame.to_ndarray(format="yuv420p")) for frame in container.decode(video=0)]


def test_the_files_hold_what_the_cases_name(video):
    packets = scan(str(video))
    assert not isinstance(packets, str), packets
    assert packets.frames == FRAMES
    if "open-gop" in video.stem:  # frames shown before their GOP's keyframe: they refer to the GOP before
        assert any(packets.pts[i] < packets.pts[start] for start, end in packets.gops for i in range(start, end))
    assert packets.reordered == ("b-frames" in video.stem or "open" in video.stem or "variable" in video.stem)


@pytest.mark.parametrize("rate", [0.02, 0.1, 0.5])
def test_the_sampled_frames_decode_to_the_same_pixels(video, rate):
    every = full_decode(video)
    for seed in range(3):
        sampled = SampledDecoding(scan(str(video)), functools.partial(lambda draws, _: draws.random() < rate,
                                                                      random.Random(seed)))
        with av.open(str(video)) as container:
            container.streams.video[0].thread_type = "AUTO"
            got = [(index, image.pts, image.to_ndarray(format="yuv420p")) for index, image, _ in
                   sampled.frames(container)]
        again = random.Random(seed)
        chosen = [i for i in range(FRAMES) if again.random() < rate]
        assert [index for index, _, _ in got] == chosen
        assert sampled.passed_over == FRAMES - len(chosen)
        for index, pts, pixels in got:
            assert pts == every[index][0]
            assert np.array_equal(pixels, every[index][1]), f"frame {index} differs"


def test_non_reference_frames_that_no_sample_needs_are_not_decoded(tmp_path):
    """Three B-frames between P-frames, none of them a reference (no B-pyramid): three frames in four are
    non-reference; a sampled one is decoded, the others only when skipping is off, and the sampled frames' pixels
    are the same either way."""
    video = write_video(tmp_path / "clip.mp4", "libx264",
                        {"g": "60", "bf": "3", "x264-params": "b-adapt=0:b-pyramid=none"})
    every = full_decode(video)
    for rate, skipped in ((0.05, 0.5), (0.3, 0.2)):  # the share of the frames fed that is skipped, at least
        got, decoded = {}, {}
        for skip in (False, True):
            draw = functools.partial(lambda draws, share, _: draws.random() < share, random.Random(2), rate)
            sampled = SampledDecoding(scan(str(video)), draw, skip_nonref=skip)
            with av.open(str(video)) as container:
                container.streams.video[0].thread_type = "AUTO"
                got[skip] = [(index, image.to_ndarray(format="yuv420p")) for index, image, _ in
                             sampled.frames(container)]
            decoded[skip] = sampled.decoded
        assert [index for index, _ in got[True]] == [index for index, _ in got[False]] != []
        assert all(np.array_equal(pixels, every[index][1]) for index, pixels in got[True])
        assert decoded[True] < (1 - skipped) * decoded[False]


def test_resumed_and_limited_frames_are_drawn_from_where_they_start(video):
    every = full_decode(video)
    drawn: list[int] = []
    sampled = SampledDecoding(scan(str(video)), lambda index: drawn.append(index) or len(drawn) % 4 == 0, skip=40,
                              limit=120)
    with av.open(str(video)) as container:
        got = [(index, image.to_ndarray(format="yuv420p")) for index, image, _ in sampled.frames(container)]
    assert drawn == list(range(40, 120))  # frames 40..119, once each, in order, each drawn by its index
    assert [index for index, _ in got] == list(range(43, 120, 4))
    assert all(np.array_equal(pixels, every[index][1]) for index, pixels in got)


def test_when_the_draws_stop_every_later_frame_is_decoded(video):
    every = full_decode(video)
    drawn: list[int] = []

    def draw(index: int) -> bool | None:
        drawn.append(index)
        return None if len(drawn) > 50 else len(drawn) == 10  # the configuration changed to one that needs images

    sampled = SampledDecoding(scan(str(video)), draw)
    with av.open(str(video)) as container:
        got = [(index, drawn_then, image.to_ndarray(format="yuv420p"))
               for index, image, drawn_then in sampled.frames(container)]
    assert [index for index, _, _ in got] == [9, *range(50, FRAMES)]
    assert [d for _, d, _ in got] == [True] + [None] * (FRAMES - 50)
    assert all(np.array_equal(pixels, every[index][1]) for index, _, pixels in got)


def random_config(rate: float):
    return parse_config({"enabled": True, "persist_predictions": True,
                         "sampling_strategies": [{"name": "some", "type": "random", "traffic_percentage": rate},
                                                 {"name": "few", "type": "random", "traffic_percentage": rate / 4}],
                         "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}})


def collect(video: Path, folder: Path, config, decode_all: bool, model: str = "stub"):
    collector = Collector(config, LocalDataset(folder), seed=11, max_queue_items=1000, max_queue_bytes=1 << 32)
    pipeline = Pipeline([str(video)], load_model(model), collector, options=SourceOptions(decode_all=decode_all))
    pipeline.run()
    pipeline.close()
    records = [json.loads(line) for line in (folder / "datapoints.jsonl").read_text().splitlines()]
    images = {record["frame_id"]: (folder / record["image"]).read_bytes() for record in records}
    for record in records:
        del record["id"], record["image"]  # made afresh for each datapoint
    return pipeline.snapshot(), sorted(records, key=lambda r: (r["frame_id"], r["strategy"])), images


@pytest.mark.parametrize("rate", [0.05, 0.3])
def test_a_replay_collects_the_same_datapoints_with_and_without_decoding_everything(video, tmp_path, rate):
    full, full_records, full_images = collect(video, tmp_path / "full", random_config(rate), decode_all=True)
    sampled, records, images = collect(video, tmp_path / "sampled", random_config(rate), decode_all=False)
    assert records == full_records and len(records) > 0
    assert images == full_images  # the same JPEG bytes: made from the same pixels
    assert full.frames_decoded == FRAMES and full.frames_unsampled == 0
    assert sampled.frames_decoded == len(images) < FRAMES
    assert sampled.frames_decoded + sampled.frames_unsampled == FRAMES
    assert sampled.frames_inferred == sampled.frames_decoded and sampled.frames_dropped == 0


def test_sampling_that_looks_at_the_images_decodes_every_frame(tmp_path):
    video = write_video(tmp_path / "clip.mp4", "libx264", {"g": "15"})
    config = parse_config({"enabled": True, "persist_predictions": True,
                           "sampling_strategies": [{"name": "any", "type": "detections_number_based",
                                                    "probability": 0.2, "less_than": 1000}],
                           "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}})
    snap, records, _ = collect(video, tmp_path / "ds", config, decode_all=False, model="demo")
    assert snap.frames_decoded == snap.frames_inferred == FRAMES and snap.frames_unsampled == 0
    assert 0 < len(records) < FRAMES


def test_a_file_without_timestamps_is_decoded_in_full(tmp_path):
    mp4 = write_video(tmp_path / "clip.mp4", "libx264", {"g": "15"})
    raw = tmp_path / "clip.h264"  # an elementary stream: its packets carry no timestamps
    with av.open(str(mp4)) as source, av.open(str(raw), "w", format="h264") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(video=0):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    assert isinstance(scan(str(raw)), str)
    snap, records, _ = collect(raw, tmp_path / "ds", random_config(0.1), decode_all=False)
    assert snap.frames_decoded == FRAMES and snap.frames_unsampled == 0 and records


def test_a_callback_or_a_sink_sees_every_frame(tmp_path):
    video = write_video(tmp_path / "clip.mp4", "libx264", {"g": "15"})
    seen: list[int] = []
    collector = Collector(collect_all_config(sampling_strategies=[
        {"name": "few", "type": "random", "traffic_percentage": 0.05}]), LocalDataset(tmp_path / "ds"), seed=1)
    pipeline = Pipeline([str(video)], load_model("stub"), collector,
                        on_prediction=[lambda frame, prediction: seen.append(frame.frame_id)])
    pipeline.run()
    pipeline.close()
    assert seen == list(range(FRAMES)) and pipeline.snapshot().frames_unsampled == 0


def test_a_partly_corrupt_file_is_sampled_to_its_end_and_its_damage_counted(tmp_path):
    path = write_video(tmp_path / "clip.mp4", "libx264", {"g": "15", "bf": "2"})
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    for k in range(int(len(data) * 0.4), int(len(data) * 0.6), 397):
        data[k:k + 40] = rng.integers(0, 256, 40, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    snap, records, _ = collect(path, tmp_path / "ds", random_config(0.3), decode_all=False)
    assert snap.frames_unsampled > 0 and records
    assert snap.decode_errors + snap.corrupt_frames > 0
    assert snap.frames_decoded + snap.frames_unsampled + snap.decode_errors >= FRAMES


def test_an_archive_replayed_in_video_time_collects_the_same_with_and_without_decoding_everything(tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    for i in range(2):
        write_recording(folder / f"part{i}.mp4", 6, creation_time=f"2026-11-2{i}T23:59:57Z")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "enabled": True, "persist_predictions": True,
        "sampling_strategies": [{"name": "some", "type": "random", "traffic_percentage": 0.3,
                                 "limits": [{"type": "minutely", "value": 3}]}],
        "batching_strategy": {"batches_name_prefix": "rec", "recreation_interval": "daily"}}))
    results = {}
    for decode_all in (True, False):
        target = tmp_path / f"ds-{decode_all}"
        summary = tmp_path / f"summary-{decode_all}.json"
        run(RunOptions(sources=[str(folder)], model="stub", al_config=str(config), target=str(target), seed=5,
                       decode_all=decode_all, summary=str(summary)))
        records = [{k: v for k, v in r.items() if k not in ("id", "image")} for r in read_records(target)]
        replayed = {entry["file"]: (entry["frames"], entry["finished"])  # a recording's last line tells
                    for entry in map(json.loads, (target / "replayed.jsonl").read_text().splitlines())}
        results[decode_all] = records, replayed, json.loads(summary.read_text())
    (full, full_replayed, full_summary), (sampled, replayed, summary) = results[True], results[False]
    assert sampled == full and len(full) == 6  # 3 in any 60 s of each 6 s recording, a day apart
    assert all(r["batch"] == "rec_" + r["captured_at"][:10].replace("-", "_") for r in full)  # the recording's day
    assert replayed == full_replayed and all(finished for _, finished in replayed.values())
    assert summary["frames_decoded"] < full_summary["frames_decoded"] == 2 * 6 * FPS
    assert summary["frames_decoded"] + summary["frames_unsampled"] == 2 * 6 * FPS


@pytest.mark.parametrize("rate", [0.05, 0.3])
def test_keyframe_draws_decode_the_keyframe_of_each_sampled_gop(video, rate):
    every = full_decode(video)
    packets = scan(str(video))
    assert not isinstance(packets, str)
    keyframe_of = {packets.ranks[i]: packets.ranks[start] for start, end in packets.gops for i in range(start, end)}
    sampled = SampledDecoding(packets, functools.partial(lambda draws, _: draws.random() < rate, random.Random(5)),
                              keyframes=True)
    with av.open(str(video)) as container:
        got = [(index, image.to_ndarray(format="yuv420p")) for index, image, _ in sampled.frames(container)]
    again = random.Random(5)
    chosen = [i for i in range(FRAMES) if again.random() < rate]  # the same draws, in the same order
    assert [index for index, _ in got] == sorted({keyframe_of[i] for i in chosen}) != []
    assert sampled.passed_over == FRAMES - len(got) and sampled.lost() == 0
    assert all(np.array_equal(pixels, every[index][1]) for index, pixels in got)


def test_keyframe_draws_are_opt_in_and_collect_keyframes_only(tmp_path):
    video = write_video(tmp_path / "clip.mp4", "libx264", {"g": "15", "bf": "0"})
    snaps = {}
    for keyframes in (False, True):
        collector = Collector(random_config(0.3), LocalDataset(tmp_path / str(keyframes)), seed=3)
        with Pipeline([str(video)], load_model("stub"), collector,
                      options=SourceOptions(keyframe_draws=keyframes)) as pipeline:
            pipeline.run()
        snaps[keyframes] = pipeline.snapshot()
        frames = {record["frame_id"] for record in read_records(tmp_path / str(keyframes))}
        assert frames and (all(frame % 15 == 0 for frame in frames) if keyframes
                           else any(frame % 15 for frame in frames))
    assert snaps[True].frames_decoded == snaps[True].frames_inferred <= FRAMES // 15 < snaps[False].frames_decoded
    assert snaps[True].frames_decoded + snaps[True].frames_unsampled == FRAMES
