"""Model ids that resolve on the box (issue 23): a models folder maps Roboflow-style ids to ONNX files —
`<project>/<version>` to `<folder>/<project>/<version>.onnx`, a bare id to `<folder>/<id>.onnx` — through the CLI's
`run` and `validate`, with test-built models on real video."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from framesift import default_models_folder, load_model, read_records
from framesift.errors import ModelError
from framesift.models import StubModel
from tests.model_builders import build_model, squares_video

FRAMES = 4


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A models folder: `shapes/3` (a YOLO26-style end-to-end detector) and `shape-colour` (a classifier)."""
    root = tmp_path_factory.mktemp("box") / "models"
    (root / "shapes").mkdir(parents=True)
    build_model(root / "shapes" / "3.onnx", "detect", form="end2end")
    build_model(root / "shape-colour.onnx", "classify", size=64, dynamic_batch=True)
    return root


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return squares_video(tmp_path_factory.mktemp("video") / "squares.mp4", 320, 240, FRAMES)


def workflow(detector: str = "shapes/3", classifier: str = "shape-colour") -> dict:
    collect = {"enabled": True, "persist_predictions": True,
               "sampling_strategies": [{"name": "all", "type": "random", "traffic_percentage": 1.0}],
               "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}
    return {"version": "1.0", "inputs": [{"type": "InferenceImage", "name": "image"}],
            "steps": [
                {"type": "ObjectDetectionModel", "name": "det", "image": "$inputs.image", "model_id": detector,
                 "confidence": 0.3},
                {"type": "Crop", "name": "crop", "image": "$inputs.image", "predictions": "$steps.det.predictions"},
                {"type": "ClassificationModel", "name": "cls", "image": "$steps.crop.crops", "model_id": classifier},
                {"type": "ActiveLearningDataCollector", "name": "frames", "image": "$inputs.image",
                 "predictions": "$steps.det.predictions", "target_dataset": "frames",
                 "active_learning_configuration": collect},
                {"type": "ActiveLearningDataCollector", "name": "crops", "image": "$steps.crop.crops",
                 "predictions": "$steps.cls.top", "target_dataset": "crops",
                 "active_learning_configuration": collect}],
            "outputs": []}


def framesift(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framesift.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={**os.environ, **(env or {})})


def test_a_workflow_of_model_ids_validates_and_runs_given_the_folder(folder, clip, tmp_path):
    """`<project>/<version>` and `yolov8n-640`-style ids passed validate and failed at run: nothing mapped an id to
    a file on the box."""
    (tmp_path / "wf.json").write_text(json.dumps(workflow()))
    checked = framesift("validate", "wf.json", "--models", str(folder), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines() == ["valid workflow (5 steps, 2 collectors)",
                                           f"models: det {folder}/shapes/3.onnx, cls {folder}/shape-colour.onnx"]
    result = framesift("run", str(clip), "--workflow", "wf.json", "--models", str(folder), "--target", "datasets",
                       "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frames = list(read_records(tmp_path / "datasets" / "frames"))
    crops = list(read_records(tmp_path / "datasets" / "crops"))
    assert len(frames) == FRAMES and len(crops) == 3 * FRAMES
    for dataset, records, model_id in (("frames", frames, "shapes/3"), ("crops", crops, "shape-colour")):
        for record in records:
            prediction = json.loads((tmp_path / "datasets" / dataset / record["prediction"]).read_text())
            assert prediction["model_id"] == model_id  # the id, not the file's name
    assert sorted(json.loads((tmp_path / "datasets" / "crops" / r["prediction"]).read_text())["top"]
                  for r in crops) == sorted(["blue", "green", "red"] * FRAMES)


def test_an_id_that_resolves_nowhere_is_one_sentence_naming_where_it_looked(folder, clip, tmp_path):
    (tmp_path / "wf.json").write_text(json.dumps(workflow(detector="shapes/4")))
    expected = (f"framesift: step 'det': model id 'shapes/4' names no model on this machine: there is no "
                f"{folder}/shapes/4.onnx (export the model to ONNX there, or give the models folder with --models "
                "DIR)\n")
    checked = framesift("validate", "wf.json", "--models", str(folder), cwd=tmp_path)
    assert (checked.returncode, checked.stdout, checked.stderr) == (2, "", expected)
    result = framesift("run", str(clip), "--workflow", "wf.json", "--models", str(folder), "--no-progress",
                       cwd=tmp_path)
    assert (result.returncode, result.stderr) == (2, expected)
    assert not (tmp_path / "framesift-data").exists()


@pytest.mark.parametrize("model_id", ["../secret", "shapes/../../secret", "/abs/secret", "a/b/c", ".hidden",
                                      "shapes/.."])
def test_ids_never_name_a_file_outside_the_folder(folder, tmp_path, model_id):
    """Only `<name>` and `<name>/<name>` are ids: `<folder>/../secret.onnx` exists, and is never loaded."""
    shutil.copy(folder / "shapes" / "3.onnx", folder.parent / "secret.onnx")
    (tmp_path / "wf.json").write_text(json.dumps(workflow(detector=model_id)))
    checked = framesift("validate", "wf.json", "--models", str(folder), cwd=tmp_path)
    assert checked.returncode == 2
    assert checked.stderr == (f"framesift: step 'det': model file not found: {model_id} (nor is it a model id: "
                              "<project>/<version>, or a name such as yolov8n-640)\n")


def test_the_default_folder_is_under_the_users_data_folder_and_model_takes_ids_too(folder, clip, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(folder, data / "framesift" / "models")
    (tmp_path / "all.json").write_text(json.dumps(workflow()["steps"][3]["active_learning_configuration"]))
    result = framesift("run", str(clip), "--model", "shapes/3", "--al-config", "all.json", "--target", "ds",
                       "--no-progress", cwd=tmp_path, env={"XDG_DATA_HOME": str(data)})
    assert result.returncode == 0, result.stderr
    [record, *_] = list(read_records(tmp_path / "ds"))
    assert json.loads((tmp_path / "ds" / record["prediction"]).read_text())["model_id"] == "shapes/3"


def test_the_python_api(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_models_folder() == tmp_path / "xdg" / "framesift" / "models"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_models_folder() == Path.home() / ".local" / "share" / "framesift" / "models"
    model = load_model("shapes/3", models=folder)
    assert model.model_id == "shapes/3" and model.task_type == "object-detection"
    with pytest.raises(ModelError, match="names no model on this machine: there is no "):
        load_model("shapes/3", models=tmp_path)
    (tmp_path / "people").mkdir()
    shutil.copy(folder / "shapes" / "3.onnx", tmp_path / "people" / "0.onnx")
    null = load_model("people/0", models=tmp_path)  # a dataset's null model, whatever the folder holds
    assert isinstance(null, StubModel) and null.model_id == "people/0"
