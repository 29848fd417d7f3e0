"""Configuration reloads: how soon a `set` on the fleet's Redis is in force in a running collector.

- told by the store's message (the normal case);
- when the message is lost (the version written without it): the follower's poll, once a second.

Run: `python benchmarks/reload.py` (starts its own redis-server on 127.0.0.1). Prints a Markdown section. The time
to the first record of a new version on three running `framesift run` instances is measured by
`pytest -s tests/test_config_store.py -k three`.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framesift import Collector, LocalDataset  # noqa: E402
from framesift.collectors.config.store import RedisStore, content_sha  # noqa: E402
from tests.servers import RedisServer, free_port  # noqa: E402

SETS = 10


def configuration(share: float) -> dict[str, Any]:
    return {"enabled": True, "persist_predictions": False,
            "sampling_strategies": [{"name": "s", "type": "random", "traffic_percentage": share}],
            "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}


def in_force(collector: Collector, version: int) -> None:
    while collector.snapshot().config_version != version:
        time.sleep(0.001)


def main() -> str:
    import redis

    notified, polled = [], []
    with tempfile.TemporaryDirectory() as work:
        server = RedisServer(free_port(), Path(work))
        server.start()
        try:
            store = RedisStore(server.url)
            first = store.set("ds", configuration(0.5))
            collector = Collector(first.config, LocalDataset(Path(work) / "ds"))
            collector.follow(RedisStore(server.url), first, poll=1.0)
            time.sleep(0.5)  # the follower subscribes
            client = redis.Redis.from_url(server.url)
            for i in range(SETS):
                started = time.monotonic()
                new = store.set("ds", configuration(0.1 + i / 100))
                in_force(collector, new.version)
                notified.append(time.monotonic() - started)
                data, version = configuration(0.2 + i / 100), new.version + 1  # written without its message
                client.incr("framesift:{ds}:config:seq")
                client.hset("framesift:{ds}:config:versions", str(version),
                            json.dumps({"config": data, "sha": content_sha(data), "set_at": time.time()}))
                started = time.monotonic()
                client.set("framesift:{ds}:config:current", version)
                in_force(collector, version)
                polled.append(time.monotonic() - started)
            collector.close()
        finally:
            server.stop()

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1e3:.0f} ({min(values) * 1e3:.0f}–{max(values) * 1e3:.0f})"

    return "\n".join([
        f"## Configuration reloads (Redis on loopback; ms from `set` to in force, median (min–max of {SETS}))", "",
        "| how the collector learns of it | ms |", "|---|---|",
        f"| the store's message | {ms(notified)} |",
        f"| the message lost: the follower's poll (every second) | {ms(polled)} |", ""])


if __name__ == "__main__":
    print(main())
