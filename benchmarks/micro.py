"""Micro-benchmarks of the sampler's decisions: one `submit`, one memory-limiter and one Redis-limiter decision.

Run: `python benchmarks/micro.py` (starts its own redis-server on 127.0.0.1). Prints a Markdown section.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framesift.configs import path as config_path  # noqa: E402

from framesift.collectors import Collector, LocalDataset, MemoryLimiter, RedisLimiter, load_config  # noqa: E402
from framesift.collectors.limits import BatchCap, Candidate  # noqa: E402
from framesift.predictions import DetectionPrediction  # noqa: E402
from tests.servers import RedisServer, free_port  # noqa: E402


def per_call_us(fn, calls: int, repeats: int = 5) -> tuple[float, float, float]:
    """Median, min and max over `repeats` of the mean µs per call."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples), min(samples), max(samples)


def prediction(n: int) -> DetectionPrediction:
    rng = np.random.default_rng(0)
    return DetectionPrediction.from_lists(
        "object-detection", "bench/1", (1920, 1080), xyxy=rng.uniform(0, 1000, (n, 4)),
        confidence=rng.uniform(0, 1, n), class_name=[("person", "car", "bike")[i % 3] for i in range(n)])


def main() -> str:
    rows = []
    frame = np.zeros((1080, 1920, 3), np.uint8)
    with tempfile.TemporaryDirectory() as work:
        config = load_config(config_path("realistic.yaml"))
        for n in (0, 10, 100):
            # a 1-item queue: almost every matching datapoint is dropped at once, which is the cost we want
            collector = Collector(config, LocalDataset(Path(work) / f"ds{n}"), max_queue_items=1, seed=0)
            p = prediction(n)
            rows.append((f"`submit` (realistic config, {n} detections)",
                         per_call_us(lambda c=collector, p=p: c.submit(frame, p), 20_000), "0"))
            collector.close(timeout=1)

        candidates = [Candidate("random_sample", ((60, 10**9), (86400, 10**9))), Candidate("uncertain", ((60, 10**9),))]
        memory = MemoryLimiter()
        rows.append(("memory limiter decision (2 strategies, 3 limits)",
                     per_call_us(lambda: memory.decide("ds", candidates, BatchCap("b", 10**9)), 20_000), "0"))

        server = RedisServer(free_port(), Path(work))
        server.start()
        try:
            import redis

            limiter = RedisLimiter(server.url)
            limiter.decide("ds", candidates, BatchCap("b", 10**9))
            probe = redis.Redis.from_url(server.url)
            probe.config_resetstat()
            timing = per_call_us(lambda: limiter.decide("ds", candidates, BatchCap("b", 10**9)), 2_000)
            sent = probe.info("commandstats")["cmdstat_evalsha"]["calls"]
            rows.append(("Redis limiter decision (2 strategies, 3 limits, loopback)", timing,
                         f"{sent / (5 * 2_000):.2f}"))
        finally:
            server.stop()

    lines = ["## Micro: sampler decisions", "",
             "| operation | µs per call, median (min–max of 5) | round trips |", "|---|---|---|"]
    for name, (median, low, high), trips in rows:
        lines.append(f"| {name} | {median:.1f} ({low:.1f}–{high:.1f}) | {trips} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main())
