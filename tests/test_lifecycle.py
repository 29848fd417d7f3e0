"""What users running framesift for months rely on: a thread that dies ends the run loudly, everything that owns a
thread, file, lock or socket closes once and cleanly, a failed start-up leaves nothing held, signals at any moment
end a run in order, and a log file does not fill with a status line a second."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import framesift
from framesift import (
    Collector,
    FramesiftError,
    InputError,
    LimitStoreError,
    LocalDataset,
    Outbox,
    Pipeline,
    RunOptions,
    WorkerFailed,
    build_pipeline,
    load_model,
    run,
)
from framesift.collectors.targets.remote import RemoteTarget
from tests.helpers import CONFIGS, ROBOFLOW_KEY, collect_all_config, wait_until
from tests.servers import free_port


class ShortModel:
    """A model that returns one prediction fewer than the frames it was given."""

    max_batch, input_size, task_type, model_id, class_names = 4, None, "object-detection", "short", []

    def prepare(self, frame):
        return None

    def infer(self, inputs):
        return [framesift.StubPrediction("short")] * (len(inputs) - 1)


class JsonModel:
    """A model that returns Roboflow-Inference-shaped JSON, with a key missing: `collector.submit` raises on it."""

    max_batch, input_size, task_type, model_id, class_names = 1, None, "object-detection", "json", []

    def prepare(self, frame):
        return None

    def infer(self, inputs):
        return [{"image": {"width": 320, "height": 240}, "predictions": [{"x": 1.0, "class": "a"}]} for _ in inputs]


class DyingTarget(RemoteTarget):
    """A remote target whose delivery ends its thread (third-party code calling `sys.exit`, say)."""

    def __init__(self, folder: Path):
        super().__init__("dying", folder)
        self.start()

    def deliver(self, entry, outbox):
        raise SystemExit(3)


# -- a thread that dies ends the run --------------------------------------------------------------------------------
def test_a_model_returning_too_few_predictions_ends_the_run_with_one_sentence(clip_path):
    pipeline = Pipeline([str(clip_path)], ShortModel())
    pipeline.start()
    with pytest.raises(WorkerFailed) as raised:
        pipeline.join(timeout=30)
    assert str(raised.value) == "the inference thread failed: RuntimeError: the model 'short' returned 0 " \
                                "predictions for 1 images"
    assert raised.value.exit_code == 1 and isinstance(raised.value, FramesiftError)
    pipeline.close()  # raised once already: closing is quiet


def test_close_raises_a_failure_that_join_never_raised(clip_path):
    pipeline = Pipeline([str(clip_path)], ShortModel())
    pipeline.start()
    time.sleep(1.5)  # the first frame killed the inference thread
    with pytest.raises(WorkerFailed, match="the inference thread failed"):
        pipeline.close()
    pipeline.close()


def test_an_exception_inside_collector_submit_ends_the_run(clip_path, tmp_path):
    collector = Collector(collect_all_config(), LocalDataset(tmp_path / "ds"))
    pipeline = Pipeline([str(clip_path)], JsonModel(), collector)
    with pytest.raises(WorkerFailed, match="the inference thread failed: KeyError: 'width'"):
        pipeline.run()
    pipeline.close()
    assert pipeline.snapshot().frames_decoded <= 3  # it stopped at the first frame, not after all of them


def test_a_dead_sender_thread_ends_the_run_through_the_collector(clip_path, tmp_path):
    collector = Collector(collect_all_config(), DyingTarget(tmp_path / "outbox"))
    looping = framesift.SourceOptions(loop=True)  # endless: only the failure can end it
    pipeline = Pipeline([str(clip_path)], load_model("stub"), collector, options=looping)
    with pytest.raises(WorkerFailed, match="the outbox sender thread failed: SystemExit: 3"):
        pipeline.run()
    pipeline.close()
    snap = pipeline.snapshot().collected()
    assert snap.dropped_by_reason.get("collector_failed", 0) >= 1  # what could no longer be written is counted
    assert describe_pending(tmp_path / "outbox") >= 1  # and what was in the outbox stays for the next run


def describe_pending(folder: Path) -> int:
    return framesift.describe(folder)["pending"]


# -- closing: once, in any order, through context managers ---------------------------------------------------------
def test_everything_that_owns_a_resource_is_a_context_manager_closed_once(clip_path, tmp_path):
    from framesift.resources import Resource

    for cls in (framesift.Pipeline, framesift.Collector, framesift.LocalDataset, framesift.RoboflowTarget,
                framesift.LabelStudioTarget, framesift.MemoryLimiter, framesift.RedisLimiter,
                framesift.FallbackLimiter, framesift.PredictionsFile, framesift.AnnotatedVideo, framesift.Outbox,
                framesift.MetricsServer, framesift.StopSignals):
        assert issubclass(cls, Resource), cls
    with Collector(collect_all_config(), LocalDataset(tmp_path / "ds")) as collector:
        pipeline = Pipeline([str(clip_path)], load_model("stub"), collector,
                            sinks=[framesift.PredictionsFile(tmp_path / "p.jsonl")])
        pipeline.run()
        pipeline.close()  # closes the collector, which the with-block closes again: no "Bad file descriptor"
        pipeline.close()
    assert len(list(framesift.read_records(tmp_path / "ds"))) == 60
    dataset = LocalDataset(tmp_path / "other")
    dataset.close()
    dataset.close()
    with Outbox(tmp_path / "outbox") as box:
        box.close()


# -- threads run from start(), never from a constructor ---------------------------------------------------------------
def running_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.is_alive()}


def test_nothing_starts_a_thread_when_made_and_entering_it_starts_and_closing_ends_them(tmp_path, redis_server,
                                                                                       roboflow):
    from framesift.collectors.targets.labelstudio import LabelStudioTarget
    from framesift.observe.progress import Progress
    from framesift.pipeline.sinks import BackgroundSink
    from framesift.serve.models import InferenceQueue
    from framesift.stream.fleet import FleetLog

    makers = {
        "Collector": lambda: Collector(collect_all_config(), LocalDataset(tmp_path / "ds")),
        "RoboflowTarget": lambda: framesift.RoboflowTarget("people", ROBOFLOW_KEY, Outbox(tmp_path / "rf"),
                                                           base_url=roboflow.url),
        "LabelStudioTarget": lambda: LabelStudioTarget("a project", f"http://127.0.0.1:{free_port()}", "key",
                                                       tmp_path / "ls"),
        "Workflow": lambda: framesift.Workflow.single(load_model("stub"),
                                                      Collector(collect_all_config(), LocalDataset(tmp_path / "wf"))),
        "FleetLog": lambda: FleetLog(redis_server.url, "ds"),
        "MetricsServer": lambda: framesift.MetricsServer(framesift.StreamStats, 0),
        "Progress": lambda: Progress(framesift.StreamStats, None, True, stream=io.StringIO()),
        "BackgroundSink": lambda: BackgroundSink(framesift.PredictionsFile(tmp_path / "p.jsonl")),
        "InferenceQueue": lambda: InferenceQueue(),
    }
    for name, make in makers.items():
        before = running_threads()
        made = make()
        assert running_threads() == before, f"making a {name} started a thread"
        with made:
            assert running_threads() - before, f"entering a {name} started no thread"
        assert wait_until(lambda: not running_threads() - before, timeout=30), f"closing a {name} left a thread"  # noqa: B023


def test_a_collector_made_without_with_still_collects_into_a_remote_target(tmp_path, roboflow):
    """What users wrote before threads moved out of the constructors keeps collecting and delivering: the first
    `submit` starts the collector, which starts its target's sender."""
    before = running_threads()
    target = framesift.RoboflowTarget("people", ROBOFLOW_KEY, Outbox(tmp_path / "outbox"), base_url=roboflow.url)
    collector = Collector(collect_all_config(), target)
    assert running_threads() == before
    assert collector.submit(np.zeros((48, 64, 3), np.uint8), framesift.StubPrediction("stub"), frame_id=1)
    assert wait_until(lambda: len(roboflow.uploads) == 1)
    collector.close()
    assert collector.snapshot().datapoints_registered == 1 and target.stats().delivered == 1


def test_a_failed_start_up_releases_the_outbox_lock_and_the_sender(tmp_path, roboflow, monkeypatch):
    monkeypatch.setenv("ROBOFLOW_API_KEY", "k")
    options = RunOptions(sources=["missing.mp4"], model="stub", al_config=str(CONFIGS / "stub_bootstrap.yaml"),
                         target="roboflow:people", outbox=str(tmp_path / "outbox"), redis="redis://:x@nohost:-1/0")
    with pytest.raises(LimitStoreError, match="bad Redis URL"):
        build_pipeline(options)  # the target (outbox lock, sender thread) was opened before the limiter failed
    Outbox(tmp_path / "outbox" / "roboflow-people").close()  # the lock was released
    assert not [t for t in threading.enumerate() if t.name == "framesift-outbox-sender" and t.is_alive()]
    busy = free_port()
    with framesift.MetricsServer(lambda: framesift.StreamStats(), busy):
        options.redis, options.metrics_port, options.sources = None, busy, [str(tmp_path / "x.mp4")]
        with pytest.raises(InputError, match=f"cannot serve metrics on 127.0.0.1:{busy}"):
            run(options)
    Outbox(tmp_path / "outbox" / "roboflow-people").close()
    assert not [t for t in threading.enumerate() if t.name == "framesift-outbox-sender" and t.is_alive()]


# -- signals at any moment, and what a log file receives -----------------------------------------------------------
def handled_signals(pid: int) -> int:
    """The signals process `pid` catches (SigCgt of /proc/pid/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return int(line.split()[1], 16)
    return 0


def cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "framesift.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kwargs)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_during_start_up_ends_the_run_like_sigterm(clip_path, tmp_path, sig):
    process = cli("run", str(clip_path), "--model", "demo", "--al-config", str(CONFIGS / "demo.yaml"), "--target",
                  str(tmp_path / "ds"), "--summary", str(tmp_path / "s.json"), "--no-progress")
    wanted = (1 << (signal.SIGHUP - 1)) | (1 << (signal.SIGTERM - 1))
    assert wait_until(lambda: handled_signals(process.pid) & wanted == wanted, timeout=20)
    process.send_signal(sig)  # before the model is loaded and the stream started, as a rule
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0 and "Traceback" not in stderr, stderr
    assert f"{sig.name} received: stopping" in stderr
    assert json.loads((tmp_path / "s.json").read_text())["frames_inferred"] < 60


def test_sighup_mid_run_writes_the_summary_and_exits_zero(clip_path, tmp_path):
    process = cli("run", str(clip_path), "--model", "demo", "--realtime", "--loop", "--al-config",
                  str(CONFIGS / "demo.yaml"), "--target", str(tmp_path / "ds"), "--summary", str(tmp_path / "s.json"),
                  "--no-progress")
    assert wait_until(lambda: len(list(framesift.read_records(tmp_path / "ds"))) > 3, timeout=30)
    process.send_signal(signal.SIGHUP)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["frames_inferred"] > 0 and summary["datapoints_registered"] == len(
        list(framesift.read_records(tmp_path / "ds")))


def test_the_status_goes_to_a_log_file_as_a_periodic_line_not_a_redrawn_one(clip_path, tmp_path):
    log = tmp_path / "run.log"
    for interval, lines in (("60", (0, 0)), ("1", (2, 4))):
        with open(log, "w") as stderr:
            process = subprocess.run([sys.executable, "-m", "framesift.cli", "run", str(clip_path), "--model", "stub",
                                      "--realtime", "--loop", "--duration", "3.5", "--status-interval", interval],
                                     stderr=stderr, timeout=60)
        text = log.read_text()
        assert process.returncode == 0 and "\r" not in text  # no line redrawn every second into the file
        status = [line for line in text.splitlines() if "framesift.status: status: source0" in line]
        assert lines[0] <= len(status) <= lines[1]  # 3.5 s: about three lines a second apart, none by default


# -- an outage of the shared limit store is visible everywhere ----------------------------------------------------
def test_a_redis_outage_under_the_memory_policy_shows_in_the_summary_the_metrics_and_the_last_words(clip_path,
                                                                                                      tmp_path):
    port = free_port()
    config = tmp_path / "every-tenth.json"
    config.write_text(json.dumps({"enabled": True, "persist_predictions": False, "batching_strategy": {
        "batches_name_prefix": "b", "recreation_interval": "never"}, "sampling_strategies": [
        {"name": "tenth", "type": "random", "traffic_percentage": 0.1, "limits": [{"type": "minutely", "value": 5}]}]}))
    process = cli("run", str(clip_path), "--model", "stub", "--realtime", "--loop", "--duration", "4", "--al-config",
                  str(config), "--target", str(tmp_path / "ds"), "--redis",
                  f"redis://127.0.0.1:{free_port()}/0", "--redis-fallback", "memory", "--metrics-port", str(port),
                  "--summary", str(tmp_path / "s.json"), "--no-progress", "--seed", "3")
    body = ""
    deadline = time.monotonic() + 30
    while 'unavailable_decisions_total{collector="collect"} 0.0' in body or "unavailable_decisions" not in body:
        if time.monotonic() > deadline:
            break
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
        except OSError:
            pass
        time.sleep(0.2)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert 'framesift_limit_store_available{collector="collect"} 0.0' in body
    assert "framesift_limit_store_unavailable_decisions_total" in body
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["limit_store_available"] is False and summary["limit_store_unavailable_decisions"] > 0
    assert "is unreachable" in summary["limit_store_error"]
    assert 0 < summary["datapoints_registered"] <= 5  # the memory policy kept collecting, under local budgets
    assert f"{summary['limit_store_unavailable_decisions']} limit decisions were made without Redis" in stderr
