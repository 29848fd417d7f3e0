"""Small builders shared by the tests (configurations, frames, datasets edited by hand)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from framesift.collectors.config.schema import ActiveLearningConfig, parse_config

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


def point_records_outside(root: Path, outside: Path) -> list[tuple[str, str]]:
    """Append records edited by hand to the dataset `root`, each a copy of its first record whose image or
    prediction lies outside it: the system's files, files in the folder `outside` beside it (two JPEGs with one
    base name), a link inside the dataset pointing out. Returns each one's (id, why it is left out)."""
    from framesift.dataset.records import read_records

    first = next(read_records(root))
    outside.mkdir()
    for name in ("other.jpg", "twin/other.jpg"):
        (outside / name).parent.mkdir(exist_ok=True)
        (outside / name).write_bytes((root / first["image"]).read_bytes())
    link = Path(first["image"]).with_name("link.jpg").as_posix()
    (root / link).symlink_to(outside / "other.jpg")
    beside = f"../{outside.name}"
    images = {"absolute": "/etc/hostname", "climbs": "../../../../etc/passwd", "beside": f"{beside}/other.jpg",
              "beside_twin": f"{beside}/twin/other.jpg", "absolute_jpeg": str(outside / "other.jpg"), "link": link}
    with open(root / "datapoints.jsonl", "a") as f:
        for name, image in images.items():
            f.write(json.dumps({**first, "id": name, "image": image}) + "\n")
        f.write(json.dumps({**first, "id": "prediction_out", "prediction": f"{beside}/p.json"}) + "\n")
    return [*((name, f"its image {image} is outside the dataset folder") for name, image in images.items()),
            ("prediction_out", f"its prediction {beside}/p.json is outside the dataset folder")]


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


class RecordedSession:
    """A model's real ONNX Runtime session, noting the batch size of every run it is given (it still runs them)."""

    def __init__(self, session: Any):
        self._session, self.batches = session, []

    def run(self, outputs: Any, feeds: dict[str, Any]) -> Any:
        self.batches.append(next(iter(feeds.values())).shape[0])
        return self._session.run(outputs, feeds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def as_on_a_gpu(model: Any) -> RecordedSession:
    """Make an `OnnxModel` on the CPU take the GPU's batching, and note the batch of every run its session gets."""
    model.on_gpu = True
    model._session = session = RecordedSession(model._session)
    return session


def installed_plugin(site: Path, group: str, name: str, module: str, source: str | None) -> dict[str, str]:
    """An environment in which a distribution in `site` names `module` (written from `source` unless None) as its
    entry point `name` of the group `group`, as pip would install it."""
    info = site / f"{module}_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    if source is not None:
        (site / f"{module}.py").write_text(source)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {module}\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).resolve().parent.parent)])}
