"""A command line that meets a newcomer's habits: --version, a description in --help, --conf, "did you mean" for a
misspelt key, a syntax error in one line, the bundled configurations by name, a camera that never connected said
so (and exit code 3 for a --duration run), and log lines that never break the status line or the progress bar."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import textwrap
import time
from importlib import metadata
from pathlib import Path

import pytest

from framesift import __version__
from framesift.cli import build_parser
from framesift.collectors.config.schema import load_config
from framesift.dataset.records import read_records
from tests.helpers import CONFIGS
from tests.servers import free_port


def framesift(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framesift.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def test_version_names_framesift_onnxruntime_and_python():
    result = framesift("--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"framesift {__version__} (onnxruntime {metadata.version('onnxruntime')}, "
                                    f"Python {sys.version.split()[0]}, ")


def test_help_describes_framesift_for_its_users_with_examples():
    out = framesift("--help").stdout
    assert "Edge active learning on live video" in out and "argument parsing" not in out
    assert "framesift config example realistic > my.yaml" in out and "Exit codes:" in out


def test_conf_is_the_confidence_as_in_ultralytics():
    args = build_parser().parse_args(["run", "clip.mp4", "--model", "stub", "--conf", "0.4"])
    assert args.confidence == 0.4
    assert build_parser().parse_args(["run", "clip.mp4", "--model", "stub", "--config-refresh", "5"]).confidence == 0.25


def test_a_misspelt_key_says_which_it_resembles(tmp_path):
    config = tmp_path / "mine.yaml"
    config.write_text((CONFIGS / "random.json").read_text().replace('"traffic_percentage"', '"traffic_pecentage"'))
    result = framesift("validate", str(config))
    assert result.returncode == 2
    assert ("sampling_strategies[0].traffic_pecentage: unknown field (did you mean 'traffic_percentage'?)"
            in result.stderr)
    config.write_text((CONFIGS / "random.json").read_text().replace('"name"', '"nmae"', 1))
    assert "unknown field (did you mean 'name'?)" in framesift("validate", str(config)).stderr
    config.write_text('{"enabled": false, "zzz": 1}')
    assert "zzz: unknown field\n" in framesift("validate", str(config)).stderr  # nothing close: no guess


@pytest.mark.parametrize(("name", "text", "where"), [
    ("bad.yaml", "enabled: true\nbatching_strategy:\n  batches_name_prefix: b\n   recreation_interval: daily\n",
     "line 4, column 23: mapping values are not allowed here"),
    ("bad.json", '{"enabled": true,\n "x": [1,]}', "line 2, column 10: not valid JSON: Expecting value"),
])
def test_a_syntax_error_is_one_line_naming_the_file_line_and_column(tmp_path, name, text, where):
    (tmp_path / name).write_text(text)
    result = framesift("validate", name, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"framesift: {name} {where}\n"


def test_the_bundled_configurations_by_name_anywhere(clip_path, tmp_path):
    listed = framesift("config", "example", cwd=tmp_path).stdout.split()
    assert {"realistic", "demo", "random"} <= set(listed)
    written = framesift("config", "example", "realistic", cwd=tmp_path)
    assert written.returncode == 0 and written.stdout == (CONFIGS / "realistic.yaml").read_text()
    (tmp_path / "my.yaml").write_text(written.stdout)
    assert load_config(tmp_path / "my.yaml").enabled
    result = framesift("run", str(clip_path), "--model", "demo", "--al-config", "random", "--target", "ds",
                       "--no-progress", "--seed", "1", cwd=tmp_path)  # no configs/ here; 10 % of the clip's 60 frames
    assert result.returncode == 0, result.stderr
    assert len(list(read_records(tmp_path / "ds"))) > 0
    unknown = framesift("run", str(clip_path), "--model", "demo", "--al-config", "realistc", cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("framesift: no file 'realistc' here, nor a bundled configuration of that name ")
    assert "realistic" in unknown.stderr and "Traceback" not in unknown.stderr
    assert framesift("config", "example", "nope", cwd=tmp_path).returncode == 2


def test_a_camera_that_never_connected_says_so_and_a_duration_run_exits_3():
    url = f"rtsp://127.0.0.1:{free_port()}/nothing"  # nobody listens
    result = framesift("run", url, "--model", "stub", "--duration", "8", "--no-progress")
    assert result.returncode == 3, result.stderr
    assert f"source source0 ({url}): never connected (3 attempts since start: check the URL)" in result.stderr
    assert result.stderr.splitlines()[-1] == f"framesift: source0 ({url}) never connected in 8 s: check the URL"


def on_a_terminal(code: str, timeout: float = 60) -> str:
    """Run Python `code` with its stderr on a pseudo-terminal; what the terminal received."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))  # 200 columns, as a terminal has
    process = subprocess.Popen([sys.executable, "-c", code], stderr=follower, stdout=subprocess.DEVNULL)
    os.close(follower)
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the process ended: the terminal is closed
                break
            if not chunk:
                break
            received += chunk
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(leader)
    assert process.returncode == 0, received.decode(errors="replace")
    return received.decode(errors="replace")


@pytest.mark.parametrize("live", [True, False])
def test_log_lines_go_above_the_status_line_and_the_progress_bar_never_into_them(live):
    code = textwrap.dedent(f"""
        import logging, time
        from framesift.redaction import RedactingFilter
        from framesift.stats import SourceStats, StreamStats
        from framesift.observe.progress import Progress

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
        logging.getLogger().handlers[0].addFilter(RedactingFilter())
        snap = lambda: StreamStats.of({{"cam1": SourceStats(fps=14.8, connected=True, frames_inferred=7)}})
        with Progress(snap, None if {live} else 100, {live}, interval=0.05):
            for i in range(5):
                time.sleep(0.2)
                logging.getLogger("framesift.x").warning("event %d rtsp://admin:hunter2@cam/1", i)
    """)
    screen = on_a_terminal(code)
    assert "hunter2" not in screen  # the handlers' filters are kept: no secret on the terminal
    for i in range(5):
        start = screen.index(f"WARNING event {i}")
        assert screen[start - 1] in "\r\n"  # the log line starts a line of its own ...
        assert screen[start:].split("\n", 1)[0].rstrip("\r") == f"WARNING event {i} rtsp://admin:***@cam/1"
    drawn = "cam1 14.8 fps | dropped 0" if live else "7/100"
    assert drawn in screen.rsplit("WARNING event 4", 1)[1]  # ... and the status is drawn again below it
    assert not re.search(r"(fps \| dropped 0|frame/s\]|/100)[^\r\n]*WARNING", screen)
