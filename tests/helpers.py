"""Small builders shared by the tests (configurations, frames)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from framesift.collectors.config import ActiveLearningConfig, parse_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # the example configurations shipped with framesift
ROBOFLOW_KEY = "rf-secret-key-9f8e7d"  # the key the Roboflow stand-in (the `roboflow` fixture) accepts


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


def wait_until(condition, timeout: float = 120.0) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; returns its last value. The bound is generous
    (a busy machine: load 15 on 2 cores): it only ends a wait for what will never come."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class SlowModel:
    """The bundled demo model, made slower by a fixed delay per call (a heavier model on a small machine); or the
    stub (`model="stub"`), when a test needs a model that takes `delay` however busy the machine is."""

    def __init__(self, delay: float, model: str = "demo"):
        from framesift.models import load_model

        self._model = load_model(model, confidence=0.5)
        self.delay = delay
        self.task_type, self.model_id, self.class_names = "object-detection", "slow", self._model.class_names
        self.max_batch, self.input_size = self._model.max_batch, self._model.input_size
        self.prepare = self._model.prepare

    def infer(self, inputs):
        time.sleep(self.delay)
        return self._model.infer(inputs)


def load_script(name: str) -> Any:
    """A script of `scripts/` (`report_screenshot`, ...) imported as a module, so a test runs what the README's
    pictures were made with."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
