"""Small builders shared by the tests (configurations, frames)."""

from __future__ import annotations

import time
from typing import Any

from framesift.collectors.config import ActiveLearningConfig, parse_config


def collect_all_config(**overrides: Any) -> ActiveLearningConfig:
    """A configuration whose one random strategy takes every frame."""
    data: dict[str, Any] = {
        "enabled": True,
        "persist_predictions": True,
        "sampling_strategies": [{"name": "all", "type": "random", "traffic_percentage": 1.0}],
        "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"},
    }
    data.update(overrides)
    return parse_config(data)


def wait_until(condition, timeout: float = 30.0) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
