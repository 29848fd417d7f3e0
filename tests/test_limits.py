"""SPEC §4: sliding-window limits and the batch cap, atomic in memory and in a real Redis."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from framesift.collectors.budgets.limits import (
    BatchCap,
    Candidate,
    FallbackLimiter,
    LimitFill,
    MemoryLimiter,
    Outcome,
    RedisLimiter,
    open_limiter,
)
from framesift.errors import LimitStoreError
from tests.servers import RedisServer, free_port

NO_CAP = BatchCap("batch", None)


class FakeClock:
    """An injectable clock (time is the one thing tests may control)."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiters(redis_server, clock):
    yield MemoryLimiter(clock)
    yield RedisLimiter(redis_server.url, clock=clock)


def admitted_times(limiter, clock, times, candidate):
    accepted = []
    for t in times:
        clock.now = t
        if limiter.decide("ds", [candidate], NO_CAP).accepted:
            accepted.append(t)
    return accepted


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_sliding_window_never_admits_more_than_n_in_any_span(kind, redis_server):
    clock = FakeClock(0.0)
    limiter = MemoryLimiter(clock) if kind == "memory" else RedisLimiter(redis_server.url, clock=clock)
    rng = random.Random(3)
    # attempts bunched around minute boundaries (a calendar-minute counter would admit 2N across 59.9 s..60.1 s)
    times = sorted({round(rng.uniform(0, 600), 3) for _ in range(900)} | {59.9, 59.95, 60.0, 60.05, 60.1, 119.99})
    accepted = admitted_times(limiter, clock, times, Candidate("s", ((60, 5),)))
    for start in accepted:
        assert sum(start <= t < start + 60 for t in accepted) <= 5
    assert len(accepted) >= 5 * 9  # and the budget is used: about N per window over 10 minutes
    limiter.close()


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_boundary_of_the_window_is_exact(kind, redis_server):
    clock = FakeClock(1000.0)
    limiter = MemoryLimiter(clock) if kind == "memory" else RedisLimiter(redis_server.url, clock=clock)
    one = Candidate("s", ((60, 1),))
    assert admitted_times(limiter, clock, [1000.0, 1059.999, 1060.0], one) == [1000.0, 1060.0]


@pytest.mark.parametrize("kind", ["memory", "redis", "redis-clock"])
def test_each_limits_fill_and_next_credit_are_read_without_spending_any(kind, redis_server):
    clock = FakeClock(1000.0)
    if kind == "memory":
        limiter = MemoryLimiter(clock)
    elif kind == "redis":
        limiter = RedisLimiter(redis_server.url, clock=clock)
    else:  # the fleet's clock: the Redis server's, with times from it
        limiter = RedisLimiter(redis_server.url)
        clock.now = float(redis.Redis.from_url(redis_server.url).time()[0])
    crowded = Candidate("crowded", ((60, 2), (3600, 50)))
    other = Candidate("other", ((60, 3),))
    assert limiter.fill("ds", [crowded, other]) == [
        LimitFill("crowded", 60, 2, 0, None), LimitFill("crowded", 3600, 50, 0, None),
        LimitFill("other", 60, 3, 0, None)]
    for at in (clock.now, clock.now + 10, clock.now + 20):  # the third is refused: 2 a minute
        limiter.decide("ds", [crowded], NO_CAP, at=at)
    fills = limiter.fill("ds", [crowded, other], at=clock.now + 30)
    assert [(f.strategy, f.window_s, f.max, f.used) for f in fills] == [
        ("crowded", 60, 2, 2), ("crowded", 3600, 50, 2), ("other", 60, 3, 0)]
    assert fills[0].next_credit_s == pytest.approx(30) and fills[1].next_credit_s == pytest.approx(3570)
    assert limiter.fill("ds", [crowded], at=clock.now + 30) == fills[:2]  # reading spent nothing
    later = limiter.fill("ds", [crowded], at=clock.now + 65)  # the first use has left the minute
    assert (later[0].used, later[0].next_credit_s) == (1, pytest.approx(5))
    limiter.close()


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_first_matching_strategy_with_credit_wins_and_only_its_limits_are_consumed(kind, redis_server):
    clock = FakeClock()
    limiter = MemoryLimiter(clock) if kind == "memory" else RedisLimiter(redis_server.url, clock=clock)
    first = Candidate("first", ((60, 1), (3600, 10)))
    second = Candidate("second", ((60, 2),))
    picks = [limiter.decide("ds", [first, second], NO_CAP) for _ in range(4)]
    assert [d.strategy for d in picks[:3]] == ["first", "second", "second"]
    assert picks[3].outcome is Outcome.NO_CREDIT
    clock.now += 61  # first's minutely window frees up; its hourly one has 9 credits left
    assert limiter.decide("ds", [first, second], NO_CAP).strategy == "first"


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_budgets_are_keyed_by_dataset_and_strategy_name(kind, redis_server):
    clock = FakeClock()
    limiter = MemoryLimiter(clock) if kind == "memory" else RedisLimiter(redis_server.url, clock=clock)
    s = Candidate("s", ((60, 1),))
    assert limiter.decide("a", [s], NO_CAP).accepted
    assert not limiter.decide("a", [s], NO_CAP).accepted  # same dataset and name: shared budget
    assert limiter.decide("b", [s], NO_CAP).accepted  # another dataset
    assert limiter.decide("a", [Candidate("t", ((60, 1),))], NO_CAP).accepted  # another strategy


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_batch_cap_counts_what_was_already_there(kind, redis_server):
    limiter = MemoryLimiter() if kind == "memory" else RedisLimiter(redis_server.url)
    cap = BatchCap("b1", max_images=5, already_there=3)
    outcomes = [limiter.decide("ds", [Candidate("s")], cap).outcome for _ in range(4)]
    assert outcomes == [Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.BATCH_FULL, Outcome.BATCH_FULL]
    assert limiter.decide("ds", [Candidate("s")], BatchCap("b2", 5)).accepted  # a new batch starts empty


def test_a_redis_decision_is_one_round_trip(redis_server):
    limiter = RedisLimiter(redis_server.url)
    candidates = [Candidate("a", ((60, 1),)), Candidate("b", ((60, 100), (3600, 1000)))]
    limiter.decide("ds", candidates, BatchCap("b", 1000))  # loads the script
    probe = redis.Redis.from_url(redis_server.url)
    probe.config_resetstat()
    for _ in range(50):
        limiter.decide("ds", candidates, BatchCap("b", 1000))
    calls = {name: stats["calls"] for name, stats in probe.info("commandstats").items()}
    # what the client sent: 50 EVALSHA; everything else counted is run inside the script, server-side
    assert calls.pop("cmdstat_evalsha") == 50
    assert set(calls) <= {"cmdstat_zremrangebyscore", "cmdstat_zcard", "cmdstat_zadd", "cmdstat_expire",
                          "cmdstat_get", "cmdstat_set", "cmdstat_time", "cmdstat_config|resetstat"}


def _hammer(url: str, dataset: str, attempts: int, cap: int | None, results) -> None:
    limiter = RedisLimiter(url, timeout=10)  # the product's 0.5 s timed out on a machine loaded 18 times over
    accepted = sum(limiter.decide(dataset, [Candidate("busy", ((60, 50),))], BatchCap("b", cap)).accepted
                   for _ in range(attempts))
    results.put(accepted)


def _run_processes(url: str, dataset: str, cap: int | None) -> int:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    workers = [ctx.Process(target=_hammer, args=(url, dataset, 40, cap, results)) for _ in range(8)]
    for w in workers:
        w.start()
    total = sum(results.get(timeout=300) for _ in workers)  # eight interpreters start: slow on a busy machine
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    return total


def test_eight_processes_on_one_redis_admit_exactly_the_limit(redis_server):
    assert _run_processes(redis_server.url, "fleet", cap=None) == 50  # 320 attempts, limit 50 per minute


def test_batch_cap_holds_under_the_same_concurrency(redis_server):
    assert _run_processes(redis_server.url, "capped", cap=17) == 17


def test_redis_stopped_mid_run_pause_policy(redis_server):
    limiter = FallbackLimiter(RedisLimiter(redis_server.url, timeout=0.2), "pause", retry_interval=0.0)
    assert limiter.decide("ds", [Candidate("s")], NO_CAP).accepted
    redis_server.stop()
    outcomes = [limiter.decide("ds", [Candidate("s")], NO_CAP).outcome for _ in range(3)]
    assert outcomes == [Outcome.STORE_UNAVAILABLE] * 3
    health = limiter.health()
    assert not health.available and health.unavailable_decisions == 3 and "is unreachable" in health.last_error
    redis_server.start()
    assert limiter.decide("ds", [Candidate("s")], NO_CAP).accepted
    assert limiter.health().available


def test_redis_stopped_mid_run_memory_policy_uses_local_budgets(redis_server, caplog):
    limiter = FallbackLimiter(RedisLimiter(redis_server.url, timeout=0.2), "memory", retry_interval=60)
    redis_server.stop()
    limited = [Candidate("s", ((60, 2),))]
    assert [limiter.decide("ds", limited, NO_CAP).accepted for _ in range(3)] == [True, True, False]
    assert limiter.health().unavailable_decisions == 3
    assert "is unreachable" in caplog.text


def test_unreachable_redis_costs_at_most_one_short_timeout_per_retry_interval(redis_server):
    import time

    limiter = FallbackLimiter(RedisLimiter(redis_server.url, timeout=0.3), "pause", retry_interval=60)
    redis_server.stop()
    started = time.monotonic()
    for _ in range(100):
        limiter.decide("ds", [Candidate("s")], NO_CAP)
    assert time.monotonic() - started < 5  # 100 decisions, one connection attempt


def test_unknown_fallback_policy_is_refused(redis_server):
    with pytest.raises(ValueError, match="unknown Redis fallback policy"):
        FallbackLimiter(RedisLimiter(redis_server.url), "drop")


def test_a_wrong_password_at_start_is_a_usage_error_naming_no_secret(tmp_path):
    server = RedisServer(free_port(), tmp_path, password="right-horse-battery")
    server.start()
    try:
        wrong = f"redis://:wrong-staple-9@127.0.0.1:{server.port}/0"
        with pytest.raises(LimitStoreError, match="refused framesift's credentials") as raised:
            open_limiter(wrong)
        assert "wrong-staple-9" not in str(raised.value) and ":***@" in str(raised.value)
        with open_limiter(server.url) as limiter:  # the right one works
            assert limiter.decide("ds", [Candidate("s")], NO_CAP).accepted
    finally:
        server.stop()


def test_a_password_changed_while_running_is_counted_and_said_like_an_outage(tmp_path, caplog):
    import redis

    server = RedisServer(free_port(), tmp_path, password="first-pass")
    server.start()
    try:
        limiter = FallbackLimiter(RedisLimiter(server.url, timeout=0.5), "pause", retry_interval=0.0)
        assert limiter.decide("ds", [Candidate("s")], NO_CAP).accepted
        admin = redis.Redis.from_url(server.url)
        admin.config_set("requirepass", "second-pass")
        admin.client_kill_filter(_type="normal", skipme=False)  # every connection must log in again
        outcomes = [limiter.decide("ds", [Candidate("s")], NO_CAP).outcome for _ in range(3)]
        assert outcomes == [Outcome.STORE_UNAVAILABLE] * 3
        health = limiter.health()
        assert not health.available and health.unavailable_decisions == 3
        assert "refused framesift's credentials" in health.last_error and "first-pass" not in health.last_error
        assert "refused framesift's credentials" in caplog.text
        limiter.close()
    finally:
        server.stop()


def _framesift(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framesift.cli", *args], capture_output=True, text=True, timeout=120)


def _collect_all(folder: Path) -> Path:
    path = folder / "all.json"
    path.write_text(json.dumps({"enabled": True, "persist_predictions": False, "sampling_strategies": [
        {"name": "all", "type": "random", "traffic_percentage": 1.0}],
        "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}))
    return path


def test_a_redis_password_with_at_slash_colon_hash_not_percent_encoded_is_refused_before_connecting(tmp_path,
                                                                                                    clip_path):
    password = "p@ss/w:rd#1"
    server = RedisServer(free_port(), tmp_path, password=password)
    server.start()
    try:
        raw = f"redis://:{password}@127.0.0.1:{server.port}/0"  # parsed by urllib as host `ss`
        config = _collect_all(tmp_path)
        for args in (["run", str(clip_path), "--model", "stub", "--al-config", str(config), "--redis", raw,
                      "--target", str(tmp_path / "ds"), "--summary", str(tmp_path / "summary.json")],
                     ["config", "get", "ds", "--store", raw], ["config", "set", "ds", str(config), "--store", raw]):
            refused = _framesift(*args)
            assert refused.returncode == 2, refused.stderr
            assert refused.stderr == (f"framesift: the Redis URL redis://:***@127.0.0.1:{server.port}/0 does not "
                                      "parse: its password holds @, /, : or # that are not percent-encoded (write @ "
                                      "as %40, / as %2F, : as %3A, # as %23)\n")
        assert not (tmp_path / "summary.json").exists() and not (tmp_path / "ds").exists()
        encoded = f"redis://:{quote(password, safe='')}@127.0.0.1:{server.port}/0"  # the same, percent-encoded
        ran = _framesift("run", str(clip_path), "--model", "stub", "--al-config", str(config), "--redis", encoded,
                         "--target", str(tmp_path / "ds"), "--no-progress")
        assert ran.returncode == 0 and "collected 60 datapoints" in ran.stderr, ran.stderr
    finally:
        server.stop()


@pytest.mark.parametrize("password", ["p@ss/w:rd#1", "s3cr@t@", "a:b:c", "x%2Fy?z", "uniq-ue-pass"])
def test_no_password_shape_reaches_the_log_the_summary_or_an_error(tmp_path, clip_path, password):
    port = free_port()  # nobody listens there: the run goes on with local budgets, saying why in log and summary
    url = f"redis://:{quote(password, safe='')}@127.0.0.1:{port}/0"
    if password == "s3cr@t@" or password == "a:b:c":
        url = f"redis://:{password}@127.0.0.1:{port}/0"  # shapes urllib parses right even unencoded
    ran = _framesift("run", str(clip_path), "--model", "stub", "--al-config", str(_collect_all(tmp_path)), "--redis",
                     url, "--redis-fallback", "memory", "--target", str(tmp_path / "ds"), "--no-progress",
                     "--summary", str(tmp_path / "summary.json"))
    assert ran.returncode == 0, ran.stderr
    summary = (tmp_path / "summary.json").read_text()
    shown = f"redis://:***@127.0.0.1:{port}/0"
    assert shown in ran.stderr and shown in summary
    for text in (ran.stderr, summary):
        assert password not in text and quote(password, safe="") not in text and url not in text
        assert not any(part in text for part in password.replace("@", " ").replace(":", " ").split() if len(part) > 2
                       and part not in ("127", "0.0"))


def _per_minute(folder: Path, limit: int) -> Path:
    path = folder / "five.json"
    path.write_text(json.dumps({"enabled": True, "persist_predictions": False, "sampling_strategies": [
        {"name": "five", "type": "random", "traffic_percentage": 1.0, "limits": [{"type": "minutely",
                                                                                  "value": limit}]}],
        "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}))
    return path


def _admitted(record: dict) -> float:
    from datetime import datetime

    return datetime.fromisoformat(record.get("admitted_at", record["captured_at"]).replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("clock", ["--wall-clock", "--no-progress"])  # live decisions, then the recording's clock
def test_restarts_without_redis_keep_a_local_datasets_budget(tmp_path, clip_path, clock):
    from framesift import read_records

    config = _per_minute(tmp_path, 5)
    for _ in range(3):  # three runs of 60 frames within a minute: the limit holds across them
        ran = _framesift("run", str(clip_path), "--model", "stub", "--al-config", str(config), "--target",
                         str(tmp_path / "ds"), "--no-progress", clock)
        assert ran.returncode == 0, ran.stderr
    times = sorted(_admitted(r) for r in read_records(tmp_path / "ds"))
    assert len(times) == 5
    assert all(later - earlier >= 60 for earlier, later in zip(times, times[5:], strict=False))  # any 60 s: ≤ 5


def test_a_second_process_writing_a_local_dataset_without_redis_is_refused(tmp_path, clip_path):
    from framesift import read_records
    from tests.helpers import wait_until

    config = _per_minute(tmp_path, 1000)
    args = [sys.executable, "-m", "framesift.cli", "run", str(clip_path), "--model", "stub", "--al-config",
            str(config), "--target", str(tmp_path / "ds"), "--no-progress", "--realtime", "--loop"]
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: any(True for _ in read_records(tmp_path / "ds")), timeout=30)
        second = _framesift(*args[3:-2])
        assert second.returncode == 2
        assert second.stderr == (f"framesift: another framesift process (pid {first.pid}) writes the dataset "
                                 f"{tmp_path / 'ds'} without --redis: each would spend the whole budget of every "
                                 "limit; let it finish, or give both --redis redis://host:port/db to share the "
                                 "budgets\n")
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.communicate(timeout=60)[0] is None and first.returncode == 0
    after = _framesift(*args[3:-2])  # the lock went with the first process
    assert after.returncode == 0, after.stderr


def test_two_datasets_of_one_folder_in_one_process_share_its_budgets_lock(tmp_path, clip_path):
    from framesift import LocalDataset

    config = _per_minute(tmp_path, 5)
    command = ["run", str(clip_path), "--model", "stub", "--al-config", str(config), "--target", str(tmp_path / "ds"),
               "--no-progress"]
    first, second = LocalDataset(tmp_path / "ds", exclusive=True), LocalDataset(tmp_path / "ds", exclusive=True)
    first.close()
    first.close()  # idempotent: it gives up its share once
    refused = _framesift(*command)  # the second still holds it
    assert refused.returncode == 2 and f"(pid {os.getpid()}) writes the dataset" in refused.stderr
    second.close()
    assert _framesift(*command).returncode == 0
