"""Remote targets: what the durable outbox costs the collector thread, and how fast a backlog drains.

- `Outbox.add` of a 1080p datapoint (image and metadata each written, fsynced and renamed) against
  `LocalDataset.register` of the same datapoint (the same discipline, plus the record line), ms per datapoint;
- the drain rate of a backlog, as after an outage: through a target that does nothing (the outbox's own
  ceiling), and to a real Label Studio (upload, file lookup, task creation) started with `label-studio start`,
  with one connection per request (what framesift does over plain HTTP) against one reused connection.

Run: `python benchmarks/delivery.py` (starts its own servers on 127.0.0.1). Prints a Markdown section.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framesift.collectors import LocalDataset  # noqa: E402
from framesift.collectors.targets.datapoint import Datapoint  # noqa: E402
from framesift.collectors.targets.labelstudio import LabelStudioTarget  # noqa: E402
from framesift.collectors.targets.outbox import Outbox  # noqa: E402
from framesift.collectors.targets.remote import RemoteTarget  # noqa: E402
from framesift.demo import demo_frame  # noqa: E402
from framesift.predictions import DetectionPrediction  # noqa: E402
from tests.servers import LABEL_STUDIO_TOKEN, LabelStudioServer, free_port  # noqa: E402

REPEATS = 3


def datapoints(n: int) -> list[Datapoint]:
    import cv2

    jpeg = cv2.imencode(".jpg", demo_frame(0, 1920, 1080), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    prediction = DetectionPrediction.from_lists("object-detection", "bench/1", (1920, 1080),
                                                xyxy=[[100, 100, 300, 400]] * 10, confidence=[0.5] * 10,
                                                class_name=["red square"] * 10).to_json()
    return [Datapoint(id=f"dp{i:05d}", batch="bench", jpeg=jpeg, width=1920, height=1080, original_width=1920,
                      original_height=1080, prediction=prediction, tags=["bench"], strategy="all", source="bench",
                      frame_id=i, captured_at=datetime.now(timezone.utc), model_id="bench/1",
                      task_type="object-detection") for i in range(n)]


def ms_per_datapoint(write, items: list[Datapoint]) -> float:
    started = time.perf_counter()
    for item in items:
        write(item)
    return (time.perf_counter() - started) / len(items) * 1e3


class NullTarget(RemoteTarget):
    """Confirms every entry at once: what is left is the outbox's own work."""

    def __init__(self, outbox: Outbox):
        super().__init__("null", outbox)

    def deliver(self, entry, outbox) -> None:
        entry.jpeg()  # a real target reads the image


def label_studio(server: LabelStudioServer, title: str, reuse_connection: bool):
    def open_target(outbox: Outbox) -> LabelStudioTarget:
        target = LabelStudioTarget(title, server.url, LABEL_STUDIO_TOKEN, outbox)
        if reuse_connection:  # the baseline: the session's keep-alive connection, as over HTTPS
            target._client._http = target.http
        target.start()
        return target
    return open_target


def drain_per_second(open_target, items: list[Datapoint], folder: Path) -> float:
    """Fill an outbox while its target is not running, then time the sender emptying it."""
    outbox = Outbox(folder)
    for item in items:
        outbox.add(item)
    started = time.perf_counter()
    target = open_target(outbox)
    target.start()  # idempotent: Label Studio's was started already
    while target.stats().pending:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    target.close()
    if target.stats().dead:
        raise RuntimeError(f"the benchmark's target refused datapoints: {target.stats().last_error}")
    return len(items) / elapsed


def summary(samples: list[float]) -> str:
    return f"{statistics.median(samples):.1f} ({min(samples):.1f}–{max(samples):.1f})"


def main() -> str:
    items = datapoints(100)
    size_kb = len(items[0].jpeg) / 1024
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        add, local = [], []
        for r in range(REPEATS):  # interleaved, like every comparison here
            add.append(ms_per_datapoint(Outbox(work / f"outbox{r}").add, items))
            dataset = LocalDataset(work / f"local{r}")
            local.append(ms_per_datapoint(dataset.register, items))
            dataset.close()

        null = [drain_per_second(NullTarget, items, work / f"null{r}") for r in range(REPEATS)]
        server = LabelStudioServer(free_port(), work / "label-studio")
        server.start()
        try:
            fresh, reused = [], []
            for r in range(REPEATS):
                fresh.append(drain_per_second(label_studio(server, f"fresh {r}", False), items, work / f"f{r}"))
                reused.append(drain_per_second(label_studio(server, f"reused {r}", True), items, work / f"r{r}"))
        finally:
            server.stop()

    def ratio(ours: list[float], baseline: list[float]) -> str:
        return f"{statistics.median(ours) / statistics.median(baseline):.2f}"

    return "\n".join([
        f"## Remote targets: the outbox ({len(items)} datapoints of a 1080p frame, JPEG {size_kb:.0f} KiB, "
        f"median (min–max of {REPEATS}))", "",
        "| operation | framesift | baseline | ratio |", "|---|---|---|---|",
        f"| `Outbox.add` on the collector thread, ms per datapoint | {summary(add)} | `LocalDataset.register`: "
        f"{summary(local)} | {ratio(add, local)} |",
        f"| backlog drained through a target that does nothing, datapoints/s | {summary(null)} | | |",
        f"| backlog drained to Label Studio 1.23.2 (`label-studio start`, same machine), datapoints/s "
        f"| {summary(fresh)} | one reused connection: {summary(reused)} | {ratio(fresh, reused)} |",
        "",
        "The outbox costs about what the local dataset costs (both fsync every file), on the collector thread, "
        "never on the frame path; its own bookkeeping drains far faster than any target takes datapoints. Label "
        "Studio's development server writes each answer's headers and body in two packets, so on a reused "
        "connection every answer waits for the client's delayed ACK; over plain HTTP framesift opens one "
        "connection per request instead.", ""])


if __name__ == "__main__":
    print(main())
