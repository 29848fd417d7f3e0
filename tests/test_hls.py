"""SPEC §9 for HLS: a live playlist plays at its frame rate although its frames arrive in bursts (one segment at a
time), `--max-fps` thins it by its own clock, and a playlist that has ended is replayed once like a file."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from framesift.stream import Pipeline, SourceOptions
from tests.helpers import SlowModel
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


def watch(url: str, seconds: float, options: SourceOptions) -> tuple[list[float], object]:
    """Run a 20 ms-per-frame model (50 fps of capacity) on the stream; the times frames were inferred, and the
    source's statistics."""
    times: list[float] = []
    with Pipeline([url], SlowModel(0.02), options=options,
                  on_prediction=[lambda frame, prediction: times.append(time.monotonic())]) as pipeline:
        pipeline.start()
        time.sleep(seconds)
        stats = pipeline.snapshot().sources["source0"]
    return times, stats


def rate(times: list[float], after: float) -> float:
    """Frames per second after the first `after` seconds (the first segments arrive at once)."""
    later = [t for t in times if t >= times[0] + after]
    return (len(later) - 1) / (later[-1] - later[0])


def test_a_live_playlist_plays_at_its_frame_rate_not_at_the_rate_of_its_bursts(live_hls):
    times, stats = watch(live_hls, 9, SourceOptions())
    assert rate(times, after=3) > 0.85 * FPS  # was 2-3 fps: each burst but its last frame counted as newer_frame
    assert stats.dropped_by_reason.get("newer_frame", 0) < 0.1 * stats.frames_decoded
    assert stats.reconnects == 0


def test_max_fps_thins_a_live_playlist_by_its_own_clock(live_hls):
    times, stats = watch(live_hls, 9, SourceOptions(max_fps=5))
    assert 4.0 < rate(times, after=3) < 6.0  # was 1 fps: one frame per burst
    assert stats.frames_skipped > stats.frames_inferred


def test_an_ended_playlist_is_replayed_once_like_a_file(tmp_path):
    write_vod(tmp_path / "vod", frames=60, fps=FPS)
    server = HlsServer(tmp_path / "vod")
    seen: list[int] = []
    try:
        with Pipeline([server.url("vod.m3u8")], SlowModel(0.02),
                      on_prediction=[lambda frame, prediction: seen.append(frame.frame_id)]) as pipeline:
            started = time.monotonic()
            pipeline.run()  # it ends by itself: a recording, not a live source that "ended" and is reopened
            elapsed = time.monotonic() - started
            stats = pipeline.snapshot().sources["source0"]
    finally:
        server.stop()
    assert seen == list(range(60))  # every frame, once, in order: replayed like a file, nothing dropped
    assert stats.reconnects == 0 and stats.frames_dropped == 0
    assert elapsed < 4.0 + 60 * 0.02  # as fast as the model allows, not paced at 15 fps (4 s)
