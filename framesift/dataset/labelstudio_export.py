"""An offline Label Studio export (`framesift export --format labelstudio`): the tasks the live target would send.

```
OUT/
  tasks.json            # Label Studio's import format: one task per datapoint, its prediction a pre-annotation
  labeling_config.xml   # the project's labeling configuration, built from the dataset's classes
  images/<id>.jpg
```

Each task is built by the live target's own function (`labelstudio_format.task_json`) from the datapoint's record,
so an exported task and a delivered one differ only in the image's URL: `image_prefix` + the image's file name
(by default `/data/local-files/?d=images/`, Label Studio's local files when its document root is OUT).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framesift.dataset.labelstudio_tasks import (
    EXTRA_TASK_FIELDS,
    LabelingInterface,
    Labels,
    labeling_config,
    task_json,
)
from framesift.errors import InputError
from framesift.predictions import ClassificationPrediction, DetectionPrediction, prediction_from_json

if TYPE_CHECKING:
    from framesift.dataset.records import Item


def write_tasks(items: Sequence[Item], out: Path, image_prefix: str) -> None:
    """Write the tasks, the labeling configuration and the images of `items` under `out`."""
    labels = dataset_labels(items)
    config = labeling_config(labels)
    interface = LabelingInterface.parse(config)
    (out / "images").mkdir(parents=True, exist_ok=True)
    tasks = []
    for item in items:
        name = Path(item.image).name
        shutil.copyfile(item.image, out / "images" / name)
        tasks.append(task_json(record_meta(item.record, item.prediction, item.captured_at), image_prefix + name,
                               interface))
    (out / "labeling_config.xml").write_text(config + "\n")
    (out / "tasks.json").write_text(json.dumps(tasks, indent=1))


def record_meta(record: dict[str, Any], prediction: dict[str, Any] | None, captured_at: datetime) -> dict[str, Any]:
    """A record as the metadata an outbox entry holds (what the live target makes its task of)."""
    return {**record, "prediction": prediction, "captured_at": captured_at.isoformat(),
            "extra": {key: record[key] for key in EXTRA_TASK_FIELDS if key in record}}


def dataset_labels(items: Sequence[Item]) -> Labels:
    """What the dataset's project labels: its one task type and every class (and keypoint) its predictions name."""
    task_types = sorted({str(item.record.get("task_type", "object-detection")) for item in items})
    if len(task_types) > 1:
        raise InputError(f"the dataset holds {' and '.join(task_types)} datapoints; a Label Studio project labels "
                         "one task type")
    classes: set[str] = set()
    keypoints: list[str] = []
    multi_label = False
    for item in items:
        if item.prediction is None:
            continue
        parsed = prediction_from_json(item.prediction)
        if isinstance(parsed, DetectionPrediction):
            classes.update(parsed.class_name)
            keypoints = keypoints or list(parsed.keypoint_names or [])
        elif isinstance(parsed, ClassificationPrediction):
            classes.update(parsed.class_names)
            multi_label = multi_label or parsed.multi_label
    return Labels(task_types[0] if task_types else "object-detection", tuple(sorted(classes)), tuple(keypoints),
                  multi_label)
