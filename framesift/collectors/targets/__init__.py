"""Where registered datapoints go: the local dataset folder (`LocalDataset`), or through a durable outbox to
Roboflow (`RoboflowTarget`) or Label Studio (`LabelStudioTarget`)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Protocol

from framesift.collectors.targets.datapoint import Datapoint
from framesift.collectors.targets.local import LocalDataset
from framesift.dataset.labelstudio_tasks import Labels
from framesift.stats import OutboxStats


class Target(Protocol):
    name: str  # the dataset name that namespaces the limits

    def batch_count(self, batch: str) -> int:
        """How many datapoints the batch held before this process started writing to it."""
        ...

    def register(self, datapoint: Datapoint) -> dict[str, Any]: ...

    def start(self) -> None:
        """Start what delivers the datapoints (a remote target's outbox sender); idempotent. The collector that owns
        the target calls it when it starts."""
        ...

    def check(self) -> None:
        """Raise `WorkerFailed` when a thread of the target (a remote one's outbox sender) has died."""
        ...

    def stats(self) -> OutboxStats | None:
        """A remote target's outbox; None for a local dataset."""
        ...

    def close(self, timeout: float = 10.0) -> None:
        """Finish (idempotent); a remote target first delivers what is pending for up to `timeout` seconds."""
        ...


def open_target(spec: str, *, api_key: str | None = None, outbox: str | os.PathLike[str] = "framesift-outbox",
                outbox_max_bytes: int = 1 << 30, labels: Labels | None = None, exclusive: bool = False,
                shared: bool = False) -> Target:
    """A target from its command-line form: `roboflow:<dataset>`, `labelstudio:<project>`, or a folder path (the
    local dataset).

    A remote target's outbox lives in `outbox/<scheme>-<name>`. Without `api_key`, Roboflow's key comes from
    `ROBOFLOW_API_KEY`, Label Studio's from `LABEL_STUDIO_API_KEY` (its server from `LABEL_STUDIO_URL`). `labels`
    (the model's task and classes) set up a Label Studio project that does not exist yet. `exclusive`: a local
    dataset's budgets are spent by this process alone (a run without Redis; see `LocalDataset`); `shared`: other
    processes write it too (a fleet's, with Redis).
    """
    scheme, _, name = spec.partition(":")
    if scheme == "roboflow":
        from framesift.collectors.targets.roboflow import RoboflowTarget

        return RoboflowTarget(name, api_key or os.environ.get("ROBOFLOW_API_KEY", ""), _outbox(outbox, spec),
                              outbox_max_bytes=outbox_max_bytes)
    if scheme == "labelstudio":
        from framesift.collectors.targets.labelstudio import DEFAULT_URL, LabelStudioTarget

        return LabelStudioTarget(name, os.environ.get("LABEL_STUDIO_URL") or DEFAULT_URL,
                                 api_key or os.environ.get("LABEL_STUDIO_API_KEY", ""), _outbox(outbox, spec),
                                 labels=labels, outbox_max_bytes=outbox_max_bytes)
    return LocalDataset(spec, exclusive=exclusive, shared=shared)


def dataset_name(spec: str) -> str:
    """The dataset a target spec names (its limits and its configuration are keyed by it): the name after
    `roboflow:` or `labelstudio:`, or a folder's base name."""
    scheme, colon, name = spec.partition(":")
    if colon and scheme in ("roboflow", "labelstudio"):
        return name
    return Path(spec).resolve().name


def _outbox(root: str | os.PathLike[str], spec: str) -> Path:
    """`root/<scheme>-<name>`, the name reduced to characters safe in a folder name."""
    scheme, _, name = spec.partition(":")
    return Path(root) / f"{scheme}-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}"


__all__ = ["Datapoint", "Labels", "LocalDataset", "Target", "dataset_name", "open_target"]
