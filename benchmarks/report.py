"""How long `framesift report` takes on a 100 000-datapoint dataset, and how long the page takes to open.

The dataset: 100 000 records, each with its own prediction file (three boxes, as a real run writes them), pointing
at 12 real JPEGs that a real Collector wrote (the report reads no image, it only checks that each exists). Times
are wall-clock, median (min–max) of 3, with the files in the page cache. The page is opened in the tests' headless
Chromium (`tests/browser.py`) and screenshot once its script has drawn the charts and the first gallery page; that
time includes starting Chromium, so the same call on a blank page is measured beside it.

Run: `python benchmarks/report.py` (needs Debian's chromium). Prints a Markdown section.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framesift.collectors import Collector, LocalDataset, parse_config  # noqa: E402
from framesift.dataset.records import read_records  # noqa: E402
from framesift.demo import demo_frame  # noqa: E402
from framesift.predictions import DetectionPrediction  # noqa: E402
from framesift.report import write_report  # noqa: E402
from tests.browser import screenshot  # noqa: E402

RECORDS = 100_000
CONFIG = {"enabled": True, "persist_predictions": True,
          "sampling_strategies": [{"name": "all", "type": "random", "traffic_percentage": 1.0}],
          "batching_strategy": {"batches_name_prefix": "bench", "recreation_interval": "never"}}


def build(root: Path) -> Path:
    """The 100 000-record dataset under `root`."""
    dataset = root / "dataset"
    rng = np.random.default_rng(0)
    with Collector(parse_config(CONFIG), LocalDataset(dataset), seed=0) as collector:
        for i in range(12):
            boxes = rng.uniform(0, 400, (3, 2))
            prediction = DetectionPrediction.from_lists(
                "object-detection", "bench/1", (640, 480), xyxy=np.hstack([boxes, boxes + 60]),
                confidence=rng.uniform(0.3, 1, 3), class_name=["person", "car", "bike"])
            collector.submit(demo_frame(i), prediction, frame_id=i)
    real = list(read_records(dataset))
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    strategies = ("uncertain", "busy", "random_sample")
    with open(dataset / "datapoints.jsonl", "w") as lines:
        for i in range(RECORDS):
            record = real[i % len(real)]
            prediction = f"bench/predictions/dp{i}.json"
            (dataset / prediction).write_bytes((dataset / record["prediction"]).read_bytes())
            lines.write(json.dumps({**record, "id": f"dp{i}", "prediction": prediction,
                                    "strategy": strategies[i % 3], "source": f"rtsp://cam-{i % 8}/stream",
                                    "captured_at": (start + timedelta(seconds=2.6 * i)).isoformat()}) + "\n")
    return dataset


def timed(action, repeats: int = 3) -> tuple[float, float, float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), min(samples), max(samples)


def main() -> str:
    with tempfile.TemporaryDirectory() as work:
        dataset = build(Path(work))
        written = write_report(dataset)  # once, to warm the page cache as a second report would find it
        report = timed(lambda: write_report(dataset))
        url = written.path.resolve().as_uri()
        shot = Path(work) / "shot.png"
        first_page = timed(lambda: screenshot(url, shot, budget_ms=1000))
        filtered = timed(lambda: screenshot(url + "#strategy=busy&page=300", shot, budget_ms=1000))
        blank = Path(work) / "blank.html"
        blank.write_text("<!doctype html><title>blank</title>")
        chromium_alone = timed(lambda: screenshot(blank.resolve().as_uri(), shot, budget_ms=1000))
        size = written.path.stat().st_size / 1e6
    row = "| {} | {:.1f} ({:.1f}–{:.1f}) |"
    return "\n".join([
        "## The report: 100 000 datapoints (s, median (min–max of 3))",
        "",
        "| step | s |",
        "|---|---|",
        row.format("`write_report` (`framesift report DIR`): read the records and every prediction file, write "
                   f"the page ({size:.1f} MB)", *report),
        row.format("headless Chromium opens the page and screenshots it: charts and first gallery page drawn",
                   *first_page),
        row.format("... opened on a filter and a page (`#strategy=busy&page=300`)", *filtered),
        row.format("(for comparison: the same on a blank page, Chromium's own start)", *chromium_alone),
    ])


if __name__ == "__main__":
    print(main())
