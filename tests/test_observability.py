"""/metrics as fleets expect it, scraped from a real run: build info, process metrics, an inference latency
histogram, frame-age quantiles as Prometheus labels them, rejections by reason; and the Grafana dashboard in the
repository queries only metrics a run exposes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from framesift import __version__
from tests.helpers import CONFIGS
from tests.servers import free_port

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana-dashboard.json"
METRIC = re.compile(r"\b((?:framesift|process)_[a-z_]+)\b")


@pytest.fixture(scope="module")
def scraped(clip_path, tmp_path_factory) -> dict[str, list]:
    """The samples of /metrics, by name, of a demo-model run with a collector, once it has inferred 30 frames (a
    metric declared without samples yet, such as frames dropped by reason before the first drop: no samples)."""
    work = tmp_path_factory.mktemp("metrics")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "framesift.cli", "run", str(clip_path), "--model", "demo", "--al-config",
         str(CONFIGS / "demo.yaml"), "--target", str(work / "ds"), "--metrics-port", str(port), "--realtime",
         "--loop", "--no-progress", "--seed", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    families: dict[str, list] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            except OSError:
                time.sleep(0.2)
                continue
            families = {}
            for family in text_string_to_metric_families(body):  # declared, even before its first sample
                families.setdefault(family.name + ("_total" if family.type == "counter" else ""), [])
                for sample in family.samples:
                    families.setdefault(sample.name, []).append(sample)
            inferred = sum(s.value for s in families.get("framesift_frames_inferred_total", []))
            if inferred >= 30 and families.get("framesift_frame_age_seconds"):
                break
            time.sleep(0.3)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    return families


def test_build_info_names_version_device_and_onnxruntime(scraped):
    [info] = scraped["framesift_build_info"]
    assert info.value == 1
    assert info.labels == {"version": __version__, "device": "cpu", "onnxruntime": metadata.version("onnxruntime")}


def test_process_metrics_memory_cpu_and_file_descriptors(scraped):
    assert scraped["process_resident_memory_bytes"][0].value > 10 * 2**20
    assert scraped["process_cpu_seconds_total"][0].value > 0
    assert scraped["process_open_fds"][0].value > 0


def test_inference_latency_is_a_histogram(scraped):
    [count] = scraped["framesift_inference_seconds_count"]
    [total] = scraped["framesift_inference_seconds_sum"]
    buckets = {s.labels["le"]: s.value for s in scraped["framesift_inference_seconds_bucket"]}
    assert count.value >= 30 and total.value > 0
    assert buckets["+Inf"] == count.value
    assert list(buckets.values()) == sorted(buckets.values())  # cumulative


def test_frame_age_quantiles_are_labelled_as_prometheus_does(scraped):
    ages = {s.labels["quantile"]: s.value for s in scraped["framesift_frame_age_seconds"]}
    assert set(ages) == {"0.5", "0.95", "0.99"}
    assert 0 <= ages["0.5"] <= ages["0.95"] <= ages["0.99"]


def test_rejections_are_one_metric_by_reason(scraped):
    reasons = {s.labels["reason"] for s in scraped["framesift_datapoints_rejected_total"]}
    assert reasons == {"limits", "batch_cap", "store_unavailable", "near_duplicate"}
    assert "framesift_datapoints_rejected_by_limits_total" not in scraped  # renamed (README, "Counters")


def test_every_metric_the_grafana_dashboard_queries_is_exposed(scraped):
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in METRIC.findall(target["expr"])}
    queried |= set(METRIC.findall(json.dumps(dashboard["templating"])))
    assert {"framesift_build_info", "process_resident_memory_bytes", "framesift_inference_seconds_bucket",
            "framesift_frame_age_seconds", "framesift_datapoints_rejected_total"} <= queried
    assert sorted(queried - set(scraped)) == []
