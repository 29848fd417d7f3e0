"""Sampling strategies as plug-ins (issue 25): each is one file, registered in one registry that the configuration
knows its types, fields and messages from; a strategy registered from outside the package is configured and
samples a real run like framesift's own."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import av
import cv2
import numpy as np
import pytest
from pydantic import Field

from framesift import Collector, ConfigError, LocalDataset, Pipeline, SourceSpec, load_model, parse_config, read_records
from framesift.collectors.sampling import strategies
from framesift.collectors.sampling.strategies import (
    Probability,
    RandomStrategy,
    Strategy,
    decided_without_image,
    register,
    registered,
    strategy_types,
    unregister,
)
from framesift.collectors.sampling.strategies.registry import type_of
from framesift.predictions import DetectionPrediction, Prediction
from tests.helpers import installed_plugin
from tests.model_builders import BGR, build_model

SMALL, LARGE = 24, 100  # sides of the squares, in a 320×240 frame: 0.75 % and 13 % of it


class LargeObjects(Strategy):
    """A detection whose box covers at least `min_share` of the frame."""

    type: Literal["large_objects"]
    min_share: Annotated[float, Field(gt=0.0, le=1.0)]
    probability: Probability

    def evidence(self, prediction: Prediction, state: Any) -> dict[str, Any] | None:
        if not isinstance(prediction, DetectionPrediction):
            return None
        width, height = prediction.image_size
        x1, y1, x2, y2 = prediction.xyxy.T
        shares = (x2 - x1) * (y2 - y1) / (width * height)
        large = np.flatnonzero(shares >= self.min_share)
        return {"boxes": large.tolist(), "share": round(float(shares.max()), 3)} if large.size else None


class FirstOfItsClass(Strategy):
    """A class detected for the first time on its source: it keeps, per source, the classes seen there."""

    type: Literal["first_of_its_class"]
    probability: Probability

    def new_state(self) -> set[str]:
        return set()

    def evidence(self, prediction: Prediction, state: set[str] | None) -> dict[str, Any] | None:
        if state is None or not isinstance(prediction, DetectionPrediction):
            return None
        new = sorted(set(prediction.class_name) - state)
        state.update(new)
        return {"classes": new} if new else None


@pytest.fixture
def plugins() -> Iterator[None]:
    register(LargeObjects)
    register(FirstOfItsClass)
    yield
    unregister(LargeObjects)
    unregister(FirstOfItsClass)


def configuration(*sampling_strategies: dict[str, Any]) -> dict[str, Any]:
    return {"enabled": True, "persist_predictions": True, "sampling_strategies": list(sampling_strategies),
            "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    return raised.value.problems


LARGE_AT_5 = {"name": "large", "type": "large_objects", "min_share": 0.05, "probability": 1.0}


@pytest.fixture(scope="module")
def clip_and_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Ten frames: a small red square on frames 0-4, a large one on frames 5-9, a small green one from frame 3."""
    folder = tmp_path_factory.mktemp("plugins")
    path = folder / "squares.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"qp": "0"}  # lossless: the model finds the squares where they are
        for f in range(10):
            frame = np.full((240, 320, 3), 90, np.uint8)
            x, y, side = (20, 20, SMALL) if f < 5 else (150, 100, LARGE)
            cv2.rectangle(frame, (x, y), (x + side - 1, y + side - 1), BGR["red"], -1)
            if f >= 3:
                cv2.rectangle(frame, (250, 30), (250 + SMALL - 1, 30 + SMALL - 1), BGR["green"], -1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode(None))
    return path, build_model(folder / "det.onnx", "detect", size=160)


def test_a_strategy_registered_from_outside_samples_a_real_run(plugins, clip_and_model, tmp_path):
    clip, model = clip_and_model
    other = tmp_path / "other.mp4"
    other.write_bytes(clip.read_bytes())
    config = parse_config(configuration(LARGE_AT_5, {"name": "first", "type": "first_of_its_class",
                                                     "probability": 1.0}))
    assert [type(s) for s in config.sampling_strategies] == [LargeObjects, FirstOfItsClass]
    collector = Collector(config, LocalDataset(tmp_path / "ds"))
    detector = load_model(str(model), confidence=0.3)
    with Pipeline([SourceSpec(str(clip), "a"), SourceSpec(str(other), "b")], detector, collector) as pipeline:
        pipeline.run()
    records = sorted(read_records(tmp_path / "ds"), key=lambda r: (r["source"], r["frame_id"]))
    for source in (str(clip), str(other)):  # each source has its own state: its own first red, first green
        mine = [r for r in records if r["source"] == source]
        assert [(r["frame_id"], r["strategy"]) for r in mine] == \
            [(0, "first"), (3, "first"), *((f, "large") for f in range(5, 10))]
        assert [r["selected_because"]["classes"] for r in mine[:2]] == [["red"], ["green"]]
        for record in mine[2:]:  # the large red square's box, as the record's prediction holds it
            assert record["selected_because"]["share"] == pytest.approx(LARGE * LARGE / (320 * 240), abs=0.01)
            boxes = json.loads((tmp_path / "ds" / record["prediction"]).read_text())["predictions"]
            assert [boxes[i]["class"] for i in record["selected_because"]["boxes"]] == ["red"]
    stats = collector.snapshot().strategies
    assert (stats["large"].registered, stats["first"].registered) == (10, 4)


def test_a_registered_strategy_is_validated_with_the_configuration_s_own_messages(plugins):
    assert problems(configuration({**LARGE_AT_5, "min_share": 1.5})) == \
        ["sampling_strategies[0].min_share: must be <= 1.0"]
    assert problems(configuration({**LARGE_AT_5, "min_shar": 0.1})) == \
        ["sampling_strategies[0].min_shar: unknown field (did you mean 'min_share'?)"]
    assert problems(configuration({"name": "l", "type": "large_objects", "probability": 1.0})) == \
        ["sampling_strategies[0].min_share: required"]
    assert problems(configuration({"name": "x", "type": "huge_objects"})) == [
        f"sampling_strategies[0]: unknown strategy type 'huge_objects' (expected one of "
        f"{', '.join(strategy_types())})"]
    assert strategy_types()[-2:] == ("large_objects", "first_of_its_class")
    unregister(LargeObjects)  # forgotten: a configuration naming it is refused again
    assert problems(configuration(LARGE_AT_5))[0].startswith("sampling_strategies[0]: unknown strategy type")


def test_only_a_strategy_that_reads_no_image_lets_a_frame_be_drawn_before_decoding(plugins):
    large = parse_config(configuration(LARGE_AT_5)).sampling_strategies
    assert not decided_without_image(large, stub_model=False)
    assert decided_without_image(large, stub_model=True)  # the stub's predictions: only `random` ones match
    every = RandomStrategy(name="r", type="random", traffic_percentage=1.0)
    assert decided_without_image([every], stub_model=False)


def test_registering_refuses_what_cannot_be_a_strategy():
    class Untyped(Strategy):
        probability: Probability

    class Chanceless(Strategy):
        type: Literal["chanceless"]

    class Taken(Strategy):
        type: Literal["random"]
        probability: Probability

    with pytest.raises(TypeError, match="declares its type as type: Literal"):
        register(Untyped)
    with pytest.raises(TypeError, match="has no field 'probability'"):
        register(Chanceless)
    with pytest.raises(ValueError, match="a strategy of type 'random' is already registered"):
        register(Taken)
    assert "chanceless" not in strategy_types() and registered()[0] is RandomStrategy


def test_each_strategy_of_framesift_is_one_file_named_after_its_type():
    folder = Path(strategies.__file__).parent
    files = {path.stem for path in folder.glob("*.py")} - {"__init__", "base", "registry"}
    assert {strategy.__module__.rsplit(".", 1)[1]: type_of(strategy) for strategy in registered()} == \
        {name: name for name in files}


EVERY_OTHER = '''
from typing import Any, ClassVar, Literal

from framesift.collectors.sampling.strategies import Probability, Strategy, register


@register
class EveryOther(Strategy):
    """Every other frame of a source (its state counts the frames)."""

    needs_image: ClassVar[bool] = False
    type: Literal["every_other"]
    probability: Probability = 1.0

    def new_state(self) -> Any:
        return [0]

    def evidence(self, prediction, state):
        state[0] += 1
        return {"frame": state[0]} if state[0] % 2 else None
'''


def plugin_config(tmp_path: Path) -> Path:
    config = {"enabled": True, "persist_predictions": True, "sampling_strategies": [
        {"name": "half", "type": "every_other", "limits": [{"type": "minutely", "value": 1000}]}],
        "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never",
                              "max_batch_images": 1000}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_a_packages_entry_point_brings_its_strategy_to_the_command_line(clip_path, tmp_path):
    env = installed_plugin(tmp_path / "site", "framesift.strategies", "every_other", "my_strategies", EVERY_OTHER)
    config = plugin_config(tmp_path)
    cli = [sys.executable, "-m", "framesift.cli"]
    checked = subprocess.run([*cli, "validate", str(config)], capture_output=True, text=True, env=env, timeout=300)
    assert checked.returncode == 0, checked.stderr
    result = subprocess.run([*cli, "run", str(clip_path), "--model", "stub", "--al-config", str(config),
                             "--target", str(tmp_path / "ds"), "--no-progress"], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    frames = sorted(record["frame_id"] for record in read_records(tmp_path / "ds"))
    assert frames and frames == list(range(frames[0], frames[0] + 2 * len(frames), 2))  # every other one


def test_a_strategy_plug_in_that_cannot_be_loaded_is_one_sentence(tmp_path):
    env = installed_plugin(tmp_path / "site", "framesift.strategies", "every_other", "missing_strategies", None)
    result = subprocess.run([sys.executable, "-m", "framesift.cli", "validate", str(plugin_config(tmp_path))],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == "framesift: the sampling strategy plug-in every_other (missing_strategies) cannot be " \
                            "loaded: ModuleNotFoundError: No module named 'missing_strategies'\n"
