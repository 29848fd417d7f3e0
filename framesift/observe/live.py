"""The live page of a running pipeline, served beside `/metrics` (`--metrics-port`): per source its latest frame
with the model's predictions drawn, its fps, frame age, drops and reconnects; per collector its counters and the
datapoints it registered last.

What it costs the stream: one dict assignment per inferred frame, on the inference thread (a reference to the frame
and its prediction, through `Pipeline.add_callback`). Everything else is done on the HTTP server's threads when a
page asks, from frames already decoded: a source's picture is scaled from the decoded frame to at most
`max_width` pixels wide before it is converted (the full-resolution BGR copy is never made for it) and encoded as
JPEG, at most once every `refresh_s` per source and `max_pictures_per_s` over all sources, and the state is built
at most once every `refresh_s`; so ten open pages cost what one does, and a page left open on a hundred cameras
costs a bounded share of one core. The statistics are read once a second (a snapshot takes the metrics' lock).

The page (`/live`) polls `/live/state` (JSON) every `refresh_s` while it is visible, and fetches the picture of each
new frame by its id (`/live/frame?source=NAME&id=N`), so the boxes it draws, in the browser, with the report's
script (`framesift/assets/overlay.js`), are always those of the frame shown. A collector's datapoints come as
thumbnails (`/live/thumbnail?collector=STEP&id=ID`, made once each from the JPEG it registered). Source URLs are
redacted; the page loads nothing from elsewhere.

Example:
    >>> page = LivePage(pipeline)                                                    # doctest: +SKIP
    >>> with MetricsServer(pipeline.snapshot, 9108, page=page):                      # doctest: +SKIP
    ...     pipeline.run()                  # http://127.0.0.1:9108/live
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from framesift.annotations import PALETTE, Names, compact, overlay_script
from framesift.collectors.sampling.reasons import why
from framesift.observe.progress import limit_fill
from framesift.redaction import redact
from framesift.stats import CollectorStats, SourceStats, StreamStats

if TYPE_CHECKING:
    from framesift.collectors.collector import Collector
    from framesift.collectors.targets.datapoint import Datapoint
    from framesift.frames import Frame
    from framesift.pipeline.pipeline import Pipeline
    from framesift.predictions import Prediction

log = logging.getLogger(__name__)

REFRESH_S = 0.25  # how often the page asks, and the least time between two pictures of a source
MAX_PICTURES_PER_S = 20  # pictures made a second over all sources: more sources, each refreshed less often
STATS_REFRESH_S = 1.0  # how often the statistics are read
MAX_WIDTH = 640  # a source's picture, in pixels
THUMBNAIL_WIDTH = 240  # a collected datapoint's thumbnail, in pixels
JPEG_QUALITY = 80
PICTURES_KEPT = 4  # per source: a page that asked for the state a moment ago still finds the picture it names
THUMBNAILS_KEPT = 64


@dataclass(frozen=True)
class Picture:
    """A source's frame as the page shows it: the JPEG, and what the page draws over it."""

    frame_id: int
    jpeg: bytes
    made_at: float  # time.monotonic()
    entry: dict[str, Any]  # the state's `frame`, with its age when the picture was made


class LivePage:
    """The live page of `pipeline` (see the module's docstring); `wsgi` serves it (`MetricsServer(page=...)`).

    Made before or after `pipeline.start()`; it watches the frames inferred from then on. Holding the latest frame
    of each source keeps that frame's memory alive until the next one replaces it.
    """

    def __init__(self, pipeline: Pipeline, *, max_width: int = MAX_WIDTH, refresh_s: float = REFRESH_S,
                 max_pictures_per_s: float = MAX_PICTURES_PER_S):
        self._snapshot = pipeline.snapshot
        self._sources = [(spec.name, redact(spec.url)) for spec in pipeline.specs]
        self._collectors: Mapping[str, Collector] = pipeline.workflow.collectors
        self._max_width = max_width
        self._refresh_s = refresh_s
        self._picture_every_s = max(refresh_s, len(self._sources) / max_pictures_per_s)
        self._latest: dict[str, tuple[Frame, Prediction]] = {}  # written by the inference thread only
        self._pictures: dict[str, deque[Picture]] = {name: deque(maxlen=PICTURES_KEPT) for name, _ in self._sources}
        self._thumbnails: OrderedDict[str, tuple[bytes, dict[str, Any]]] = OrderedDict()
        self._classes = Names()
        self._lock = threading.Lock()  # one builder at a time: N pages asking at once make one state
        self._stats: StreamStats | None = None
        self._stats_at = -STATS_REFRESH_S
        self._collected_last: dict[str, list[Datapoint]] = {}
        self._names = {url: name for name, url in self._sources}  # a datapoint names its source by redacted URL
        self._state: bytes = b""
        self._state_at = -refresh_s
        self.pictures_made = 0  # for the benchmark
        pipeline.add_callback(self._keep)

    # -- the inference thread ------------------------------------------------------------------------------------
    def _keep(self, frame: Frame, prediction: Prediction) -> None:
        self._latest[frame.source] = (frame, prediction)  # the frame path's whole cost of the page

    # -- the HTTP server's threads ---------------------------------------------------------------------------------
    def state(self) -> bytes:
        """The page's state as JSON: remade at most once every `refresh_s`, whoever asks."""
        with self._lock:
            now = time.monotonic()
            if now - self._state_at >= self._refresh_s:
                if now - self._stats_at >= STATS_REFRESH_S:  # the counters and the datapoints they count
                    self._stats, self._stats_at = self._snapshot(), now
                    self._collected_last = {name: c.latest() for name, c in self._collectors.items()}
                assert self._stats is not None
                state = {"refresh_ms": round(self._refresh_s * 1000), "elapsed_s": round(self._stats.elapsed_s, 1),
                         "palette": PALETTE,
                         "sources": [self._source(name, url, self._stats.sources.get(name), now)
                                     for name, url in self._sources],
                         "collectors": [self._collector(name, self._stats.collectors.get(name))
                                        for name in self._collectors]}
                state["classes"] = self._classes.names  # after the annotations named them
                self._state, self._state_at = json.dumps(state, separators=(",", ":")).encode(), now
            return self._state

    def picture(self, source: str, frame_id: int) -> bytes | None:
        """The JPEG of frame `frame_id` of `source`, when it is one of the last pictures made of that source."""
        with self._lock:
            return next((p.jpeg for p in self._pictures.get(source, ()) if p.frame_id == frame_id), None)

    def thumbnail(self, collector: str, datapoint_id: str) -> bytes | None:
        """The thumbnail JPEG of a datapoint the collector registered lately (made once, on the first ask)."""
        with self._lock:
            found = self._collected(collector, datapoint_id)
            return None if found is None else found[0]

    def _source(self, name: str, url: str, stats: SourceStats | None, now: float) -> dict[str, Any]:
        stats = stats or SourceStats()
        picture = self._picture(name, now)
        frame = None if picture is None else \
            {**picture.entry, "age_s": round(picture.entry["age_s"] + now - picture.made_at, 3)}  # age now
        return {"name": name, "url": url, "connected": stats.connected, "fps": round(stats.fps, 1),
                "frame_age_s": {q: None if v is None else round(v, 3) for q, v in stats.frame_age_s.items()},
                "frames_decoded": stats.frames_decoded, "frames_inferred": stats.frames_inferred,
                "frames_dropped": stats.frames_dropped, "dropped_by_reason": stats.dropped_by_reason,
                "frames_skipped": stats.frames_skipped, "skipped_by_reason": stats.skipped_by_reason,
                "reconnects": stats.reconnects,
                "decode_errors": stats.decode_errors, "frame": frame}

    def _picture(self, source: str, now: float) -> Picture | None:
        """The source's newest picture, made anew from its latest frame when that is newer and the last one is
        older than the source's refresh period."""
        pictures = self._pictures[source]
        last = pictures[-1] if pictures else None
        latest = self._latest.get(source)
        if latest is None or (last is not None and (last.frame_id == latest[0].frame_id
                                                    or now - last.made_at < self._picture_every_s)):
            return last
        frame, prediction = latest
        try:
            picture = self._make_picture(frame, prediction, now)
        except Exception as error:  # a frame PyAV cannot scale, a prediction that is no JSON: the page goes on
            log.warning("the live page could not show frame %d of %s: %s", frame.frame_id, source, error)
            return last
        pictures.append(picture)
        self.pictures_made += 1
        return picture

    def _make_picture(self, frame: Frame, prediction: Prediction, now: float) -> Picture:
        import cv2

        width = min(self._max_width, frame.width) // 2 * 2
        height = max(2, round(frame.height * width / frame.width) // 2 * 2)
        ok, jpeg = cv2.imencode(".jpg", frame.preview(width, height), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ValueError("OpenCV could not encode it")
        url = "/live/frame?" + urlencode({"source": frame.source, "id": frame.frame_id})
        entry = {"id": frame.frame_id, "url": url,
                 "width": frame.width, "height": frame.height, "captured_at": _iso(frame.captured_at),
                 "age_s": now - frame.received, "model_id": getattr(prediction, "model_id", None),
                 "annotation": compact(prediction.to_json(), self._classes)}
        return Picture(frame.frame_id, jpeg.tobytes(), now, entry)

    def _collector(self, name: str, stats: CollectorStats | None) -> dict[str, Any]:
        stats = stats or CollectorStats()
        latest = []
        for datapoint in reversed(self._collected_last.get(name, [])):
            found = self._collected(name, datapoint.id, datapoint)
            if found is not None:
                latest.append(found[1])
        rejected = (stats.datapoints_rejected_by_limits + stats.datapoints_rejected_by_batch_cap
                    + stats.datapoints_rejected_store_unavailable + stats.datapoints_rejected_near_duplicate)
        counters = {"sampled": stats.datapoints_sampled, "registered": stats.datapoints_registered,
                    "rejected": rejected, "dropped": stats.datapoints_dropped, "failed": stats.datapoints_failed,
                    "queued": stats.queue_depth}
        if stats.target is not None:
            counters.update(outbox_pending=stats.target.pending, delivered=stats.target.delivered)
        limits = [{**fill, "text": limit_fill(fill)} for fill in stats.limits]
        return {"name": name, "counters": counters, "limit_store_available": stats.limit_store_available,
                "limits": limits,
                "strategies": {s: {"sampled": c.sampled, "registered": c.registered}
                               for s, c in stats.strategies.items()},
                "latest": latest}

    def _collected(self, collector: str, datapoint_id: str,
                   datapoint: Datapoint | None = None) -> tuple[bytes, dict[str, Any]] | None:
        """The thumbnail and the state's entry of a datapoint registered lately, made on first use."""
        key = f"{collector}/{datapoint_id}"
        found = self._thumbnails.get(key)
        if found is not None:
            self._thumbnails.move_to_end(key)
            return found
        owner = self._collectors.get(collector)
        if datapoint is None and owner is not None:
            datapoint = next((d for d in owner.latest() if d.id == datapoint_id), None)
        if datapoint is None:
            return None
        try:
            found = self._thumbnails[key] = self._make_thumbnail(collector, datapoint)
        except Exception as error:
            log.warning("the live page could not show datapoint %s: %s", datapoint.id, error)
            return None
        while len(self._thumbnails) > THUMBNAILS_KEPT:
            self._thumbnails.popitem(last=False)
        return found

    def _make_thumbnail(self, collector: str, datapoint: Datapoint) -> tuple[bytes, dict[str, Any]]:
        import cv2
        import numpy as np

        reduce = next((flag for factor, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                                                 (2, cv2.IMREAD_REDUCED_COLOR_2))
                       if datapoint.width // factor >= THUMBNAIL_WIDTH), cv2.IMREAD_COLOR)
        image = cv2.imdecode(np.frombuffer(datapoint.jpeg, np.uint8), reduce)  # decoded at 1/2, 1/4 or 1/8 size
        if image is None:
            raise ValueError("its JPEG does not decode")
        if image.shape[1] > THUMBNAIL_WIDTH:
            height = max(1, round(image.shape[0] * THUMBNAIL_WIDTH / image.shape[1]))
            image = cv2.resize(image, (THUMBNAIL_WIDTH, height), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ValueError("OpenCV could not encode it")
        url = "/live/thumbnail?" + urlencode({"collector": collector, "id": datapoint.id})
        entry = {"id": datapoint.id, "url": url,
                 "strategy": datapoint.strategy, "source": self._names.get(datapoint.source, datapoint.source),
                 "why": why({"strategy": datapoint.strategy, **(datapoint.extra or {})})[0],
                 "frame_id": datapoint.frame_id,
                 "captured_at": _iso(datapoint.captured_at), "batch": datapoint.batch,
                 "width": datapoint.width, "height": datapoint.height,
                 "annotation": compact(datapoint.prediction, self._classes) if datapoint.prediction else None}
        return jpeg.tobytes(), entry

    # -- HTTP ----------------------------------------------------------------------------------------------------
    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The WSGI application of `/live` and `/live/...` (GET only)."""
        path, query = environ.get("PATH_INFO", ""), parse_qs(environ.get("QUERY_STRING", ""))
        if environ.get("REQUEST_METHOD") != "GET":
            return _answer(start_response, "405 Method Not Allowed", b"GET only\n", "text/plain")
        asset = ASSETS.get(path)
        if asset is not None:
            return _answer(start_response, "200 OK", _asset(asset[0]), asset[1], cache="no-cache")
        try:
            if path == "/live/state":
                return _answer(start_response, "200 OK", self.state(), "application/json")
            if path == "/live/frame":
                body = self.picture(query.get("source", [""])[0], int(query.get("id", ["-1"])[0]))
                if body is not None:
                    return _answer(start_response, "200 OK", body, "image/jpeg", cache="private, max-age=60")
            elif path == "/live/thumbnail":
                body = self.thumbnail(query.get("collector", [""])[0], query.get("id", [""])[0])
                if body is not None:
                    return _answer(start_response, "200 OK", body, "image/jpeg", cache="private, max-age=3600")
        except ValueError:
            return _answer(start_response, "400 Bad Request", b"bad query\n", "text/plain")
        return _answer(start_response, "404 Not Found", b"not here (any longer)\n", "text/plain")


# path -> (asset, content type); the page and its script and style, read once
ASSETS = {"/live": ("live.html", "text/html; charset=utf-8"), "/live/": ("live.html", "text/html; charset=utf-8"),
          "/live/live.js": ("live.js", "text/javascript; charset=utf-8"),
          "/live/live.css": ("live.css", "text/css; charset=utf-8"),
          "/live/overlay.js": ("overlay.js", "text/javascript; charset=utf-8")}
# Everything the page uses comes from here: scripts, style, images and the state.
SECURITY_HEADERS = [("Content-Security-Policy", "default-src 'self'; img-src 'self'; frame-ancestors 'none'"),
                    ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")]
_assets: dict[str, bytes] = {}


def _asset(name: str) -> bytes:
    body = _assets.get(name)
    if body is None:
        text = overlay_script() if name == "overlay.js" else \
            (resources.files("framesift.observe") / "assets" / name).read_text(encoding="utf-8")
        body = _assets[name] = text.encode()
    return body


def _answer(start_response: Callable[..., Any], status: str, body: bytes, content_type: str,
            cache: str = "no-store") -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                            ("Cache-Control", cache), *SECURITY_HEADERS])
    return [body]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
