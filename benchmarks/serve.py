"""`framesift serve` under load: requests per second and p50/p99 latency with 1, 8 and 32 concurrent clients, each
posting a 640×480 JPEG as `inference_sdk` does (`POST /infer/object_detection`, base64 in JSON), with collection off
and on (a `random` strategy taking 10 % of requests into a local dataset), for the stub (`<dataset>/0`) and the
bundled demo detector (320×320, on the CPU).

The two servers of a model (collection off, on) run side by side; their runs alternate, `ROUNDS` times, and the
figures are medians (min–max) of those rounds, so the on/off ratio is measured under the same load. The clients are
threads of this process (one keep-alive connection each), sharing the machine with the servers.

Roboflow's own server is not measured beside it: its null model needs the Roboflow API even then (it asks for the
workspace and the project's type before loading a stub, `inference/core/registries/roboflow.py`), so it cannot
serve offline here.

Run: `python benchmarks/serve.py` (about 2 minutes). Prints a Markdown section.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framesift.models import DEMO_MODEL  # noqa: E402
from tests.model_builders import scene  # noqa: E402
from tests.servers import free_port, kill, wait_for_port  # noqa: E402

CLIENTS = (1, 8, 32)
ROUNDS = 3
SECONDS = 2.0  # each measurement
COLLECT = {"enabled": True, "persist_predictions": True,
           "sampling_strategies": [{"name": "some", "type": "random", "traffic_percentage": 0.1}],
           "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}


def start(workdir: Path, collect: bool) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = [sys.executable, "-m", "framesift.cli", "serve", "--port", str(port), "--models", "models",
            "--max-pending", "256", "--device", "cpu"]
    if collect:
        args += ["--al-config", "al.json", "--target", "datasets"]
    process = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 60)
    return process, f"http://127.0.0.1:{port}"


def load(url: str, model_id: str, clients: int, body: bytes) -> tuple[float, float, float, int]:
    """Requests per second, p50 and p99 latency (ms) over `SECONDS`, and the failed requests."""
    latencies: list[float] = []
    failed = [0]
    stop = time.monotonic() + SECONDS

    def client() -> None:
        with requests.Session() as session:
            while time.monotonic() < stop:
                started = time.perf_counter()
                response = session.post(f"{url}/infer/object_detection", data=body,
                                        headers={"Content-Type": "application/json"}, timeout=60)
                took = time.perf_counter() - started
                if response.status_code == 200:
                    latencies.append(took)
                else:
                    failed[0] += 1

    began = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")
    return len(latencies) / elapsed, statistics.median(ordered) * 1000, p99 * 1000, failed[0]


def spread(values: list[float], digits: int = 0) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main() -> None:
    load_before = os.getloadavg()[0]
    frame, _ = scene(640, 480)
    image = base64.b64encode(cv2.imencode(".jpg", frame)[1].tobytes()).decode()
    lines = ["## Serve: the inference HTTP API under load (640×480 JPEG per request, CPU; median (min–max) of "
             f"{ROUNDS} interleaved rounds of {SECONDS:.0f} s)", "",
             "| model | clients | req/s off | req/s on | on/off | p50 ms off | p50 ms on | p99 ms off | p99 ms on |",
             "|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        (workdir / "models" / "shapes").mkdir(parents=True)
        shutil.copy(DEMO_MODEL, workdir / "models" / "shapes" / "1.onnx")
        (workdir / "al.json").write_text(json.dumps(COLLECT))
        for model_id in ("shapes/0", "shapes/1"):
            body = json.dumps({"model_id": model_id, "image": {"type": "base64", "value": image},
                               "api_key": None}).encode()
            servers = {collect: start(workdir, collect) for collect in (False, True)}
            try:
                for _, url in servers.values():
                    load(url, model_id, 1, body)  # the model loaded, the connections warm
                results: dict[tuple[bool, int], list[tuple[float, float, float, int]]] = {}
                for _ in range(ROUNDS):
                    for clients in CLIENTS:
                        for collect in (False, True):
                            results.setdefault((collect, clients), []).append(
                                load(servers[collect][1], model_id, clients, body))
                for clients in CLIENTS:
                    off, on = results[(False, clients)], results[(True, clients)]
                    ratios = [b[0] / a[0] for a, b in zip(off, on, strict=True)]
                    failed = sum(r[3] for r in off + on)
                    name = "stub (`shapes/0`)" if model_id.endswith("/0") else "demo detector (`shapes/1`)"
                    lines.append(f"| {name} | {clients} | {spread([r[0] for r in off])} | "
                                 f"{spread([r[0] for r in on])} | {spread(ratios, 2)} | "
                                 f"{spread([r[1] for r in off], 1)} | {spread([r[1] for r in on], 1)} | "
                                 f"{spread([r[2] for r in off], 1)} | {spread([r[2] for r in on], 1)} |"
                                 + (f" ({failed} failed)" if failed else ""))
                collected = sum(1 for _ in (workdir / "datasets").rglob("*.jpg"))
                lines.append(f"| | | | {collected} images collected so far | | | | | |")
            finally:
                for process, _ in servers.values():
                    kill(process)
    lines += ["", f"Load average (1 min) at the start: {load_before:.1f}, at the end: {os.getloadavg()[0]:.1f}, on "
              f"{os.cpu_count()} cores; the clients ran on the same machine."]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
