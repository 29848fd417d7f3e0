"""Real servers for tests and benchmarks, started on 127.0.0.1 and stopped by their pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def kill(process: subprocess.Popen | None) -> None:
    """SIGKILL a server started by the tests (by its pid) and reap it; returns None for the caller's handle."""
    if process is not None and process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    return None


@dataclass
class RedisServer:
    """A real redis-server; `stop()` and `start()` simulate an outage on the same port."""

    port: int
    workdir: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make test installs it: apt-get install redis-server)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        self.process = kill(self.process)


SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has the GStreamer bindings (gi)


@dataclass
class RtspServer:
    """GStreamer's RTSP server with a live test pattern; `stop()` kills it, `start()` brings it back on the port."""

    port: int
    size: tuple[int, int, int] = (320, 240, 30)  # width, height, fps
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/live"

    def start(self) -> None:
        script = str(Path(__file__).with_name("rtsp_server.py"))
        self.process = subprocess.Popen([SYSTEM_PYTHON, script, str(self.port), *map(str, self.size)],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.process.stdout.readline()
        if line.strip() != b"ready":
            self.stop()
            raise RuntimeError("the GStreamer RTSP server did not start (make test installs it: "
                               "apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-bad)")
        wait_for_port(self.port)

    def stop(self) -> None:
        self.process = kill(self.process)
