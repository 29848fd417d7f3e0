"""Make the README's screenshot of the live page: `python scripts/live_screenshot.py [docs/live.png]` writes two
clips of the demo scene, runs `framesift run` on them as two live sources (`--realtime --loop`) with the demo model,
`configs/demo.yaml` and `--metrics-port`, waits until the page has frames and collected datapoints to show, and has
the tests' headless Chromium (tests/browser.py) take a screenshot of `http://127.0.0.1:PORT/live`."""

import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from framesift.demo import demo_frame  # noqa: E402
from tests.browser import screenshot  # noqa: E402
from tests.servers import free_port  # noqa: E402

SIZE = (1400, 1000)  # width, height: both sources and the collector's thumbnails
SOURCES = (("dock", 0, (640, 480)), ("gate", 90, (512, 384)))  # name, first frame of the scene, size
FPS = 15  # the clips' rate: what a 2-core machine infers from two sources at once without dropping most frames
SHOWN = 6  # datapoints collected before the screenshot
RUNNING_S = 8  # seconds of running before it: fps is measured over the last 5 s


def write_clip(path: Path, start: int, size: tuple[int, int], frames: int = 150) -> Path:
    """The demo scene from its frame `start`, as an H.264 MP4 at FPS."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        for i in range(start, start + frames):
            frame = av.VideoFrame.from_ndarray(demo_frame(i, *size), format="bgr24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def ready(port: int) -> bool:
    """Whether framesift has run RUNNING_S and the page has a frame of every source and SHOWN collected
    datapoints to show."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/live/state", timeout=2) as answer:
            state = json.loads(answer.read())
    except OSError:
        return False
    return state["elapsed_s"] >= RUNNING_S and all(s["frame"] for s in state["sources"]) \
        and len(state["collectors"][0]["latest"]) >= SHOWN


def take(out: Path, work: Path) -> Path:
    """Run framesift on the two clips in `work` and screenshot its live page into `out`."""
    work.mkdir(parents=True, exist_ok=True)
    clips = [write_clip(work / f"{name}.mp4", start, size).name for name, start, size in SOURCES]  # in cwd
    port = free_port()
    names = [arg for name, _, _ in SOURCES for arg in ("--source-name", name)]
    run = subprocess.Popen([sys.executable, "-m", "framesift.cli", "run", *clips, *names, "--model", "demo",
                            "--confidence", "0.5", "--al-config", str(ROOT / "configs" / "demo.yaml"),
                            "--target", "dataset", "--realtime", "--loop", "--metrics-port", str(port),
                            "--no-progress", "--duration", "120"],
                           cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not ready(port):
            if run.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"framesift's live page never had frames and datapoints to show: {run.stderr}")
            time.sleep(0.5)
        return screenshot(f"http://127.0.0.1:{port}/live", out, size=SIZE, budget_ms=3000)
    finally:
        run.send_signal(signal.SIGINT)
        try:
            run.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            run.kill()
            run.communicate()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        print(take(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "live.png"), Path(folder)))
