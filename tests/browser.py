"""A real headless Chromium (Debian's `chromium` package) for the tests: a page's DOM after its scripts ran, and
screenshots.

Each call starts its own Chromium with a fresh profile, waits for it, and kills its process group by id if it
overruns. Only pages on this machine are opened (`file://`, or `http://127.0.0.1:PORT/...`), and Chromium is told
to resolve no name and reach no other address: its background services are off, and every connection but to
loopback goes to a proxy that does not exist.

Example:
    >>> dom = dump_dom("file:///tmp/report.html#strategy=busy")       # doctest: +SKIP
    >>> screenshot("file:///tmp/report.html", Path("report.png"))     # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

LOCAL_HOSTS = ("127.0.0.1", "localhost")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
    "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
    "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
    "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--disable-breakpad",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1", "--proxy-server=http://127.0.0.1:9",
)


def chromium() -> str:
    """The Chromium executable; a clear error when it is not installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("Chromium is not installed: `make system-deps` installs Debian's chromium package (as root)")


def dump_dom(url: str, *, budget_ms: int = 5000, size: tuple[int, int] = (1400, 1000), timeout: float = 120) -> str:
    """The page's DOM, serialised, once its scripts have run for `budget_ms` of virtual time."""
    return _run(url, [f"--virtual-time-budget={budget_ms}", f"--window-size={size[0]},{size[1]}", "--dump-dom"],
                timeout).stdout


def screenshot(url: str, out: Path, *, budget_ms: int = 5000, size: tuple[int, int] = (1400, 1000),
               timeout: float = 120) -> Path:
    """A PNG of the page's first `size` pixels (width, height), once its scripts have run; returns `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(url, [f"--virtual-time-budget={budget_ms}", f"--window-size={size[0]},{size[1]}",
               f"--screenshot={out.resolve()}"], timeout)
    if not out.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot of {url}")
    return out


def _run(url: str, flags: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    parts = urlsplit(url)
    if not (parts.scheme == "file" or (parts.scheme == "http" and parts.hostname in LOCAL_HOSTS)):
        raise ValueError(f"the test browser opens only pages on this machine, not {url}")
    with tempfile.TemporaryDirectory(prefix="framesift-chromium-") as profile:
        process = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={profile}", *flags, url],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)  # its own process group: its helpers end with it
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise RuntimeError(f"Chromium did not finish with {url} within {timeout} s") from None
        finally:
            _end_group(process.pid)
    if process.returncode != 0:
        raise RuntimeError(f"Chromium failed on {url} (exit {process.returncode}): {stderr.strip()[-500:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _end_group(pid: int) -> None:
    """Kill what is left of the process group Chromium led (a helper process that outlived it)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
