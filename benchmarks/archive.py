"""One archive replayed by 1, 2 and 4 worker processes sharing one Redis (issue 28): scaling, and what the
coordination costs per recording.

An archive of `--recordings` 640×360 recordings of 40 s at 25 fps (a keyframe a second, cached in
benchmarks/.work) is replayed by N `framesift run --redis` processes on this machine into one target, with the stub
model and one random strategy at 1 % (frames drawn before decoding, as a bootstrap runs); the figure is the
archive's frames over the wall time from the first process's start to the last one's end, median (min–max) of
`--repeats`. The coordination's own cost is measured apart: a claim, the entry saying the recording began and the
one saying it finished (three Redis scripts), over 500 recordings, in milliseconds per recording.

Run: `python benchmarks/archive.py [--repeats 3] [--recordings 8]`. Prints a Markdown section.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.suite import WORK  # noqa: E402
from tests.servers import RedisServer, free_port  # noqa: E402

FPS, SECONDS = 25, 40


def archive(count: int) -> Path:
    """`count` recordings of a bar moving over noise, an hour apart, cached."""
    import av
    import numpy as np

    folder = WORK / f"archive-{count}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        path = folder / f"cam{i:02d}.mp4"
        if path.exists():
            continue
        with av.open(str(path) + ".part", "w", format="mp4") as container:
            container.metadata["creation_time"] = f"2026-11-20T{i:02d}:00:00Z"
            stream = container.add_stream("libx264", rate=FPS, options={"g": str(FPS), "bf": "0"})
            stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
            for n in range(FPS * SECONDS):
                image = rng.integers(0, 40, (360, 640, 3), dtype=np.uint8)
                image[:, (n * 7) % 600:(n * 7) % 600 + 40] = 200
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
            container.mux(stream.encode(None))
        os.replace(str(path) + ".part", path)
    return folder


def replay(folder: Path, workers: int, redis_url: str, work: Path, config: Path) -> float:
    """Seconds for `workers` processes to replay the archive together."""
    target = work / f"ds-{workers}-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "framesift.cli", "run", str(folder), "--model", "stub", "--al-config",
               str(config), "--target", str(target), "--redis", redis_url, "--seed", "1", "--no-progress"]
    started = time.perf_counter()
    processes = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for _ in range(workers)]
    codes = [process.wait() for process in processes]
    elapsed = time.perf_counter() - started
    if any(codes):
        raise RuntimeError(f"a worker failed: exit codes {codes}")
    return elapsed


def coordination(redis_url: str, recordings: int = 500) -> float:
    """Milliseconds a recording's claim, its first entry and its last cost (one box, a local Redis)."""
    from framesift.stream.archives import Recording
    from framesift.stream.fleet import FleetLog

    start = datetime(2026, 11, 20, tzinfo=timezone.utc)
    fake = [Recording(f"/archive/cam{i}.mp4", start, 1000 + i, 0, frames=250) for i in range(recordings)]
    with FleetLog(redis_url, f"bench-{time.monotonic_ns()}", lease_s=30) as fleet:
        fleet.known(fake, "/archive")
        began = time.perf_counter()
        for recording in fake:
            fleet.claim(recording)
            fleet.record(recording, 0, False)
            fleet.record(recording, 250, True)
        return (time.perf_counter() - began) * 1000 / recordings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recordings", type=int, default=8)
    args = parser.parse_args()
    folder = archive(args.recordings)
    frames = args.recordings * FPS * SECONDS
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        config = work / "config.json"
        config.write_text('{"enabled": true, "persist_predictions": false, "sampling_strategies": [{"name": "some", '
                          '"type": "random", "traffic_percentage": 0.01}], "batching_strategy": '
                          '{"batches_name_prefix": "b", "recreation_interval": "never"}}')
        server = RedisServer(free_port(), work)
        server.start()
        try:
            times: dict[int, list[float]] = {1: [], 2: [], 4: []}
            for _ in range(args.repeats):  # interleaved: the machine's load falls on each alike
                for workers in times:
                    times[workers].append(replay(folder, workers, server.url, work, config))
            cost = coordination(server.url)
        finally:
            server.stop()
    print(f"### One archive, several worker processes (issue 28)\n\n{args.recordings} recordings, {frames} frames "
          f"of 640×360 at 25 fps; stub model, random 1 %; {os.cpu_count()} cores; median (min–max) of "
          f"{args.repeats}.\n")
    print("| workers | wall time (s) | frames a second | speed-up |\n|---|---|---|---|")
    one = statistics.median(times[1])
    for workers, seconds in times.items():
        median = statistics.median(seconds)
        print(f"| {workers} | {median:.1f} ({min(seconds):.1f}–{max(seconds):.1f}) | {frames / median:.0f} | "
              f"{one / median:.2f}× |")
    print(f"\nCoordination per recording (claim, first and last log entry; a local Redis): {cost:.2f} ms.")


if __name__ == "__main__":
    main()
