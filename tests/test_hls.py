"""SPEC §9 for HLS: a live playlist plays at its frame rate although its frames arrive in bursts (one segment at a
time), `--max-fps` thins it by its own clock, and a playlist that has ended is replayed once like a file."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from framesift.pipeline.pipeline import Pipeline
from framesift.stream import SourceOptions
from tests.helpers import SlowModel, wait_until
from tests.hls_server import HlsServer, LiveHls, write_vod

FPS = 15


@pytest.fixture
def live_hls(tmp_path: Path) -> Iterator[str]:
    """A live HLS stream at 15 fps in 1 s segments, served on 127.0.0.1; yields its playlist's URL."""
    live = LiveHls(tmp_path / "hls", fps=FPS, segment_s=1.0)
    live.start()
    server = HlsServer(tmp_path / "hls")
    yield server.url("live.m3u8")
    server.stop()
    live.stop()


def watch(url: str, frames: int, options: SourceOptions) -> tuple[list[tuple[float, float]], object]:
    """Run a model that takes 20 ms a frame (50 fps of capacity, whatever else the machine does) on the stream
    until it has inferred `frames` frames after its first three seconds (the first segments arrive at once); the
    (time inferred, video time) of those frames, and the source's statistics."""
    seen: list[tuple[float, float]] = []
    with Pipeline([url], SlowModel(0.02, "stub"), options=options,
                  on_prediction=[lambda frame, _: seen.append((time.monotonic(), frame.video_time))]) as pipeline:
        pipeline.start()
        assert wait_until(lambda: len(seen) > 1 and sum(v >= seen[0][1] + 3 for _, v in seen) >= frames, 120)
        stats = pipeline.snapshot().sources["source0"]
    return [(t, v) for t, v in seen if v >= seen[0][1] + 3], stats


def per_video_second(seen: list[tuple[float, float]]) -> float:
    """Frames inferred per second of the stream's own clock (its timestamps): how many of its frames were played,
    however fast the machine made them."""
    return (len(seen) - 1) / (seen[-1][1] - seen[0][1])


def test_a_live_playlist_plays_at_its_frame_rate_not_at_the_rate_of_its_bursts(live_hls):
    seen, stats = watch(live_hls, 90, SourceOptions())
    assert per_video_second(seen) > 0.9 * FPS  # was 2-3: each burst but its last frame counted as newer_frame
    assert stats.dropped_by_reason.get("newer_frame", 0) < 0.1 * stats.frames_decoded
    gaps = sorted(t1 - t0 for (t0, _), (t1, _) in pairwise(seen))
    assert gaps[len(gaps) // 2] > 0.5 / FPS  # spread over the time they cover, not handed on as each burst came
    assert stats.reconnects == 0


def test_max_fps_thins_a_live_playlist_by_its_own_clock(live_hls):
    seen, stats = watch(live_hls, 25, SourceOptions(max_fps=5))
    assert 4.0 < per_video_second(seen) < 6.0  # was 1: one frame per burst
    steps = [round((v1 - v0) * FPS) for (_, v0), (_, v1) in pairwise(seen)]
    assert steps.count(3) > 0.8 * len(steps)  # every third frame of 15 fps, by the stream's timestamps
    assert stats.frames_skipped > stats.frames_inferred


def test_an_ended_playlist_is_replayed_once_like_a_file(tmp_path):
    write_vod(tmp_path / "vod", frames=60, fps=FPS)
    server = HlsServer(tmp_path / "vod")
    seen: list[tuple[int, float, float]] = []
    try:
        with Pipeline([server.url("vod.m3u8")], SlowModel(0.02, "stub"), on_prediction=[
                lambda frame, _: seen.append((frame.frame_id, time.monotonic(), frame.video_time))]) as pipeline:
            pipeline.run()  # it ends by itself: a recording, not a live source that "ended" and is reopened
            stats = pipeline.snapshot().sources["source0"]
    finally:
        server.stop()
    assert [frame_id for frame_id, _, _ in seen] == list(range(60))  # every frame, once, in order: nothing dropped
    assert stats.reconnects == 0 and stats.frames_dropped == 0
    (_, started, first), *_ = seen
    early = sum(t - started < v - first - 0.1 for _, t, v in seen)  # before the video's clock would have had it
    assert early > 30  # as fast as the model allows, not paced at 15 fps (then none would be)
