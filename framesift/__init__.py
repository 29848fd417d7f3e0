"""framesift: edge active learning on live video.

The public API is re-exported here and imported lazily, so `import framesift` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ActiveLearningConfig": "framesift.collectors.config",
    "ConfigError": "framesift.collectors.config",
    "load_config": "framesift.collectors.config",
    "parse_config": "framesift.collectors.config",
    "Collector": "framesift.collectors.collector",
    "LocalDataset": "framesift.collectors.targets.local",
    "open_target": "framesift.collectors.targets",
    "Labels": "framesift.collectors.targets.labelstudio_format",
    "RoboflowTarget": "framesift.collectors.targets.roboflow",
    "LabelStudioTarget": "framesift.collectors.targets.labelstudio",
    "Outbox": "framesift.collectors.targets.outbox",
    "MemoryLimiter": "framesift.collectors.limits",
    "RedisLimiter": "framesift.collectors.limits",
    "FallbackLimiter": "framesift.collectors.limits",
    "open_limiter": "framesift.collectors.limits",
    "export_dataset": "framesift.collectors.export",
    "DetectionPrediction": "framesift.predictions",
    "ClassificationPrediction": "framesift.predictions",
    "StubPrediction": "framesift.predictions",
    "prediction_from_json": "framesift.predictions",
    "load_model": "framesift.models",
    "RunOptions": "framesift.run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'framesift' has no attribute {name!r}")
