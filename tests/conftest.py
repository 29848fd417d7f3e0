"""Shared fixtures: real servers started on 127.0.0.1 and stopped by their pid."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import ROBOFLOW_KEY
from tests.roboflow_server import FakeRoboflow
from tests.servers import LabelStudioServer, RedisServer, RtspServer, free_port

collect_ignore = ["rtsp_server.py"]  # run by the system Python (GStreamer's bindings), never imported here


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def roboflow() -> Iterator[FakeRoboflow]:
    """The stand-in for Roboflow's API (its documented endpoints), with the key `tests.test_roboflow.KEY`."""
    server = FakeRoboflow(free_port(), api_key=ROBOFLOW_KEY)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    server = RtspServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def rtsp_server_factory() -> Iterator[Callable[..., RtspServer]]:
    """`rtsp_server_factory(gop=150, size=(w, h, fps))`: an RTSP server of one's own, started on first request."""
    servers: list[RtspServer] = []

    def start(**kwargs: object) -> RtspServer:
        server = RtspServer(free_port(), **kwargs)  # type: ignore[arg-type]
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory) -> Iterator[LabelStudioServer]:
    server = LabelStudioServer(free_port(), tmp_path_factory.mktemp("label-studio"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def clip_path(tmp_path_factory) -> Path:
    """A short H.264 clip (60 frames, 320×240) for tests that need any video."""
    from framesift.demo import write_demo_video

    return write_demo_video(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=60, width=320, height=240)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """`small_disk("256k")`: a real file system of that size (a tmpfs, mounted for the test) that fills up."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a small file system ({result.stderr.strip()}); the tests run as root in CI")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "--lazy", str(point)], check=False)
