"""Where registered datapoints go: the local dataset folder (`LocalDataset`), or Roboflow through a durable
outbox (`RoboflowTarget`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from framesift.collectors.datapoint import Datapoint
from framesift.collectors.targets.local import LocalDataset


class Target(Protocol):
    name: str  # the dataset name that namespaces the limits

    def batch_count(self, batch: str) -> int:
        """How many datapoints the batch held before this process started writing to it."""
        ...

    def register(self, datapoint: Datapoint) -> dict[str, Any]: ...

    def close(self) -> None: ...


def open_target(spec: str, *, api_key: str | None = None, outbox: str | os.PathLike[str] = "framesift-outbox",
                outbox_max_bytes: int = 1 << 30) -> Target:
    """A target from its command-line form: `roboflow:<dataset>`, or a folder path (the local dataset).

    A remote target's outbox lives in `outbox/<scheme>-<dataset>`; its API key defaults to `ROBOFLOW_API_KEY`.
    """
    scheme, _, dataset = spec.partition(":")
    if spec.startswith("labelstudio:"):
        raise ValueError("the Label Studio target is not available yet; use roboflow:<dataset> or a local folder")
    if spec.startswith("roboflow:"):
        from framesift.collectors.targets.outbox import Outbox
        from framesift.collectors.targets.roboflow import RoboflowTarget

        if not dataset or "/" in dataset:
            raise ValueError(f"bad target {spec!r}: expected roboflow:<dataset>")
        box = Outbox(Path(outbox) / f"{scheme}-{dataset}", outbox_max_bytes)
        return RoboflowTarget(dataset, api_key or os.environ.get("ROBOFLOW_API_KEY", ""), box)
    return LocalDataset(spec)


__all__ = ["Datapoint", "LocalDataset", "Target", "open_target"]
