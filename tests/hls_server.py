"""HLS for the tests: playlists and segments written by FFmpeg's own HLS muxer (through PyAV), served over HTTP on
127.0.0.1 by the standard library.

- `LiveHls`: a live stream, encoded in real time (a frame every 1/fps seconds) into segments of `segment_s`
  seconds, the playlist rewritten as each one completes and never ended — as a camera's HLS output behaves;
- `write_vod(folder)`: a finished recording, a playlist that ends (`#EXT-X-ENDLIST`).
"""

from __future__ import annotations

import functools
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av

from framesift.demo import demo_frame


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class HlsServer:
    """Serves `folder` on 127.0.0.1 until `stop()`."""

    def __init__(self, folder: Path):
        handler = functools.partial(_Quiet, directory=str(folder))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _open_muxer(playlist: Path, fps: int, segment_s: float, live: bool) -> tuple[Any, Any]:
    """FFmpeg's HLS muxer and an H.264 stream with a keyframe at the start of every segment."""
    options = {"hls_time": str(segment_s), "hls_list_size": "6" if live else "0"}
    if live:
        options["hls_flags"] = "delete_segments+omit_endlist"
    container = av.open(str(playlist), "w", format="hls", options=options)
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(int(fps * segment_s)),
                      "keyint_min": str(int(fps * segment_s)), "sc_threshold": "0", "bf": "0"}
    return container, stream


def write_vod(folder: Path, frames: int = 60, fps: int = 15, segment_s: float = 1.0) -> Path:
    """A finished HLS recording of `frames` frames; returns its playlist."""
    folder.mkdir(parents=True, exist_ok=True)
    playlist = folder / "vod.m3u8"
    container, stream = _open_muxer(playlist, fps, segment_s, live=False)
    with container:
        for i in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(demo_frame(i, 320, 240), format="bgr24")))
        container.mux(stream.encode(None))
    return playlist


class LiveHls:
    """A live HLS stream written into `folder` in real time until `stop()`; `live.m3u8` is its playlist."""

    def __init__(self, folder: Path, fps: int = 15, segment_s: float = 1.0):
        folder.mkdir(parents=True, exist_ok=True)
        self.playlist = folder / "live.m3u8"
        self.fps, self.segment_s = fps, segment_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)

    def start(self, warm_up_segments: int = 3) -> None:
        """Start writing; return once the playlist lists `warm_up_segments` segments (as a camera that has been
        on for a while)."""
        self._thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.playlist.exists() and self.playlist.read_text().count("#EXTINF") >= warm_up_segments:
                return
            time.sleep(0.05)
        raise TimeoutError("the live HLS writer made no segments")

    def _write(self) -> None:
        container, stream = _open_muxer(self.playlist, self.fps, self.segment_s, live=True)
        started, i = time.monotonic(), 0
        with container:
            while not self._stop.is_set():
                frame = av.VideoFrame.from_ndarray(demo_frame(i, 320, 240), format="bgr24")
                container.mux(stream.encode(frame))
                i += 1
                self._stop.wait(max(0.0, started + i / self.fps - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
