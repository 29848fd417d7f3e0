"""Real servers for tests and benchmarks, started on 127.0.0.1 and stopped by their pid."""

from __future__ import annotations

import fcntl
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


def wait_for_port(port: int, timeout: float = 120.0) -> None:
    """Until something listens on the port: at once on a quiet machine; the bound only stops a server that never
    will."""
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
    password: str | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make test installs it: apt-get install redis-server)")
        auth = ["--requirepass", self.password] if self.password else []
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), *auth],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        self.process = kill(self.process)


SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has the GStreamer bindings (gi)


@dataclass
class RtspServer:
    """GStreamer's RTSP server with a live test pattern, or a live loop of an H.264 MP4 (`video`, served to each
    client from its start at `size`'s fps, encoded once: many clients cost it almost no CPU); `stop()` kills it,
    `start()` brings it back on the port."""

    port: int
    size: tuple[int, int, int] = (320, 240, 30)  # width, height, fps
    gop: int | None = None  # frames between keyframes (default: one second's worth)
    pattern: str = "ball"  # what videotestsrc draws (`red`: every pixel pure red)
    video: Path | None = None  # an H.264 MP4 to loop instead of the pattern
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/live"

    def start(self) -> None:
        script = str(Path(__file__).with_name("rtsp_server.py"))
        gop = str(self.gop or self.size[2])
        self.process = subprocess.Popen([SYSTEM_PYTHON, script, str(self.port), *map(str, self.size), gop,
                                         str(self.video or self.pattern)],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.process.stdout.readline()
        if line.strip() != b"ready":
            self.stop()
            raise RuntimeError("the GStreamer RTSP server did not start (make test installs it: "
                               "apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-bad)")
        wait_for_port(self.port)

    def stop(self) -> None:
        self.process = kill(self.process)


LABEL_STUDIO_TOKEN = "framesift-legacy-token-0123456789"  # the test user's legacy API token
REPO = Path(__file__).resolve().parents[1]


@dataclass
class LabelStudioServer:
    """A real Label Studio (`scripts/label-studio.sh` installs it in its own virtual environment) on a copy of a
    prepared data folder: the test user exists with the legacy token `LABEL_STUDIO_TOKEN` enabled, and migrations
    ran once, so a start takes seconds instead of half a minute."""

    port: int
    workdir: Path
    process: subprocess.Popen | None = None
    _personal_token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        venv = Path(subprocess.run([str(REPO / "scripts" / "label-studio.sh")], check=True, capture_output=True,
                                   text=True).stdout.strip())
        data = self.workdir / "data"
        shutil.copytree(_prepared_data(venv), data)
        self.process = _start_label_studio(venv, data, self.port, self.workdir / "label-studio.log")

    def personal_access_token(self) -> str:
        """The test user's personal access token, minted on first use (Label Studio keeps one per user)."""
        import requests

        if self._personal_token is None:
            response = requests.post(f"{self.url}/api/token/", timeout=30,
                                     headers={"Authorization": f"Token {LABEL_STUDIO_TOKEN}"})
            response.raise_for_status()
            self._personal_token = response.json()["token"]
        return self._personal_token

    def stop(self) -> None:
        self.process = kill(self.process)


def _prepared_data(venv: Path) -> Path:
    """The data folder every test server starts from, made once next to the environment (by one test session at
    a time: another one waits for it)."""
    prepared = venv / "framesift-test-data"
    with (venv / "framesift-test-data.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not prepared.is_dir():
            staging = venv / "framesift-test-data.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            kill(_start_label_studio(venv, staging, free_port(), venv / "framesift-prepare.log", first=True))
            staging.rename(prepared)
    return prepared


def _start_label_studio(venv: Path, data: Path, port: int, log: Path, first: bool = False) -> subprocess.Popen:
    import requests

    env = {**os.environ, "LATEST_VERSION_CHECK": "false", "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
           "LABEL_STUDIO_USERNAME": "test@framesift.local", "LABEL_STUDIO_PASSWORD": "framesift-test",
           "LABEL_STUDIO_USER_TOKEN": LABEL_STUDIO_TOKEN}
    with log.open("wb") as out:
        process = subprocess.Popen([str(venv / "bin" / "label-studio"), "start", "--no-browser", "--internal-host",
                                    "127.0.0.1", "--port", str(port), "--data-dir", str(data)],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)
    # Until it answers or dies; the bound only stops a server that hangs. The first start runs every migration:
    # half a minute on a quiet machine, 7 minutes on a busy one (2 cores under `stress-ng --cpu 4`).
    deadline = time.monotonic() + (900 if first else 300)
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=10).ok:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.3)
    kill(process)
    raise RuntimeError(f"Label Studio did not start; the end of {log}:\n{log.read_text()[-3000:]}")
