"""Active learning: configuration, strategies, limits, batches, image preparation, targets, the collector."""

from framesift.collectors.budgets.limits import FallbackLimiter, MemoryLimiter, RedisLimiter, open_limiter
from framesift.collectors.collector import Collector
from framesift.collectors.config.schema import ActiveLearningConfig, load_config, parse_config
from framesift.collectors.targets import LocalDataset, open_target

__all__ = [
    "ActiveLearningConfig",
    "Collector",
    "FallbackLimiter",
    "LocalDataset",
    "MemoryLimiter",
    "RedisLimiter",
    "load_config",
    "open_limiter",
    "open_target",
    "parse_config",
]
