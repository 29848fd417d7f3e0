"""Live sources decode and reconnect as soon as they can (issue 24): a camera that was streaming is retried at once,
against the real GStreamer RTSP server."""

from __future__ import annotations

from framesift.models import load_model
from framesift.pipeline.pipeline import Pipeline
from framesift.stream import SourceOptions, SourceSpec
from framesift.stream.reconnect import PROMPT_S, Backoff
from tests.helpers import SlowModel, wait_until


def test_a_camera_that_was_streaming_is_retried_at_once_then_promptly_then_with_backoff():
    backoff = Backoff(0.5, 4.0, jitter=0)
    backoff.streamed(now=0.0, for_s=30.0)
    prompt = [backoff.pause(t) for t in (0.0, 0.5, 1.0, PROMPT_S - 0.1)]
    later = [backoff.pause(PROMPT_S + t) for t in range(6)]
    assert prompt == [0.0, 0.5, 0.5, 0.5] and later == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_camera_that_never_streamed_or_only_for_a_moment_is_tried_with_backoff():
    never = Backoff(0.5, 30.0, jitter=0)
    assert [never.pause(float(t)) for t in range(5)] == [0.5, 1.0, 2.0, 4.0, 8.0]
    flapping = Backoff(0.5, 30.0, jitter=0)
    flapping.streamed(now=0.0, for_s=0.2)  # a connection that closes after a frame: no tight loop of reconnects
    assert flapping.pause(0.0) == 0.5


def test_a_restarted_camera_is_reconnected_with_an_immediate_first_retry(rtsp_server):
    events: list[tuple[str, str]] = []
    options = SourceOptions(open_timeout=2, read_timeout=2)
    with Pipeline([SourceSpec(rtsp_server.url, "cam")], load_model("stub"), options=options,
                  on_status=lambda name, event, detail: events.append((event, detail))) as pipeline:
        pipeline.start()
        assert wait_until(lambda: pipeline.snapshot().frames_inferred >= 30, timeout=20)
        rtsp_server.stop()
        assert wait_until(lambda: ("reconnecting", "in 0.0 s") in events, timeout=10)
        rtsp_server.start()
        inferred = pipeline.snapshot().frames_inferred
        assert wait_until(lambda: pipeline.snapshot().frames_inferred >= inferred + 30, timeout=30)
    retries = [detail for event, detail in events if event == "reconnecting"]
    assert retries[0] == "in 0.0 s" and [event for event, _ in events].count("connected") >= 2


def test_a_camera_whose_frames_the_model_mostly_replaces_is_decoded_keyframe_only_between_takes(rtsp_server_factory):
    server = rtsp_server_factory(gop=15)  # a keyframe every 0.5 s; the model takes a frame every 2 s
    with Pipeline([SourceSpec(server.url, "cam")], SlowModel(2.0), options=SourceOptions(skip_gops=True)) \
            as pipeline:
        pipeline.start()
        assert wait_until(lambda: pipeline.snapshot().sources["cam"].skipped_by_reason.get("keyframes_only", 0) > 30,
                          timeout=60)
        inferred = pipeline.snapshot().frames_inferred
        assert wait_until(lambda: pipeline.snapshot().frames_inferred >= inferred + 3, timeout=30)  # frames go on
    cam = pipeline.snapshot().sources["cam"]
    assert cam.frames_skipped == cam.skipped_by_reason["keyframes_only"] and cam.decode_errors == 0
    assert cam.frames_decoded == cam.frames_inferred + cam.frames_dropped  # what was decoded is all accounted for


def test_a_model_that_takes_every_frame_decodes_every_frame(rtsp_server_factory):
    server = rtsp_server_factory(gop=15)
    with Pipeline([SourceSpec(server.url, "cam")], load_model("stub"), options=SourceOptions(skip_gops=True)) \
            as pipeline:
        pipeline.start()
        assert wait_until(lambda: pipeline.snapshot().frames_inferred >= 150, timeout=60)  # 10 GOPs and more
    cam = pipeline.snapshot().sources["cam"]
    assert cam.frames_skipped == 0 and cam.skipped_by_reason == {}


def test_by_default_a_slow_models_camera_decodes_every_frame(rtsp_server_factory):
    server = rtsp_server_factory(gop=15)
    with Pipeline([SourceSpec(server.url, "cam")], SlowModel(1.0)) as pipeline:
        pipeline.start()
        assert wait_until(lambda: pipeline.snapshot().frames_inferred >= 8, timeout=60)
    cam = pipeline.snapshot().sources["cam"]
    assert cam.frames_skipped == 0 and cam.dropped_by_reason["newer_frame"] > 100
