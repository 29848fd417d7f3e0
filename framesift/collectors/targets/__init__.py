"""Where registered datapoints go: the local dataset folder (`LocalDataset`), or through a durable outbox to
Roboflow (`RoboflowTarget`) or Label Studio (`LabelStudioTarget`). Each target is one module registering its
scheme (`framesift.collectors.targets.schemes`); `TargetSpec.parse` reads a target's text."""

from __future__ import annotations

import os

from framesift.collectors.targets.datapoint import Datapoint
from framesift.collectors.targets.local import LocalDataset
from framesift.collectors.targets.schemes import Opening, Target, TargetSpec, register_target
from framesift.dataset.labelstudio_tasks import Labels
from framesift.defaults import OUTBOX, OUTBOX_MAX_BYTES


def open_target(spec: str, *, api_key: str | None = None, outbox: str | os.PathLike[str] = OUTBOX,
                outbox_max_bytes: int = OUTBOX_MAX_BYTES, labels: Labels | None = None, exclusive: bool = False,
                shared: bool = False) -> Target:
    """A target from its command-line form: `roboflow:<dataset>`, `labelstudio:<project>`, a registered scheme's
    `<scheme>:<name>`, or a folder path (the local dataset).

    A remote target's outbox lives in `outbox/<scheme>-<name>`. Without `api_key`, Roboflow's key comes from
    `ROBOFLOW_API_KEY`, Label Studio's from `LABEL_STUDIO_API_KEY` (its server from `LABEL_STUDIO_URL`). `labels`
    (the model's task and classes) set up a Label Studio project that does not exist yet. `exclusive`: a local
    dataset's budgets are spent by this process alone (a run without Redis; see `LocalDataset`); `shared`: other
    processes write it too (a fleet's, with Redis).
    """
    return TargetSpec.parse(spec).open(api_key=api_key, outbox=outbox, outbox_max_bytes=outbox_max_bytes,
                                       labels=labels, exclusive=exclusive, shared=shared)


__all__ = ["Datapoint", "Labels", "LocalDataset", "Opening", "Target", "TargetSpec", "open_target",
           "register_target"]
