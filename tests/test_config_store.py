"""One configuration for the whole fleet (issue 13): set in one place (Redis, the Roboflow API, a file), followed
live by every running instance — real Redis, real processes, the Roboflow stand-in."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import redis

from framesift import Collector, LocalDataset, read_records
from framesift.collectors.config.follower import ConfigCache
from framesift.collectors.config.store import FileStore, RedisStore, StoredConfig, open_store
from framesift.predictions import StubPrediction
from framesift.workflows import build_workflow, parse_workflow
from tests.helpers import ROBOFLOW_KEY, wait_until
from tests.servers import RedisServer, free_port

FRAME = np.zeros((24, 32, 3), np.uint8)


def configuration(*strategies: dict, enabled: bool = True) -> dict:
    if not enabled:
        return {"enabled": False}
    return {"enabled": True, "persist_predictions": False, "sampling_strategies": list(strategies),
            "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}


def strategy(name: str, share: float = 1.0, per_minute: int | None = None) -> dict:
    limits = [] if per_minute is None else [{"type": "minutely", "value": per_minute}]
    return {"name": name, "type": "random", "traffic_percentage": share, "limits": limits}


def framesift(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framesift.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, env={**os.environ, **(env or {})})


def instance(clip: Path, folder: Path, store: str, limits: str, *extra: str) -> subprocess.Popen:
    """A `framesift run` of a live-paced clip collecting into `folder/ds` (so every instance's dataset is `ds`)."""
    return subprocess.Popen([sys.executable, "-m", "framesift.cli", "run", str(clip), "--model", "stub", "--realtime",
                             "--loop", "--al-config", store, "--redis", limits, "--target", str(folder / "ds"),
                             "--summary", str(folder / "summary.json"), "--config-cache", str(folder / "cache"),
                             "--no-progress", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def scrape(port: int) -> str:
    """The body of a run's /metrics ("" while it does not answer yet)."""
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return ""


def records(folder: Path) -> list[dict]:
    return list(read_records(folder / "ds"))


def stop(processes: list[subprocess.Popen]) -> list[str]:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    return [process.communicate(timeout=60)[1] for process in processes]


# -- set, get, history -----------------------------------------------------------------------------------------------
def test_set_validates_and_keeps_every_version_get_prints_what_set_accepts(redis_server, tmp_path):
    first, second = tmp_path / "first.json", tmp_path / "second.yaml"
    first.write_text(json.dumps(configuration(strategy("all"))))
    second.write_text("enabled: false\n")
    store = ["--store", redis_server.url]
    assert framesift("config", "set", "people", str(first), *store).stdout.startswith("version 1 (")
    assert framesift("config", "set", "people", str(second), *store).stdout.startswith("version 2 (")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(configuration(strategy("all", share=2.0))))
    refused = framesift("config", "set", "people", str(broken), *store)
    assert refused.returncode == 2 and "sampling_strategies[0].traffic_percentage: must be <= 1.0" in refused.stderr
    history = framesift("config", "history", "people", *store).stdout.splitlines()
    assert [line.split("\t")[0] for line in history] == ["1", "2"]  # nothing stored by the refused set
    assert json.loads(framesift("config", "get", "people", *store).stdout) == {"enabled": False}
    got = framesift("config", "get", "people", *store, "--version", "1")
    assert json.loads(got.stdout) == json.loads(first.read_text()) and got.stderr.startswith("version 1 (")
    (tmp_path / "back.json").write_text(got.stdout)  # a rollback: what get printed, set back
    rolled = framesift("config", "set", "people", str(tmp_path / "back.json"), *store)
    assert rolled.stdout.startswith(f"version 3 ({history[0].split(chr(9))[1]})")  # the same content, a new version
    missing = framesift("config", "get", "nobody", *store)
    assert missing.returncode == 2 and "holds no configuration for 'nobody'" in missing.stderr


# -- a fleet following a change ------------------------------------------------------------------------------------
@pytest.mark.parametrize("store", ["file:///{tmp}/c.json", "http://user:hunter2@example.com/c.json"])
def test_a_store_url_of_no_known_kind_is_one_sentence_and_no_file_is_written(tmp_path, store):
    """`--store file:///tmp/c.json` wrote ./file:/tmp/c.json: any URL was taken for a file's name."""
    (tmp_path / "c.json").write_text(json.dumps(configuration(strategy("all"))))
    url = store.format(tmp=tmp_path)
    result = framesift("config", "set", "ds", str(tmp_path / "c.json"), "--store", url, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr == (
        f"framesift: {url.replace('hunter2', '***')} is no configuration store: give redis://, rediss://, unix://, "
        "roboflow:<workspace> or a file's path\n")
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]


def test_three_instances_follow_a_change_within_2_s_and_keep_every_frame_and_budget(redis_server, clip_path,
                                                                                     tmp_path):
    store = RedisStore(redis_server.url)
    store.set("ds", configuration(strategy("keep", per_minute=20)))
    folders = [tmp_path / f"box{i}" for i in range(3)]
    processes = [instance(clip_path, folder, redis_server.url, redis_server.url) for folder in folders]
    try:
        assert wait_until(lambda: all(records(f) for f in folders), timeout=30)
        assert wait_until(lambda: sum(len(records(f)) for f in folders) == 20, timeout=10)  # the budget is spent
        changed = store.set("ds", configuration(strategy("keep", per_minute=20), strategy("new", share=0.3)))
        started = time.monotonic()
        seen: dict[int, float] = {}
        while len(seen) < 3 and time.monotonic() - started < 10:
            for i, folder in enumerate(folders):
                if i not in seen and any(r.get("config_version") == changed.version for r in records(folder)):
                    seen[i] = time.monotonic() - started
            time.sleep(0.02)
        latencies = [seen.get(i, float("inf")) for i in range(3)]
        print(f"reload latency per instance (s): {', '.join(f'{t:.2f}' for t in latencies)}")
        assert max(latencies) <= 2.0
        time.sleep(1.0)
        off = store.set("ds", configuration(enabled=False))  # collection switched off centrally
        time.sleep(2.0)
        counts = [len(records(f)) for f in folders]
        time.sleep(1.5)
        assert [len(records(f)) for f in folders] == counts  # nothing collected 2 s after it was switched off
    finally:
        errors = stop(processes)
    everything = [r for f in folders for r in records(f)]
    assert sum(r["strategy"] == "keep" for r in everything) == 20  # the kept strategy's budget carried over:
    assert not [r for r in everything if r["strategy"] == "keep" and r["config_version"] == changed.version]
    assert any(r["strategy"] == "new" for r in everything)
    assert {r["config_sha"] for r in everything if r["config_version"] == changed.version} == {changed.sha}
    for folder, error in zip(folders, errors, strict=True):
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["frames_decoded"] == summary["frames_inferred"] + summary["frames_dropped"], error
        assert summary["datapoints_dropped"] == 0  # nothing queued was lost by the swaps
        assert summary["config_version"] == off.version and summary["config_reloads"] == 2
        assert set(summary["registered_by_config_version"]) <= {"1", "2"}


def test_redis_down_for_5_s_then_a_new_set_reaches_every_instance(redis_server, clip_path, tmp_path):
    store = RedisStore(redis_server.url)
    first = store.set("ds", configuration(strategy("tenth", share=0.1)))
    folders = [tmp_path / f"box{i}" for i in range(3)]
    processes = [instance(clip_path, folder, redis_server.url, redis_server.url, "--redis-fallback", "memory")
                 for folder in folders]
    try:
        assert wait_until(lambda: all(records(f) for f in folders), timeout=30)
        redis_server.stop()
        before = [len(records(f)) for f in folders]
        time.sleep(5)
        during = [records(f)[n:] for f, n in zip(folders, before, strict=True)]
        assert all(during) and all(r["config_sha"] == first.sha for rs in during for r in rs)  # kept collecting
        redis_server.start()  # without persistence: empty, its version numbers start over
        store = RedisStore(redis_server.url)
        second = store.set("ds", configuration(strategy("all")))
        assert wait_until(lambda: all(any(r["config_sha"] == second.sha for r in records(f)) for f in folders),
                          timeout=6)
    finally:
        errors = stop(processes)
    for folder, error in zip(folders, errors, strict=True):
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["config_sha"] == second.sha and "Traceback" not in error
        assert "the configuration store redis://127.0.0.1" in error and "is unavailable" in error  # said once...
        assert error.count("is unavailable (") <= 2  # ...per outage, not once a second (the limiter says it too)


# -- failures ------------------------------------------------------------------------------------------------------
def test_an_unreachable_store_at_start_exits_2_unless_a_configuration_is_cached(redis_server, clip_path, tmp_path):
    RedisStore(redis_server.url).set("ds", configuration(strategy("all")))
    url = redis_server.url
    args = ["run", str(clip_path), "--model", "stub", "--al-config", url, "--target", str(tmp_path / "ds"),
            "--config-cache", str(tmp_path / "cache"), "--no-progress"]
    assert framesift(*args).returncode == 0  # caches what it started with
    redis_server.stop()
    cached = framesift(*args)
    assert cached.returncode == 0, cached.stderr
    assert "starting with the configuration of 'ds' cached from an earlier run (version 1" in cached.stderr
    fresh = framesift(*args[:-3], "--config-cache", str(tmp_path / "empty"), "--no-progress")
    assert fresh.returncode == 2 and "Traceback" not in fresh.stderr
    assert fresh.stderr.strip().splitlines()[-1].startswith(f"framesift: the configuration store {url} is unavailable")
    assert "no configuration of 'ds' is cached here" in fresh.stderr


def test_a_configuration_written_by_hand_that_is_invalid_is_kept_out(redis_server, tmp_path, caplog):
    store = RedisStore(redis_server.url)
    first = store.set("ds", configuration(strategy("all")))
    collector = Collector(first.config, LocalDataset(tmp_path / "ds"))
    collector.follow(store, first, poll=0.2)
    client = redis.Redis.from_url(redis_server.url)
    document = json.dumps({"config": configuration(strategy("all", share=7.0)), "sha": "by-hand"})
    client.hset("framesift:{ds}:config:versions", "2", document)  # behind framesift's back
    client.set("framesift:{ds}:config:current", "2")
    assert wait_until(lambda: collector.snapshot().config_reloads_refused == 1, timeout=5)
    time.sleep(0.6)
    stats = collector.snapshot()
    assert stats.config_version == 1 and stats.config_reloads_refused == 1 and stats.config_reloads == 0
    assert "traffic_percentage: must be <= 1.0" in stats.config_store_error
    assert collector.submit(FRAME, StubPrediction("stub"))  # the configuration in force goes on
    collector.close()
    assert [r["config_version"] for r in read_records(tmp_path / "ds")] == [1]
    assert caplog.text.count("kept out of") == 1  # logged once, not at every poll


def test_a_file_edited_in_place_or_replaced_is_followed_and_a_broken_edit_kept_out(tmp_path):
    path = tmp_path / "al.yaml"
    path.write_text(json.dumps(configuration(strategy("one"))))
    store = FileStore(path)
    first = store.get("ds")
    collector = Collector(first.config, LocalDataset(tmp_path / "ds"))
    collector.follow(store, first, poll=2.0)
    path.write_text(json.dumps(configuration(strategy("two"))))  # edited in place
    assert wait_until(lambda: collector.config.sampling_strategies[0].name == "two", timeout=2)
    replacement = tmp_path / ".al.yaml.swp"
    replacement.write_text(json.dumps(configuration(strategy("three"))))
    os.replace(replacement, path)  # saved as editors do: a new file renamed over the old
    assert wait_until(lambda: collector.config.sampling_strategies[0].name == "three", timeout=2)
    path.write_text("enabled: [yes\n")  # a broken edit
    assert wait_until(lambda: collector.snapshot().config_reloads_refused == 1, timeout=2)
    assert collector.config.sampling_strategies[0].name == "three"
    stats = collector.snapshot()
    collector.close()
    assert stats.config_reloads == 2 and stats.config_version == 3


def test_the_roboflow_store_set_get_and_a_change_at_the_next_refresh(roboflow, clip_path, tmp_path):
    env = {"ROBOFLOW_API_URL": roboflow.url, "ROBOFLOW_API_KEY": ROBOFLOW_KEY}
    (tmp_path / "v1.json").write_text(json.dumps(configuration(strategy("first", share=0.2))))
    store = ["--store", "roboflow:acme"]
    assert framesift("config", "set", "ds", str(tmp_path / "v1.json"), *store, env=env).returncode == 0
    assert roboflow.configs["acme/ds"] == json.loads((tmp_path / "v1.json").read_text())
    assert json.loads(framesift("config", "get", "ds", *store, env=env).stdout) == roboflow.configs["acme/ds"]
    process = subprocess.Popen(
        [sys.executable, "-m", "framesift.cli", "run", str(clip_path), "--model", "stub", "--realtime", "--loop",
         "--al-config", "roboflow:acme", "--config-refresh", "1", "--target", str(tmp_path / "ds"),
         "--config-cache", str(tmp_path / "cache"), "--no-progress"], stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env})
    try:
        assert wait_until(lambda: any(r["strategy"] == "first" for r in read_records(tmp_path / "ds")), timeout=30)
        roboflow.configs["acme/ds"] = configuration(strategy("second"))  # changed in Roboflow's app
        assert wait_until(lambda: any(r["strategy"] == "second" for r in read_records(tmp_path / "ds")), timeout=4)
    finally:
        process.send_signal(signal.SIGTERM)
        error = process.communicate(timeout=60)[1]
    assert process.returncode == 0 and ROBOFLOW_KEY not in error
    versions = {r["strategy"]: r["config_version"] for r in read_records(tmp_path / "ds")}
    assert versions == {"first": 1, "second": 2}


def test_a_workflow_step_without_a_configuration_follows_its_datasets_in_the_store(redis_server, tmp_path):
    store = RedisStore(redis_server.url)
    store.set("crops", configuration(strategy("all")))
    definition = parse_workflow({
        "version": "1.0", "inputs": [{"type": "InferenceImage", "name": "image"}],
        "steps": [{"type": "ObjectDetectionModel", "name": "det", "image": "$inputs.image", "model_id": "stub"},
                  {"type": "ActiveLearningDataCollector", "name": "al", "image": "$inputs.image",
                   "predictions": "$steps.det.predictions", "target_dataset": "crops"}], "outputs": []})
    with pytest.raises(Exception, match="has no active_learning_configuration"):
        build_workflow(definition, target=str(tmp_path))
    workflow = build_workflow(definition, target=str(tmp_path), store=open_store(redis_server.url),
                              cache=ConfigCache(tmp_path / "cache"))
    collector = workflow.collectors["al"]
    assert collector.snapshot().config_version == 1
    changed = store.set("crops", configuration(strategy("changed")))
    assert wait_until(lambda: collector.snapshot().config_version == changed.version, timeout=2)
    workflow.close()
    assert isinstance(ConfigCache(tmp_path / "cache").load(redis_server.url, "crops"), StoredConfig)


def test_a_store_on_redis_needs_the_right_password(tmp_path, clip_path):
    server = RedisServer(free_port(), tmp_path, password="s3cret-pw")
    server.start()
    try:
        wrong = f"redis://:nope@127.0.0.1:{server.port}/0"
        (tmp_path / "c.json").write_text(json.dumps(configuration(strategy("all"))))
        for action in (["set", "ds", str(tmp_path / "c.json")], ["get", "ds"], ["history", "ds"]):
            refused = framesift("config", *action, "--store", wrong)
            assert refused.returncode == 2, refused.stderr  # as run's --redis: a usage error, not an outage
            assert refused.stderr.startswith(f"framesift: the configuration store redis://:***@127.0.0.1:"
                                             f"{server.port}/0 refused framesift's credentials (")
            assert "nope" not in refused.stderr and refused.stderr.count("\n") == 1
        assert framesift("config", "set", "ds", str(tmp_path / "c.json"), "--store", server.url).returncode == 0
        cache = tmp_path / "cache"
        args = ["run", str(clip_path), "--model", "stub", "--target", str(tmp_path / "ds"), "--config-cache",
                str(cache), "--no-progress", "--al-config"]
        assert framesift(*args, server.url).returncode == 0  # its configuration is cached now
        refused = framesift(*args, wrong)  # a wrong password is no outage: the cache is not used
        assert refused.returncode == 2 and "refused framesift's credentials" in refused.stderr, refused.stderr
        assert "cached from an earlier run" not in refused.stderr
    finally:
        server.stop()


def test_remote_uploads_say_which_configuration_selected_them(redis_server, roboflow, tmp_path):
    from framesift.dataset.labelstudio_tasks import LabelingInterface, Labels, labeling_config, task_json
    from tests.test_roboflow import target_for

    store = RedisStore(redis_server.url)
    first = store.set("people", configuration(strategy("all")))
    collector = Collector(first.config, target_for(roboflow, tmp_path / "outbox"))
    collector.follow(store, first)
    assert collector.submit(FRAME, StubPrediction("stub"))
    collector.close()
    [upload] = roboflow.uploads.values()
    assert upload.tags == ["framesift-config-1"]  # Roboflow's upload takes tags, no other metadata
    meta = {"id": "dp1", "batch": "b", "tags": [], "source": "cam", "frame_id": 1, "captured_at": "t",
            "strategy": "all", "width": 32, "height": 24, "model_id": "m", "prediction": None,
            "extra": {"config_version": 1, "config_sha": first.sha}}
    task = task_json(meta, "/data/x.jpg", LabelingInterface.parse(labeling_config(Labels())))
    assert task["data"]["config_version"] == 1 and task["data"]["config_sha"] == first.sha


def test_a_stored_version_written_by_hand_is_read_by_the_rules_of_a_file(redis_server, tmp_path, caplog):
    """A version nested too deeply raised RecursionError through `config get` (exit 1) and out of the follower's
    thread; a key given twice was taken silently (the last one). Both are kept out like an invalid
    configuration."""
    store = RedisStore(redis_server.url)
    first = store.set("ds", configuration(strategy("all")))
    collector = Collector(first.config, LocalDataset(tmp_path / "ds"))
    collector.follow(store, first, poll=0.2)
    client = redis.Redis.from_url(redis_server.url)
    versions = {2: '{"config": ' + "[" * 100_000 + "]" * 100_000 + "}",
                3: '{"config": {"enabled": true, "enabled": false}, "sha": "by-hand"}'}
    for version, document in versions.items():
        client.hset("framesift:{ds}:config:versions", str(version), document)  # behind framesift's back
        client.set("framesift:{ds}:config:current", str(version))
        assert wait_until(lambda v=version: collector.snapshot().config_reloads_refused == v - 1, timeout=10)
        result = framesift("config", "get", "ds", "--store", redis_server.url)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert ("nested too deeply" if version == 2 else "config: duplicate key 'enabled'") in result.stderr
    stats = collector.snapshot()  # the second refusal counted: the follower lived through the first
    collector.close()
    assert stats.config_version == 1 and stats.config_reloads == 0


def test_a_current_version_set_by_hand_that_is_no_number_is_kept_out_and_the_fleet_follows_on(redis_server,
                                                                                                clip_path, tmp_path):
    store = RedisStore(redis_server.url)
    first = store.set("ds", configuration(strategy("first", share=0.2)))
    port = free_port()
    process = instance(clip_path, tmp_path, redis_server.url, redis_server.url, "--metrics-port", str(port))
    try:
        assert wait_until(lambda: records(tmp_path), timeout=30)
        client = redis.Redis.from_url(redis_server.url)
        client.set("framesift:{ds}:config:current", "not-a-number")  # behind framesift's back
        client.publish("framesift:{ds}:config", "not-a-number")
        refused = re.compile(r"^framesift_config_reloads_refused_total(\{[^}]*\})? 1\.0$", re.M)
        assert wait_until(lambda: refused.search(scrape(port)), timeout=30)  # the follower read it, and lived
        client.publish("framesift:{ds}:config", "again")
        second = store.set("ds", configuration(strategy("second")))  # a later valid version is still followed
        assert wait_until(lambda: any(r["config_version"] == second.version for r in records(tmp_path)), timeout=10)
        assert process.poll() is None
    finally:
        [error] = stop([process])
    assert process.returncode == 0, error
    assert error.count("its current version is 'not-a-number', not a version number") == 1  # logged once
    assert "thread failed" not in error
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["config_reloads"], summary["config_reloads_refused"]) == (1, 1)
    assert {r["config_version"] for r in records(tmp_path)} == {first.version, second.version}
    got = framesift("config", "get", "ds", "--store", redis_server.url)
    assert got.returncode == 0  # the valid set replaced the value set by hand
    client.set("framesift:{ds}:config:current", "not-a-number")
    client.hset("framesift:{ds}:config:versions", "by-hand", "{}")
    client.hset("framesift:{ds}:config:versions", "3", json.dumps({"config": {}, "sha": "x", "set_at": "yesterday"}))
    got = framesift("config", "get", "ds", "--store", redis_server.url)
    assert got.returncode == 2 and got.stderr.count("\n") == 1 and "ValueError" not in got.stderr
    assert "its current version is 'not-a-number', not a version number" in got.stderr
    history = framesift("config", "history", "ds", "--store", redis_server.url)
    assert history.returncode == 0, history.stderr
    assert [line.split("\t")[:2] for line in history.stdout.splitlines()] == [["1", first.sha], ["2", second.sha],
                                                                             ["3", "x"]]


class FailingFileStore(FileStore):
    """A store whose reads fail with an error nobody expects after the first (a bug injected into our own code)."""

    def get(self, dataset: str, version: int | None = None) -> StoredConfig:
        if self._seen:
            raise RuntimeError("injected")
        return super().get(dataset, version)


def test_a_follower_that_dies_ends_the_run_even_when_no_frame_is_collected(clip_path, tmp_path):
    from framesift.errors import WorkerFailed
    from framesift.models import load_model
    from framesift.pipeline.pipeline import Pipeline
    from framesift.stream.sources import SourceOptions

    path = tmp_path / "al.json"
    path.write_text(json.dumps(configuration(strategy("none", share=0.0))))  # nothing is ever submitted
    store = FailingFileStore(path)
    first = store.get("ds")
    collector = Collector(first.config, LocalDataset(tmp_path / "ds"))
    collector.follow(store, first, poll=0.2)
    pipeline = Pipeline([str(clip_path)], load_model("stub"), collector,
                        options=SourceOptions(realtime=True, loop=True))
    pipeline.start()
    try:
        with pytest.raises(WorkerFailed, match="the configuration ds thread failed: RuntimeError: injected"):
            assert wait_until(lambda: pipeline.join(0.1), timeout=20)
    finally:
        pipeline.close()  # raised already by join: not again


def test_the_roboflow_store_refusing_the_key_or_answering_a_page_not_the_apis(roboflow, tmp_path):
    (tmp_path / "c.json").write_text(json.dumps(configuration(strategy("all"))))
    env = {"ROBOFLOW_API_URL": roboflow.url, "ROBOFLOW_API_KEY": "not-the-key"}
    store = ["--store", "roboflow:acme"]
    for action in (["set", "ds", str(tmp_path / "c.json")], ["get", "ds"]):
        refused = framesift("config", *action, *store, env=env)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr == ("framesift: the configuration store roboflow:acme refused the API key (HTTP 401): "
                                  "check --api-key or ROBOFLOW_API_KEY\n")
    roboflow.mode = "html"  # a captive portal answers in the API's place
    env["ROBOFLOW_API_KEY"] = ROBOFLOW_KEY
    answered = framesift("config", "get", "ds", *store, env=env)
    assert answered.returncode == 1 and answered.stderr.count("\n") == 1, answered.stderr
    assert "the answer was not the API's (HTTP 200, text/html; charset=utf-8;" in answered.stderr
    assert "holds no active-learning configuration" not in answered.stderr and ROBOFLOW_KEY not in answered.stderr


def test_a_version_nested_past_reading_is_kept_out_not_a_dead_follower(redis_server):
    from framesift.errors import ConfigError

    store = RedisStore(redis_server.url)
    store.set("ds", configuration(strategy("all")))
    client = redis.Redis.from_url(redis_server.url)
    client.hset("framesift:{ds}:config:versions", "2", "[" * 100_000 + "]" * 100_000)  # by hand: JSON 100,000 deep
    client.set("framesift:{ds}:config:current", "2")
    with pytest.raises(ConfigError, match=r"configuration 2 of 'ds' in redis://127.0.0.1:(.|\n)*nested too deeply"):
        store.get("ds")
    assert [v.sha for v in store.history("ds")][1] == "(damaged)"
