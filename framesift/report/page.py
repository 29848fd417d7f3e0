"""`write_report`: one self-contained HTML page of a dataset folder — its gallery and its charts.

The page holds everything it needs: its script and style, Chart.js (vendored in `assets/`, MIT), the drawing of
pre-annotations it shares with the live page (`framesift/assets/overlay.js`), and the dataset's
records as compact JSON (`framesift.report.gallery`). It references the images by their path relative to the page
and loads them lazily, a page of the gallery at a time, so writing it reads no image and a 100 000-datapoint
dataset is reported in seconds. Written inside the dataset folder (the default), it goes wherever the folder goes
(a USB stick) and opens with no network.

Example:
    >>> report = write_report("framesift-data", summary="summary.json")  # doctest: +SKIP
    >>> report.path, report.datapoints, len(report.skipped)              # doctest: +SKIP
    (PosixPath('framesift-data/report.html'), 120, 0)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from framesift.annotations import PALETTE, overlay_script
from framesift.collectors.config.schema import ActiveLearningConfig, load_config
from framesift.durable import write_atomically
from framesift.errors import InputError
from framesift.report.budgets import budget_chart
from framesift.report.charts import dataset_charts
from framesift.report.gallery import read_gallery
from framesift.report.uncollected import read_summary, uncollected_charts

REPORT = "report.html"
PAGE_SIZE = 100  # gallery items per page
MAX_SKIPPED_SHOWN = 50  # records left out that the page names (it counts them all)


@dataclass(frozen=True)
class Report:
    """A report written: where, how many datapoints it shows, and the records left out as (id or line, why)."""

    path: Path
    datapoints: int
    skipped: list[tuple[str, str]]


def write_report(
    dataset: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    summary: str | os.PathLike[str] | None = None,
    al_config: str | os.PathLike[str] | ActiveLearningConfig | None = None,
) -> Report:
    """Write the report of the dataset folder `dataset` to `out` (default: `report.html` inside it).

    `summary` (a `framesift run --summary` file) adds what the run did not collect; `al_config` (the configuration
    the run used, a file or an `ActiveLearningConfig`) adds budget use against each strategy's limits. Records that
    cannot be shown are left out and named in the result. Raises `InputError` for a folder that is no dataset, a
    summary or configuration that cannot be read, or a report that cannot be written.
    """
    root = Path(dataset)
    target = Path(out) if out is not None else root / REPORT
    counters = read_summary(summary) if summary is not None else None
    config = load_config(al_config) if isinstance(al_config, (str, os.PathLike)) else al_config
    gallery = read_gallery(root)
    charts = [*dataset_charts(gallery), budget_chart(gallery, config)]
    if counters is not None and summary is not None:
        charts += uncollected_charts(counters, Path(summary).name)
    data = {
        "title": root.resolve().name,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "base": _base(root, target),
        "pageSize": PAGE_SIZE,
        "palette": PALETTE,
        **gallery.tables(),
        "items": gallery.items,
        "skipped": len(gallery.skipped),
        "skippedExamples": gallery.skipped[:MAX_SKIPPED_SHOWN],
        "charts": [chart.as_json() for chart in charts],
    }
    try:
        write_atomically(target, _page(data).encode())
    except OSError as error:
        raise InputError(f"cannot write the report {target}: {error.strerror or error}") from None
    return Report(target, len(gallery.items), gallery.skipped)


def _base(root: Path, page: Path) -> str:
    """The dataset folder as seen from the page: a relative URL prefix of the records' image paths."""
    try:
        relative = Path(os.path.relpath(root.resolve(), page.resolve().parent)).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        return root.resolve().as_uri() + "/"
    return "" if relative == "." else relative + "/"


def _page(data: dict[str, object]) -> str:
    """The HTML: the template with its style, Chart.js, its script and the data put in their places."""
    assets = resources.files("framesift.report") / "assets"
    # "<" never appears raw in the JSON, so the data cannot end its <script> element early.
    embedded = json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c")
    html = (assets / "report.html").read_text(encoding="utf-8").replace("/*overlay.js*/", overlay_script())
    for marker, asset in (("/*report.css*/", "report.css"), ("/*chart.js*/", "chart.umd.min.js"),
                          ("/*report.js*/", "report.js")):
        html = html.replace(marker, (assets / asset).read_text(encoding="utf-8"))
    return html.replace("/*data*/", embedded, 1)
