"""Where registered datapoints go. Today: the local dataset folder (`LocalDataset`)."""

from __future__ import annotations

from typing import Any, Protocol

from framesift.collectors.datapoint import Datapoint
from framesift.collectors.targets.local import LocalDataset

REMOTE_SCHEMES = ("roboflow:", "labelstudio:")


class Target(Protocol):
    name: str  # the dataset name that namespaces the limits

    def batch_count(self, batch: str) -> int:
        """How many datapoints the batch held before this process started writing to it."""
        ...

    def register(self, datapoint: Datapoint) -> dict[str, Any]: ...

    def close(self) -> None: ...


def open_target(spec: str) -> Target:
    """A target from its command-line form: a folder path (the local dataset)."""
    if spec.startswith(REMOTE_SCHEMES):
        raise ValueError(f"remote target {spec.split(':', 1)[0]!r} is not available yet; use a local folder")
    return LocalDataset(spec)


__all__ = ["Datapoint", "LocalDataset", "Target", "open_target"]
