"""framesift: edge active learning on live video.

The public API, flat and typed: `from framesift import Pipeline, load_model, Collector, run, ...`. Names are
imported on first use, so `import framesift` stays light (the command line starts in milliseconds); type checkers
read the imports below.

Example:
    >>> import framesift
    >>> framesift.parse_config({"enabled": False}).enabled
    False
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from framesift.version import __version__

if TYPE_CHECKING:  # the public names; `_EXPORTS` below says where each lives (a test keeps the two in step)
    from framesift.collectors.budgets.limits import FallbackLimiter, MemoryLimiter, RedisLimiter, open_limiter
    from framesift.collectors.collector import Collector
    from framesift.collectors.config.schema import ActiveLearningConfig, load_config, parse_config
    from framesift.collectors.targets import Target, open_target
    from framesift.collectors.targets.labelstudio import LabelStudioTarget
    from framesift.collectors.targets.local import LocalDataset
    from framesift.collectors.targets.outbox import Outbox, describe
    from framesift.collectors.targets.roboflow import RoboflowTarget
    from framesift.collectors.targets.schemes import Opening, TargetSpec, register_target
    from framesift.dataset.export import ExportResult, export_dataset
    from framesift.dataset.labelstudio_tasks import Labels
    from framesift.dataset.records import read_records
    from framesift.errors import (
        CollectionFailed,
        ConfigError,
        DeliveryError,
        FramesiftError,
        InputError,
        LimitStoreError,
        ModelError,
        OutboxFull,
        OutboxInUse,
        PermanentError,
        RetryableError,
        SourceError,
        TargetError,
        WorkerFailed,
    )
    from framesift.frames import Frame, SourceSpec
    from framesift.models import default_models_folder, load_model
    from framesift.models.model import Model
    from framesift.observe.exposition import MetricsServer
    from framesift.observe.live import LivePage
    from framesift.pipeline.pipeline import Pipeline
    from framesift.pipeline.sinks import AnnotatedVideo, PredictionsFile
    from framesift.predictions import (
        ClassificationPrediction,
        DetectionPrediction,
        Prediction,
        StubPrediction,
        as_prediction,
        prediction_from_json,
    )
    from framesift.report import Report, write_report
    from framesift.run_options import RunOptions
    from framesift.runner import RunSummary, build_pipeline, run
    from framesift.signals import StopSignals
    from framesift.stats import CollectorStats, OutboxStats, SinkStats, SourceStats, StrategyStats, StreamStats
    from framesift.stream.sources import SourceOptions
    from framesift.workflows.build import build_workflow
    from framesift.workflows.definition import WorkflowDefinition, load_workflow_definition, parse_workflow
    from framesift.workflows.engine import FrameResult, Region, Workflow

_EXPORTS = {
    "framesift.collectors.collector": ["Collector"],
    "framesift.collectors.config.schema": ["ActiveLearningConfig", "load_config", "parse_config"],
    "framesift.dataset.export": ["ExportResult", "export_dataset"],
    "framesift.collectors.budgets.limits": ["FallbackLimiter", "MemoryLimiter", "RedisLimiter", "open_limiter"],
    "framesift.collectors.targets": ["Target", "open_target"],
    "framesift.collectors.targets.labelstudio": ["LabelStudioTarget"],
    "framesift.dataset.labelstudio_tasks": ["Labels"],
    "framesift.collectors.targets.local": ["LocalDataset"],
    "framesift.dataset.records": ["read_records"],
    "framesift.collectors.targets.outbox": ["Outbox", "describe"],
    "framesift.collectors.targets.roboflow": ["RoboflowTarget"],
    "framesift.collectors.targets.schemes": ["Opening", "TargetSpec", "register_target"],
    "framesift.errors": ["CollectionFailed", "ConfigError", "DeliveryError", "FramesiftError", "InputError",
                         "LimitStoreError", "ModelError", "OutboxFull", "OutboxInUse", "PermanentError",
                         "RetryableError", "SourceError", "TargetError", "WorkerFailed"],
    "framesift.models": ["default_models_folder", "load_model"],
    "framesift.models.model": ["Model"],
    "framesift.predictions": ["ClassificationPrediction", "DetectionPrediction", "Prediction", "StubPrediction",
                              "as_prediction", "prediction_from_json"],
    "framesift.report": ["Report", "write_report"],
    "framesift.run_options": ["RunOptions"],
    "framesift.runner": ["RunSummary", "build_pipeline", "run"],
    "framesift.signals": ["StopSignals"],
    "framesift.stats": ["CollectorStats", "OutboxStats", "SinkStats", "SourceStats", "StrategyStats", "StreamStats"],
    "framesift.observe.exposition": ["MetricsServer"],
    "framesift.frames": ["Frame", "SourceSpec"],
    "framesift.observe.live": ["LivePage"],
    "framesift.pipeline.pipeline": ["Pipeline"],
    "framesift.pipeline.sinks": ["AnnotatedVideo", "PredictionsFile"],
    "framesift.stream.sources": ["SourceOptions"],
    "framesift.workflows.build": ["build_workflow"],
    "framesift.workflows.definition": ["WorkflowDefinition", "load_workflow_definition", "parse_workflow"],
    "framesift.workflows.engine": ["FrameResult", "Region", "Workflow"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
        globals()[name] = value  # the next access is a plain attribute
        return value
    raise AttributeError(f"module 'framesift' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
