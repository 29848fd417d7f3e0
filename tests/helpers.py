"""Small builders shared by the tests (configurations, frames)."""

from __future__ import annotations

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
