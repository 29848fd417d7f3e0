"""The live page (issue 16): a live RTSP camera (GStreamer's) read with the demo model, the page opened in a real
headless Chromium — the frame it shows and the boxes drawn over it, against the predictions the pipeline's own
callback saw for that frame; the collector's counters and thumbnails; what the server answers and to whom; the
page's cost bounded however many pages ask; the README's screenshot."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from framesift.collectors import Collector, LocalDataset
from framesift.dataset.records import read_records
from framesift.demo import write_demo_video
from framesift.models import load_model
from framesift.observe.exposition import MetricsServer
from framesift.observe.live import LivePage
from framesift.pipeline.pipeline import Pipeline
from framesift.stats import StreamStats
from framesift.stream import SourceOptions, SourceSpec
from tests.browser import dump_dom
from tests.helpers import collect_all_config, load_script, wait_until


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """120 frames of the demo scene at 30 fps (4 s), 320×240."""
    return write_demo_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames=120, width=320, height=240)


class LiveDom(HTMLParser):
    """What the page shows, read back from its DOM: per source the frame's id and the boxes drawn over it (x, y,
    width, height, class), the source's URL; the collector's counters and the datapoints it shows."""

    def __init__(self, html: str):
        super().__init__()
        self.frames: dict[str, int] = {}
        self.boxes: dict[str, list[tuple[float, float, float, float, str]]] = {}
        self.urls: dict[str, str] = {}
        self.counters: dict[str, int] = {}
        self.datapoints: list[str] = []
        self.limits: dict[tuple[str, int], tuple[bool, str, int]] = {}  # (strategy, window) -> (full, text, used)
        self._limit: tuple[str, int] | None = None
        self._source: str | None = None
        self._in_frame = False
        self._text_of: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "article" and "source" in classes:
            self._source = a["data-source"]
        elif tag == "div" and "frame" in classes and self._source is not None:
            self._in_frame = True
            if "data-frame-id" in a:
                self.frames[self._source] = int(a["data-frame-id"])
        elif tag == "div" and "url" in classes:
            self._text_of = "url"
        elif tag == "rect" and self._in_frame and self._source is not None:
            self.boxes.setdefault(self._source, []).append(
                (float(a["x"]), float(a["y"]), float(a["width"]), float(a["height"]), a["data-class"]))
        elif tag == "td" and "data-counter" in a:
            self._text_of = "counter:" + a["data-counter"]
        elif tag == "figure" and "data-datapoint" in a:
            self.datapoints.append(a["data-datapoint"])
        elif tag == "div" and "limit" in classes:
            self._limit = (a["data-strategy"], int(a["data-window"]))
            self.limits[self._limit] = ("full" in classes, "", -1)
        elif tag == "div" and "bar" in classes and self._limit is not None:
            full, text, _ = self.limits[self._limit]
            self.limits[self._limit] = (full, text, int(a["aria-valuenow"]))
        elif tag == "span" and "text" in classes and self._limit is not None:
            self._text_of = "limit"

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._in_frame:
            self._in_frame = False  # the frame box holds no other div
        elif tag == "article":
            self._source = None

    def handle_data(self, data: str) -> None:
        if self._text_of == "url" and self._source is not None:
            self.urls[self._source] = data
        elif self._text_of == "limit" and self._limit is not None:
            full, _, used = self.limits[self._limit]
            self.limits[self._limit] = (full, data, used)
            self._limit = None
        elif self._text_of is not None and self._text_of.startswith("counter:"):
            self.counters[self._text_of.removeprefix("counter:")] = int(data)
        self._text_of = None


def get(url: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_a_live_rtsp_frame_is_shown_with_the_boxes_of_its_own_predictions(rtsp_server_factory, tmp_path):
    camera = rtsp_server_factory(size=(640, 480, 15), pattern="smpte")  # the demo model finds its red bar
    url = camera.url.replace("rtsp://", "rtsp://admin:hunter2@")  # a password the page must not show
    predictions: dict[int, tuple[list[tuple[int, int, int, int]], list[str]]] = {}

    def remember(frame, prediction):
        boxes = [tuple(round(float(v)) for v in box) for box in prediction.xyxy]
        predictions[frame.frame_id] = (boxes, list(prediction.class_name))

    collector = Collector(collect_all_config(), LocalDataset(tmp_path / "ds"))
    pipeline = Pipeline([SourceSpec(url, "dock")], load_model("demo", confidence=0.5), collector,
                        options=SourceOptions(open_timeout=5, read_timeout=5), on_prediction=[remember])
    page = LivePage(pipeline)
    with MetricsServer(pipeline.snapshot, 0, page=page) as server:
        pipeline.start()
        try:
            assert wait_until(lambda: any(boxes for boxes, _ in predictions.values())
                              and len(collector.latest()) >= 3, 30), "no detections from the RTSP camera"
            dom = LiveDom(dump_dom(f"http://127.0.0.1:{server.port}/live", budget_ms=3000))
        finally:
            pipeline.close()
    shown = dom.frames["dock"]
    boxes, classes = predictions[shown]
    assert boxes, "the page shows a frame the model found nothing in"
    drawn = sorted(dom.boxes["dock"])
    expected = sorted((x1, y1, x2 - x1, y2 - y1, name) for (x1, y1, x2, y2), name in zip(boxes, classes, strict=True))
    assert len(drawn) == len(expected)
    for (x, y, w, h, name), (ex, ey, ew, eh, expected_name) in zip(drawn, expected, strict=True):
        assert name == expected_name and max(abs(x - ex), abs(y - ey), abs(w - ew), abs(h - eh)) <= 1
    assert dom.urls["dock"] == camera.url.replace("rtsp://", "rtsp://admin:***@")
    registered = {record["id"] for record in read_records(tmp_path / "ds")}
    assert dom.counters["registered"] >= 3 and dom.counters["sampled"] >= dom.counters["registered"]
    assert dom.datapoints and set(dom.datapoints) <= registered


def test_the_server_answers_metrics_and_the_page_only_to_loopback_names(clip):
    pipeline = Pipeline([SourceSpec(str(clip), "file")], load_model("demo", confidence=0.5),
                        options=SourceOptions(realtime=True, loop=True))
    with MetricsServer(pipeline.snapshot, 0, page=LivePage(pipeline)) as server:
        base = f"http://127.0.0.1:{server.port}"
        pipeline.start()
        try:
            assert wait_until(lambda: json.loads(get(base + "/live/state")[2])["sources"][0]["frame"], 20)
            status, headers, body = get(base + "/metrics")
            assert status == 200 and b'framesift_frames_inferred_total{source="file"}' in body
            status, headers, body = get(base + "/live")
            assert status == 200 and headers["Content-Type"].startswith("text/html")
            assert "default-src 'self'" in headers["Content-Security-Policy"]  # nothing from elsewhere
            assert all(get(base + path)[0] == 200 for path in ("/live/live.js", "/live/live.css", "/live/overlay.js"))
            frame = json.loads(get(base + "/live/state")[2])["sources"][0]["frame"]
            status, headers, body = get(base + frame["url"])
            image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
            assert status == 200 and headers["Content-Type"] == "image/jpeg" and image.shape == (240, 320, 3)
            assert (frame["width"], frame["height"]) == (320, 240)  # the boxes are in the frame's own pixels
            assert get(f"{base}/live/frame?source=file&id=-5")[0] == 404  # a frame no longer (or never) shown
            assert get(f"{base}/live/frame?source=file&id=x")[0] == 400
            assert get(base + "/live", host="localhost")[0] == 200
            assert get(base + "/live", host=f"[::1]:{server.port}")[0] == 200
            for host in (f"attacker.example:{server.port}", "framesift.local"):  # DNS rebinding
                status, _, body = get(base + "/live/state", host=host)
                assert status == 403 and b"127.0.0.1 or localhost" in body
            assert get(base + "/metrics", host="attacker.example")[0] == 200  # /metrics as before
        finally:
            pipeline.close()


def test_the_page_and_the_status_line_show_each_limits_fill_and_when_it_refills(clip, tmp_path):
    """Before, a strategy that spent its budget in seconds was flagged nowhere: the page showed counters only."""
    from framesift.collectors import parse_config
    from framesift.observe.progress import describe

    config = parse_config({
        "enabled": True, "persist_predictions": True, "batching_strategy": {"batches_name_prefix": "b",
                                                                            "recreation_interval": "never"},
        "sampling_strategies": [{"name": "crowded", "type": "random", "traffic_percentage": 1.0,
                                 "limits": [{"type": "minutely", "value": 3}, {"type": "hourly", "value": 50}]}]})
    collector = Collector(config, LocalDataset(tmp_path / "ds"))
    pipeline = Pipeline([SourceSpec(str(clip), "file")], load_model("stub"), collector,
                        options=SourceOptions(realtime=True, loop=True))
    with MetricsServer(pipeline.snapshot, 0, page=LivePage(pipeline)) as server:
        pipeline.start()
        try:
            base = f"http://127.0.0.1:{server.port}"

            def spent() -> bool:  # the page's state (read at most once a second) shows the minute spent
                [shown] = json.loads(get(base + "/live/state")[2])["collectors"]
                return any(limit["used"] == limit["max"] == 3 for limit in shown["limits"])

            assert wait_until(spent, 30)
            dom = LiveDom(dump_dom(base + "/live", budget_ms=3000))
            status = describe(pipeline.snapshot())
        finally:
            pipeline.close()
    full, text, used = dom.limits[("crowded", 60)]
    assert full and used == 3, dom.limits and text.startswith("crowded: 3/3 this minute, next credit in ")
    assert text.endswith(" s") and 0 <= int(text.split()[-2]) <= 60, text
    full, text, used = dom.limits[("crowded", 3600)]
    assert not full and used == 3 and text.startswith("crowded: 3/50 this hour, next credit in ")
    assert "| crowded: 3/3 this minute, next credit in " in status and "3/50" not in status  # only what is spent


class IdleClient:
    """A connection that sends nothing; `answered()`: whether the server has answered it (`answer`) and closed it."""

    def __init__(self, port: int):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.socket.setblocking(False)
        self.answer, self.ended = b"", False

    def answered(self) -> bool:
        while not self.ended:
            try:
                chunk = self.socket.recv(4096)
            except BlockingIOError:
                return False
            except ConnectionResetError:
                chunk = b""
            self.answer, self.ended = self.answer + chunk, not chunk
        return True


def test_idle_connections_are_bounded_refused_and_counted_and_the_stream_goes_on(clip):
    pipeline = Pipeline([SourceSpec(str(clip), "file")], load_model("demo", confidence=0.5),
                        options=SourceOptions(realtime=True, loop=True))
    with MetricsServer(pipeline.snapshot, 0, page=LivePage(pipeline), max_connections=8, timeout_s=600) as server:
        base = f"http://127.0.0.1:{server.port}"
        pipeline.start()
        try:
            assert wait_until(lambda: pipeline.snapshot().frames_inferred > 0, 60)
            threads = threading.active_count()
            idle = [IdleClient(server.port) for _ in range(200)]
            assert wait_until(lambda: sum(c.answered() for c in idle) == 192, 60)  # 8 served, 192 refused at once
            assert threading.active_count() <= threads + 8  # a thread per connection served, no more
            assert {c.answer.split(b"\r\n")[0] for c in idle if c.ended} == {b"HTTP/1.0 503 Service Unavailable"}
            inferred = pipeline.snapshot().frames_inferred
            assert wait_until(lambda: pipeline.snapshot().frames_inferred > inferred + 10, 60)  # the stream goes on
            for client in idle:
                client.socket.close()  # the 8 served see their end: their slots free up
            assert wait_until(lambda: threading.active_count() <= threads, 60)
            status, _, body = get(base + "/metrics")
            assert status == 200 and b"framesift_http_connections_refused_total 192.0" in body
            assert get(base + "/live/state")[0] == 200
        finally:
            pipeline.close()


def test_a_connection_that_says_nothing_is_closed_and_counted():
    with MetricsServer(StreamStats, 0, timeout_s=0.5) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as silent:
            assert silent.recv(1) == b""  # closed by the server after half a second of silence
        status, _, body = get(f"http://127.0.0.1:{server.port}/metrics")
        assert status == 200 and b"framesift_http_connections_timed_out_total 1.0" in body


def test_many_pages_asking_at_once_cost_one_picture_per_refresh(clip):
    pipeline = Pipeline([SourceSpec(str(clip), "file")], load_model("demo", confidence=0.5),
                        options=SourceOptions(realtime=True, loop=True))
    page = LivePage(pipeline, refresh_s=2.0)  # longer than this test takes to ask
    pipeline.start()
    try:
        assert wait_until(lambda: json.loads(page.state()) and page.pictures_made == 1, 20)
        states: list[bytes] = []
        askers = [threading.Thread(target=lambda: states.extend(page.state() for _ in range(20))) for _ in range(10)]
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join()
        assert page.pictures_made == 1 and len(set(states)) == 1  # 200 asks, one state, one picture
    finally:
        pipeline.close()


def test_a_taken_port_ends_the_run_with_one_sentence_and_exit_code_2(clip):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "framesift.cli", "run", str(clip), "--model", "stub",
                                 "--metrics-port", str(port), "--no-progress"],
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr


def test_the_readme_screenshot_script_runs_framesift_and_takes_it(tmp_path):
    module = load_script("live_screenshot")
    shot = module.take(tmp_path / "live.png", tmp_path / "work")
    image = cv2.imread(str(shot))
    assert image.shape[:2] == (module.SIZE[1], module.SIZE[0]) and image.std() > 20
    assert list(read_records(tmp_path / "work" / "dataset"))  # the run collected what the page showed
