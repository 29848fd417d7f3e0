"""The report (issue 16): a dataset of every kind of datapoint — detections, segmentation, keypoints,
classification, stub — collected by a real Collector, written as one HTML page and opened in a real headless
Chromium: the gallery's items per filter, what is drawn on them, the charts, a screenshot; bad input; a
100 000-record dataset."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlencode

import cv2
import numpy as np
import pytest

from framesift.collectors import Collector, LocalDataset, parse_config
from framesift.dataset.records import read_records
from framesift.predictions import ClassificationPrediction, DetectionPrediction, StubPrediction
from framesift.report import write_report
from framesift.stats import StreamStats
from tests.browser import dump_dom, screenshot
from tests.helpers import load_script, point_records_outside

SIZE = (320, 240)
CONFIG = {
    "enabled": True, "persist_predictions": True, "tags": ["report"],
    "sampling_strategies": [
        {"name": "cats", "type": "classes_based", "selected_class_names": ["cat"], "probability": 1.0},
        {"name": "crowded", "type": "detections_number_based", "more_than": 1, "probability": 1.0,
         "tags": ["busy"], "limits": [{"type": "minutely", "value": 3}, {"type": "hourly", "value": 2}]},
        {"name": "everything", "type": "random", "traffic_percentage": 1.0},
    ],
    "batching_strategy": {"batches_name_prefix": "r", "recreation_interval": "daily"},
}
DAY_1, DAY_2 = datetime(2026, 1, 5, 9, tzinfo=timezone.utc), datetime(2026, 1, 6, 9, tzinfo=timezone.utc)


def detections(task: str, boxes: list[tuple[str, float, list[float]]], **extra: object) -> DetectionPrediction:
    return DetectionPrediction.from_lists(task, "shapes/1", SIZE, xyxy=[b for _, _, b in boxes],
                                          confidence=[c for _, c, _ in boxes], class_name=[n for n, _, _ in boxes],
                                          **extra)  # type: ignore[arg-type]


def classification(confidences: dict[str, float], predicted: list[str] | None = None) -> ClassificationPrediction:
    return ClassificationPrediction("pets/2", SIZE, list(confidences), np.array(list(confidences.values()), np.float32),
                                    multi_label=predicted is not None, predicted_classes=predicted or [])


# (day, source, prediction, the strategy that selects it). Counts per filter below follow from this list.
DATAPOINTS = [
    (DAY_1, "cam-1", detections("object-detection", [("car", 0.9, [10, 10, 80, 60]),
                                                     ("person", 0.55, [100, 40, 140, 200])]), "crowded"),
    (DAY_1, "cam-1", detections("object-detection", [("car", 0.42, [200, 100, 300, 180])]), "everything"),
    (DAY_1, "cam-1", detections("instance-segmentation", [("person", 0.8, [50, 50, 150, 200])],
                                polygons=[[[50, 50], [150, 60], [140, 200], [60, 190]]]), "everything"),
    (DAY_1, "cam-1", detections("keypoint-detection", [("person", 0.7, [160, 20, 240, 220])],
                                keypoints=[[[200, 40, 0.9], [190, 100, 0.8], [210, 100, 0.2]]],
                                keypoint_names=["nose", "left_hip", "right_hip"]), "everything"),
    (DAY_1, "cam-1", classification({"cat": 0.93, "dog": 0.07}), "cats"),
    (DAY_2, "cam-2", classification({"cat": 0.2, "dog": 0.8}), "everything"),
    (DAY_2, "cam-2", StubPrediction("stub"), "everything"),
    (DAY_2, "cam-2", detections("object-detection", [("car", 0.6, [0, 0, 50, 50]), ("car", 0.3, [60, 0, 110, 50]),
                                                     ("truck", 0.95, [120, 60, 300, 230])]), "crowded"),
    (DAY_2, "cam-2", classification({"cat": 0.9, "dog": 0.6, "bird": 0.1}, predicted=["cat", "dog"]), "cats"),
]
PER_FILTER = [  # the #fragment, and how many datapoints match
    ({}, 9),
    ({"strategy": "crowded"}, 2), ({"strategy": "cats"}, 2), ({"strategy": "everything"}, 5),
    ({"source": "cam-1"}, 5), ({"source": "cam-2"}, 4),
    ({"batch": "r_2026_01_05"}, 5), ({"batch": "r_2026_01_06"}, 4),
    ({"class": "car"}, 3), ({"class": "person"}, 3), ({"class": "cat"}, 2), ({"class": "dog"}, 2),
    ({"class": "truck"}, 1), ({"strategy": "everything", "source": "cam-2"}, 2),
    ({"class": "car", "source": "cam-1"}, 2),
]


def frame(seed: int) -> np.ndarray:
    """A picture to collect: noise with a bright square, so each datapoint's image is its own."""
    image = np.random.default_rng(seed).integers(0, 120, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    cv2.rectangle(image, (20 + 20 * seed, 30), (60 + 20 * seed, 90), (40, 200, 240), -1)
    return image


def collect(root: Path) -> Path:
    """The dataset of DATAPOINTS, collected by a real Collector into a real LocalDataset (one collector a day, so
    each day is its own batch); its summary beside it, as `framesift run --summary` writes one."""
    config = parse_config(CONFIG)
    stats = {}
    for day in (DAY_1, DAY_2):
        with Collector(config, LocalDataset(root / "dataset"), seed=0, clock=lambda day=day: day) as collector:
            for i, (when, source, prediction, _) in enumerate(DATAPOINTS):
                if when == day:
                    assert collector.submit(frame(i), prediction, source=source, frame_id=i,
                                            captured_at=when + timedelta(seconds=10 * i))
        stats[day.date().isoformat()] = collector.snapshot()
    (root / "summary.json").write_text(json.dumps(StreamStats(collectors=stats).summary()))
    (root / "config.json").write_text(json.dumps(CONFIG))
    return root / "dataset"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = collect(tmp_path_factory.mktemp("report"))
    assert [r["strategy"] for r in read_records(root)] == [s for *_, s in DATAPOINTS]
    return root


@pytest.fixture(scope="module")
def report(dataset) -> Path:
    written = write_report(dataset, summary=dataset.parent / "summary.json", al_config=dataset.parent / "config.json")
    assert (written.path, written.datapoints, written.skipped) == (dataset / "report.html", 9, [])
    return written.path


@dataclass
class Page:
    """What a test reads in a DOM that Chromium dumped: elements by tag and class, texts by id."""

    items: int = 0
    drawn: dict[str, int] = field(default_factory=lambda: {"rect": 0, "polygon": 0, "circle": 0, "badge": 0})
    images: list[str] = field(default_factory=list)
    charts: dict[str, bool] = field(default_factory=dict)  # key -> its canvas drawn by Chart.js
    texts: dict[str, str] = field(default_factory=dict)  # id -> text
    captions: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # the items' images, in the gallery's order
    why: dict[str, str] = field(default_factory=dict)  # an item's image -> why it was chosen, as its tile says
    boxes: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)  # image -> (confidence, decisive) per box
    sections: list[str] = field(default_factory=list)  # the ids of the page's sections, in order
    charts_open: bool = False


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page, self._chart, self._text, self._caption, self._why = Page(), None, None, False, False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "figure" and "item" in classes:
            self.page.items += 1
            self.page.order.append(a["data-image"] or "")
        elif tag in ("rect", "polygon", "circle"):
            self.page.drawn[tag] += 1
            if tag == "rect" and self.page.order:
                self.page.boxes.setdefault(self.page.order[-1], []).append(
                    (a["data-confidence"] or "", a.get("data-decisive") == "true"))
        elif "badge" in classes:
            self.page.drawn["badge"] += 1
        elif tag == "img":
            self.page.images.append(a["src"] or "")
        elif tag == "section" and "chart" in classes:
            self._chart = a["data-chart"]
            self.page.charts[self._chart or ""] = False
        elif tag == "canvas" and self._chart is not None:
            self.page.charts[self._chart] = a.get("data-drawn") == "true"
        if a.get("id") in ("count", "about"):
            self._text = a["id"]
        if tag == "section" and a.get("id"):
            self.page.sections.append(a["id"] or "")
        if tag == "details" and a.get("id") == "charts-panel":
            self.page.charts_open = "open" in a
        self._caption = self._caption or "classes" in classes
        self._why = "why" in classes

    def handle_data(self, data: str) -> None:
        if self._why and self.page.order:
            self.page.why[self.page.order[-1]] = data
            self._why = False
        if self._text is not None:
            self.page.texts[self._text] = self.page.texts.get(self._text, "") + data
        if self._caption:
            self.page.captions.append(data)
            self._caption = False

    def handle_endtag(self, tag: str) -> None:
        if tag in ("span", "p"):
            self._text = None


def open_page(report: Path, fragment: dict[str, str] | None = None) -> Page:
    reader = _Reader()
    reader.feed(dump_dom(report.resolve().as_uri() + ("#" + urlencode(fragment) if fragment else "")))
    return reader.page


@pytest.mark.parametrize(("fragment", "expected"), PER_FILTER, ids=[urlencode(f) or "all" for f, _ in PER_FILTER])
def test_the_gallery_shows_what_each_filter_chooses(report, fragment, expected):
    page = open_page(report, fragment)
    assert page.items == expected
    assert page.texts["count"] == f"{expected} datapoint{'s' if expected > 1 else ''}" + \
        ("" if expected == 9 else " of 9")


def test_every_kind_of_pre_annotation_is_drawn(report):
    page = open_page(report)
    assert page.drawn == {"rect": 8, "polygon": 1, "circle": 2, "badge": 3}  # keypoints below 50 % are not drawn
    assert page.captions == ["1 car, 1 person", "1 car", "1 person", "1 person", "cat 93%", "dog 80%",
                             "no pre-annotation", "2 car, 1 truck", "cat 90%, dog 60%"]
    assert page.texts["about"].startswith("9 datapoints in 2 batches from 2 sources, selected by 3 strategies, "
                                          "captured 2026-01-05 09:00:00 UTC to 2026-01-06 09:01:20 UTC")


def frames_of(dataset: Path) -> dict[str, int]:
    return {r["image"]: r["frame_id"] for r in read_records(dataset)}


def test_each_tile_says_why_it_was_chosen(report, dataset):
    page = open_page(report)
    why = {frames_of(dataset)[image]: text for image, text in page.why.items()}
    assert why == {0: "crowded: 2 objects counted", 1: "everything", 2: "everything", 3: "everything",
                   4: "cats: class cat", 5: "everything", 6: "everything", 7: "crowded: 3 objects counted",
                   8: "cats: class cat"}  # of the predicted cat and dog, the selected one
    counted = {frames_of(dataset)[image]: boxes for image, boxes in page.boxes.items()}
    assert all(decisive for _, decisive in counted[7]) and len(counted[7]) == 3  # every box counted decided


def test_the_boxes_that_made_the_decision_stand_out(tmp_path):
    """close_to_threshold: only the boxes close to the threshold decided; uncertainty: its band's boxes, and the
    candidates below the threshold in words; a near-duplicate gate: the distance that let the frame through."""
    config = parse_config({
        "enabled": True, "persist_predictions": True, "near_duplicates": {},
        "sampling_strategies": [{"name": "unsure", "type": "close_to_threshold", "threshold": 0.5, "epsilon": 0.1,
                                 "probability": 1.0}],
        "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}})
    with Collector(config, LocalDataset(tmp_path / "ds"), seed=0) as collector:
        collector.submit(frame(0), detections("object-detection", [
            ("car", 0.9, [10, 10, 80, 60]), ("car", 0.55, [100, 40, 140, 200]), ("person", 0.45, [200, 40, 250, 90])]))
    written = write_report(tmp_path / "ds")
    page = open_page(written.path)
    [(image, boxes)] = page.boxes.items()
    assert sorted(boxes) == [("45", True), ("55", True), ("90", False)]
    assert page.why[image] == "unsure: 2 boxes within 0.1 of 0.5 · the first of its source lately"


@pytest.mark.parametrize(("fragment", "frames"), [
    ({}, [0, 1, 2, 3, 4, 5, 6, 7, 8]),
    ({"sort": "time-newest"}, [8, 7, 6, 5, 4, 3, 2, 1, 0]),
    ({"sort": "confidence-low"}, [7, 1, 0, 8, 3, 2, 5, 4, 6]),  # by each one's lowest; none (the stub) last
    ({"sort": "confidence-high"}, [7, 4, 0, 8, 2, 5, 3, 1, 6]),  # by each one's highest
    ({"sort": "objects"}, [7, 0, 1, 2, 3, 4, 5, 6, 8]),
    ({"confidence": "40-60"}, [0, 1, 7, 8]),  # a detection or class within 40 % to 60 %, both included
    ({"confidence": "40-60", "sort": "confidence-high", "class": "car"}, [7, 0, 1]),
])
def test_the_gallery_sorts_and_filters_by_confidence(report, dataset, fragment, frames):
    page = open_page(report, fragment)
    assert [frames_of(dataset)[image] for image in page.order] == frames


def test_the_gallery_comes_first_and_the_charts_a_click_away(report):
    page = open_page(report)
    assert page.sections.index("browse") < page.sections.index("charts") and not page.charts_open
    assert open_page(report, {"view": "charts"}).charts_open


def test_the_charts_are_drawn_by_chart_js(report):
    page = open_page(report)
    assert page.charts == {"time_strategy": True, "time_source": True, "classes": True, "confidence": True,
                           "budgets": True, "uncollected": True, "strategies_sampled": True}


def test_budget_use_and_what_was_not_collected_are_counted(report):
    data = embedded(report)
    budgets = next(c for c in data["charts"] if c["key"] == "budgets")
    assert budgets["rows"][1:] == [["crowded", "3 a minute", "1 (33.3%)", "0"],
                                   ["crowded", "2 an hour", "1 (50%)", "0"]]
    uncollected = next(c for c in data["charts"] if c["key"] == "uncollected")
    assert dict(zip(uncollected["config"]["data"]["labels"], uncollected["config"]["data"]["datasets"][0]["data"],
                    strict=True)) == {"registered": 9, "refused: limits": 0, "refused: batch cap": 0,
                                      "near-duplicates": 0, "dropped": 0}
    assert uncollected["note"].startswith("9 of 9 sampled datapoints were collected (100%); neither the limits nor")


def test_without_summary_or_configuration_the_page_says_what_to_give(dataset, tmp_path):
    written = write_report(dataset, out=tmp_path / "plain.html")
    data = embedded(written.path)
    assert [c["key"] for c in data["charts"]] == ["time_strategy", "time_source", "classes", "confidence", "budgets"]
    assert "--al-config" in data["charts"][-1]["note"] and data["charts"][-1]["config"] is None


def embedded(report: Path) -> dict:
    html = report.read_text()
    start = html.index('<script type="application/json" id="framesift-data">') + len(
        '<script type="application/json" id="framesift-data">')
    return json.loads(html[start:html.index("</script>", start)])


def test_the_page_loads_nothing_from_outside_and_its_images_go_with_the_folder(dataset, report, tmp_path):
    html = report.read_text()
    for outside in ('src="http', "src='http", 'href="http', "url(http", "@import"):
        assert outside not in html
    stick = tmp_path / "usb-stick" / "dataset"
    shutil.copytree(dataset, stick)  # the folder copied with its report, as onto a USB stick
    page = open_page(stick / "report.html")
    assert len(page.images) == 9
    assert all((stick / unquote(src)).is_file() for src in page.images)


def test_a_report_written_outside_the_folder_finds_the_images(dataset, tmp_path):
    written = write_report(dataset, out=tmp_path / "reports" / "today.html")
    page = open_page(written.path)
    assert len(page.images) == 9 and all(src.startswith("../") for src in page.images)
    assert all((written.path.parent / unquote(src)).resolve().is_file() for src in page.images)


def test_a_screenshot_of_the_report(report, tmp_path):
    shot = screenshot(report.resolve().as_uri(), tmp_path / "report.png", size=(1200, 1600))
    image = cv2.imread(str(shot))
    assert image.shape == (1600, 1200, 3)
    assert image.std() > 20  # charts and pictures, not a blank page


def test_the_readme_screenshot_script_runs_the_demo_and_takes_it(tmp_path):
    module = load_script("report_screenshot")
    shot = module.take(tmp_path / "report.png", tmp_path / "work")
    assert cv2.imread(str(shot)).shape[:2] == (1800, 1400)
    assert (tmp_path / "work" / "framesift-demo" / "dataset" / "report.html").is_file()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framesift.cli", *args], capture_output=True, text=True, timeout=120)


def test_the_command_writes_the_report_and_says_where_to_open_it(dataset, tmp_path):
    out = tmp_path / "r.html"
    result = run_cli("report", str(dataset), "--out", str(out), "--summary", str(dataset.parent / "summary.json"),
                     "--al-config", str(dataset.parent / "config.json"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote the report of 9 datapoints: open {out.resolve().as_uri()}"


def test_damaged_records_are_skipped_counted_and_named(dataset, tmp_path):
    copy = tmp_path / "dataset"
    shutil.copytree(dataset, copy)
    records = list(read_records(copy))
    (copy / records[0]["image"]).unlink()  # an image deleted by hand
    (copy / records[1]["prediction"]).write_text("{not json")  # a prediction damaged
    with open(copy / "datapoints.jsonl", "a") as f:
        f.write('{"id": "half a rec\n')  # a line edited into garbage
        f.write(json.dumps({"id": "no-image", "batch": "b"}) + "\n")
    result = run_cli("report", str(copy))
    assert result.returncode == 0, result.stderr
    assert "wrote the report of 7 datapoints" in result.stdout
    assert result.stderr.splitlines() == [
        "framesift: skipped 4 records that cannot be shown:",
        f"  {records[0]['id']}: its image {records[0]['image']} is missing",
        f"  {records[1]['id']}: its prediction {records[1]['prediction']} cannot be read (JSONDecodeError)",
        "  line 10: not a complete JSON record",
        "  no-image: no 'image' key",
    ]
    page = open_page(copy / "report.html")
    assert page.items == 7 and "Traceback" not in result.stderr


@pytest.mark.parametrize(("make", "message"), [
    (lambda d, t: ["report", str(t)], "is not a framesift dataset (no datapoints.jsonl)"),
    (lambda d, t: ["report", str(d), "--summary", str(t / "missing.json")], "does not exist"),
    (lambda d, t: ["report", str(d), "--summary", str(d / "datapoints.jsonl")], "is not JSON"),
    (lambda d, t: ["report", str(d), "--summary", str(d.parent / "config.json")], "is not a framesift summary"),
    (lambda d, t: ["report", str(d), "--al-config", str(d.parent / "summary.json")], "invalid"),
    (lambda d, t: ["report", str(d), "--out", str(d / "datapoints.jsonl" / "r.html")], "cannot write the report"),
])
def test_bad_input_is_one_sentence_and_exit_2(dataset, tmp_path, make, message):
    result = run_cli(*make(dataset, tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("framesift: ") and message in result.stderr


def test_a_100_000_record_dataset_reports_in_seconds(dataset, tmp_path):
    """Synthetic records pointing at the nine real images and predictions: reading 100 000 prediction files and
    writing the page is the cost measured (benchmarks/report.py measures it with a file per record)."""
    big = tmp_path / "big"
    shutil.copytree(dataset, big, ignore=shutil.ignore_patterns("report.html"))
    records = list(read_records(big))
    start = datetime(2026, 2, 1, tzinfo=timezone.utc)
    with open(big / "datapoints.jsonl", "w") as f:
        for i in range(100_000):
            record = records[i % len(records)]
            f.write(json.dumps({**record, "id": f"dp{i}", "source": f"cam-{i % 12}",
                                "captured_at": (start + timedelta(seconds=3 * i)).isoformat()}) + "\n")
    started = time.perf_counter()
    written = write_report(big)
    elapsed = time.perf_counter() - started
    print(f"\n100 000 records reported in {elapsed:.1f} s ({written.path.stat().st_size / 1e6:.1f} MB)")
    assert written.datapoints == 100_000 and elapsed < 120  # a very generous bound: the number is printed
    page = open_page(written.path, {"page": "1000"})
    assert page.items == 100 and page.texts["count"] == "100000 datapoints"
    sources = next(c for c in embedded(written.path)["charts"] if c["key"] == "time_source")["config"]["data"]
    assert [d["label"] for d in sources["datasets"]][-2:] == ["cam-8", "3 other sources"]  # 9 series and the rest
    assert sum(sum(d["data"]) for d in sources["datasets"]) == 100_000
    crowded = sum(1 for i in range(100_000) if records[i % len(records)]["strategy"] == "crowded")
    assert open_page(written.path, {"strategy": "crowded"}).texts["count"] == f"{crowded} datapoints of 100000"


def test_records_pointing_outside_the_dataset_are_skipped_and_named(dataset, tmp_path):
    """The page pointed at `/etc/hostname`, `../other.jpg` and the like when a record was edited so."""
    copy = tmp_path / "dataset"
    shutil.copytree(dataset, copy)
    skipped = point_records_outside(copy, tmp_path / "elsewhere")
    result = run_cli("report", str(copy))
    assert result.returncode == 0, result.stderr
    assert "wrote the report of 9 datapoints" in result.stdout
    assert result.stderr.splitlines() == [f"framesift: skipped {len(skipped)} records that cannot be shown:",
                                          *(f"  {name}: {why}" for name, why in skipped)]
    page = open_page(copy / "report.html")
    assert page.items == 9 and all((copy / unquote(src)).resolve().is_relative_to(copy) for src in page.images)


def test_a_frame_where_the_model_found_nothing_is_reported(tmp_path):
    """A detection datapoint without detections (a random draw of an empty scene: the commonest datapoint of a quiet
    camera) is shown and counts no class; writing the report failed on it (a TypeError, exit 1) before."""
    config = parse_config({**CONFIG, "sampling_strategies": [
        {"name": "everything", "type": "random", "traffic_percentage": 1.0}]})
    with Collector(config, LocalDataset(tmp_path / "ds"), seed=0) as collector:
        assert collector.submit(frame(0), detections("object-detection", []))
        assert collector.submit(frame(1), detections("object-detection", [("car", 0.9, [10, 10, 80, 60])]))
    written = write_report(tmp_path / "ds")
    assert (written.datapoints, written.skipped) == (2, [])
    [classes] = [chart for chart in embedded(written.path)["charts"] if chart["key"] == "classes"]
    assert classes["config"]["data"]["labels"] == ["car"], classes
