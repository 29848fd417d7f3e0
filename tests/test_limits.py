"""SPEC §4: sliding-window limits and the batch cap, atomic in memory and in a real Redis."""

from __future__ import annotations

import multiprocessing
import random

import pytest
import redis

from framesift.collectors.limits import (
    BatchCap,
    Candidate,
    FallbackLimiter,
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
    limiter = RedisLimiter(url)
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
