"""SPEC §8: the Label Studio target, against a real Label Studio server on 127.0.0.1.

The server is installed in its own virtual environment (`scripts/label-studio.sh`) and started once per test
session (tests/servers.py); each test works in its own project.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import requests

from framesift.collectors.targets import open_target
from framesift.collectors.targets.datapoint import Datapoint
from framesift.collectors.targets.labelstudio import LabelStudioTarget
from framesift.collectors.targets.outbox import Outbox, RetryableError, describe
from framesift.dataset.labelstudio_tasks import (
    LabelingInterface,
    Labels,
    labeling_config,
    prediction_json,
    task_json,
)
from framesift.predictions import ClassificationPrediction, DetectionPrediction
from framesift.runner import RunOptions, run
from tests import model_builders
from tests.helpers import wait_until
from tests.model_builders import build_model, scene
from tests.servers import LABEL_STUDIO_TOKEN, LabelStudioServer

WIDTH, HEIGHT = 320, 240
TOLERANCE = 100 * 1.5 / WIDTH  # 1.5 pixels, in percent of the width (the wider side)


# -- the format, without a server -----------------------------------------------------------------------------------
@pytest.mark.parametrize("task,controls", [
    ("object-detection", {"rectanglelabels": "label"}),
    ("instance-segmentation", {"polygonlabels": "label"}),
    ("keypoint-detection", {"rectanglelabels": "label", "keypointlabels": "keypoint"}),
    ("classification", {"choices": "class"}),
])
def test_a_new_projects_configuration_names_the_models_classes(task, controls):
    names = ("car", 'a "quoted" <odd> & name')
    config = labeling_config(Labels(task, names, ("nose", "tail")))
    interface = LabelingInterface.parse(config)
    assert interface == LabelingInterface("image", "image", controls)
    labels = [tag.get("value") for tag in ET.fromstring(config).iter() if tag.tag in ("Label", "Choice")]
    assert labels == [*names, *(("nose", "tail") if task == "keypoint-detection" else ())]


def test_an_existing_projects_own_names_are_used():
    config = ('<View><Header value="look"/><Image name="img" value="$photo"/>'
              '<Choices name="weather" toName="other"><Choice value="sun"/></Choices>'
              '<RectangleLabels name="boxes" toName="img"><Label value="red"/></RectangleLabels></View>')
    interface = LabelingInterface.parse(config)
    assert interface == LabelingInterface("img", "photo", {"rectanglelabels": "boxes"})
    task = task_json(meta(prediction=detection_json()), "/data/upload/1/x.jpg", interface)
    assert task["data"]["photo"] == "/data/upload/1/x.jpg" and "image" not in task["data"]
    assert {r["from_name"] for r in task["predictions"][0]["result"]} == {"boxes"}
    with pytest.raises(ValueError, match="no Image tag"):
        LabelingInterface.parse('<View><Text name="t" value="$text"/></View>')


def test_a_prediction_with_nothing_to_pre_annotate_is_left_out_of_the_task():
    """No detections (or none the project has a control for): an empty pre-annotation reads as "nothing here"."""
    interface = LabelingInterface.parse(labeling_config(Labels("object-detection", ("car",))))
    empty = {**detection_json(), "predictions": []}
    task = task_json(meta(prediction=empty), "/data/upload/1/x.jpg", interface)
    assert "predictions" not in task and task["data"]["datapoint_id"] == meta()["id"]
    no_control = LabelingInterface.parse('<View><Image name="img" value="$image"/></View>')
    assert "predictions" not in task_json(meta(prediction=detection_json()), "/data/upload/1/x.jpg", no_control)
    assert task_json(meta(prediction=detection_json()), "/data/upload/1/x.jpg", interface)["predictions"]


def test_boxes_polygons_and_keypoints_in_percent_of_the_image():
    interface = LabelingInterface.parse(labeling_config(Labels("keypoint-detection", ("dog",), ("nose", "tail"))))
    prediction = DetectionPrediction.from_lists(
        "keypoint-detection", "m/1", (200, 100), xyxy=[[20, 10, 60, 90]], confidence=[0.8], class_name=["dog"],
        keypoints=[[[30, 20, 0.9], [50, 50, 0.2]]], keypoint_names=["nose", "tail"]).to_json()
    out = prediction_json(prediction, 200, 100, "m/1", interface)
    box, nose = out["result"]  # the tail's keypoint is not visible (confidence 0.2): not pre-annotated
    assert box["value"].pop("rectanglelabels") == ["dog"]
    assert box["value"] == pytest.approx({"x": 10.0, "y": 10.0, "width": 20.0, "height": 80.0, "rotation": 0})
    assert box["score"] == pytest.approx(0.8) and out["score"] == pytest.approx(0.8) and out["model_version"] == "m/1"
    assert nose["value"]["x"] == pytest.approx(15.0) and nose["value"]["y"] == pytest.approx(20.0)
    assert nose["value"]["keypointlabels"] == ["nose"] and nose["original_width"] == 200

    polygons = LabelingInterface.parse(labeling_config(Labels("instance-segmentation", ("dog",))))
    segment = DetectionPrediction.from_lists(
        "instance-segmentation", "m/1", (200, 100), xyxy=[[20, 10, 60, 90]], confidence=[0.7], class_name=["dog"],
        polygons=[[[20, 10], [60, 10], [240, 90]]]).to_json()
    [polygon] = prediction_json(segment, 200, 100, "m/1", polygons)["result"]
    assert polygon["type"] == "polygonlabels" and polygon["value"]["polygonlabels"] == ["dog"]
    assert np.allclose(polygon["value"]["points"], [[10.0, 10.0], [30.0, 10.0], [100.0, 90.0]])  # clipped


def test_classification_becomes_the_chosen_class():
    interface = LabelingInterface.parse(labeling_config(Labels("classification", ("cat", "dog"))))
    prediction = ClassificationPrediction("m/1", (64, 48), ["cat", "dog"], np.array([0.3, 0.7], np.float32))
    out = prediction_json(prediction.to_json(), 64, 48, "m/1", interface)
    assert [r["value"] for r in out["result"]] == [{"choices": ["dog"]}]
    assert out["score"] == pytest.approx(0.7)


def test_the_offline_export_writes_the_tasks_the_live_target_sends(tmp_path):
    """`framesift export --format labelstudio`: for a box that cannot reach the server, the same tasks (the live
    target's, built from the outbox's entry) with the image's URL under --image-prefix."""
    from framesift.collectors import Collector, LocalDataset
    from framesift.predictions import StubPrediction
    from tests.helpers import collect_all_config

    frame, truth = scene(WIDTH, HEIGHT)
    detections = DetectionPrediction.from_lists("object-detection", "m/1", (WIDTH, HEIGHT), xyxy=list(truth.values()),
                                                confidence=[0.9, 0.41, 0.66], class_name=list(truth))
    config = collect_all_config(tags=["dock"], target_project="people")
    with Collector(config, LocalDataset(tmp_path / "ds")) as collector:
        for frame_id, prediction in enumerate([detections, StubPrediction("stub"), detections]):
            assert collector.submit(frame, prediction, source="rtsp://cam-1/stream", frame_id=frame_id)
    datapoints = collector.latest()
    assert len(datapoints) == 3
    with Outbox(tmp_path / "outbox") as outbox:  # what the live target queues, then sends
        for datapoint in datapoints:
            outbox.add(datapoint)
        interface = LabelingInterface.parse(labeling_config(Labels("object-detection", tuple(sorted(truth)))))
        live = {}
        while (entry := outbox.oldest()) is not None:
            live[entry.id] = task_json(entry.meta, f"/data/upload/1/{entry.id}.jpg", interface)
            outbox.remove(entry)
    out = tmp_path / "ls"
    result = subprocess.run([sys.executable, "-m", "framesift.cli", "export", str(tmp_path / "ds"), "--format",
                             "labelstudio", "--out", str(out), "--image-prefix", "http://files.local/dock/"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "exported 3 images" in result.stdout, result.stderr
    exported = json.loads((out / "tasks.json").read_text())
    assert len(exported) == 3 and sum("predictions" in t for t in exported) == 2  # the stub's has none
    for task in exported:
        name = task["data"]["datapoint_id"]
        assert task["data"].pop("image") == f"http://files.local/dock/{name}.jpg"
        assert (out / "images" / f"{name}.jpg").read_bytes()[:2] == b"\xff\xd8"
        expected = live[name]
        expected["data"].pop("image")
        assert task == expected
    assert LabelingInterface.parse((out / "labeling_config.xml").read_text()) == interface
    [first] = [t for t in exported if t["data"]["frame_id"] == 0]
    boxes = {r["value"]["rectanglelabels"][0]: r for r in first["predictions"][0]["result"]}
    assert {name: round(r["score"], 2) for name, r in boxes.items()} == {"red": 0.9, "green": 0.41, "blue": 0.66}
    assert "dock" in first["data"]["tags"] and first["data"]["source"] == "rtsp://cam-1/stream"


# -- against the server ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(label_studio: LabelStudioServer) -> LabelStudioServer:
    return label_studio


class Api:
    """What a user sees in Label Studio, read through its API with the legacy token."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {LABEL_STUDIO_TOKEN}"

    def project(self, title: str) -> dict:
        answer = self.http.get(f"{self.url}/api/projects", params={"title": title}, timeout=30).json()
        [project] = [p for p in answer["results"] if p["title"] == title]
        return project

    def tasks(self, title: str) -> list[dict]:
        answer = self.http.get(f"{self.url}/api/tasks", timeout=30, params={
            "project": self.project(title)["id"], "fields": "all", "page_size": 1000}).json()
        return answer["tasks"]


@pytest.fixture(scope="module")
def api(server) -> Api:
    return Api(server.url)


def meta(prediction: dict | None = None, i: int = 0) -> dict:
    return {"id": f"dp{i:04d}", "batch": "b1", "tags": ["cam", "night"], "source": "cam0", "frame_id": i,
            "captured_at": "2026-11-21T10:00:00+00:00", "strategy": "all", "width": 200, "height": 100,
            "model_id": "m/1", "prediction": prediction}


def detection_json() -> dict:
    return DetectionPrediction.from_lists("object-detection", "m/1", (200, 100), xyxy=[[20, 10, 60, 90]],
                                          confidence=[0.8], class_name=["red"]).to_json()


def datapoint(i: int, prediction: dict | None = None) -> Datapoint:
    import cv2

    frame, _ = scene(200, 100)
    return Datapoint(id=f"dp{i:04d}", batch="b1", jpeg=cv2.imencode(".jpg", frame)[1].tobytes(), width=200,
                     height=100, original_width=200, original_height=100, prediction=prediction,
                     tags=["cam", "night"], strategy="all", source="cam0", frame_id=i,
                     captured_at=datetime.now(timezone.utc), model_id="m/1", task_type="object-detection")


def squares_video(path: Path, frames: int = 4) -> Path:
    return model_builders.squares_video(path, WIDTH, HEIGHT, frames)


@pytest.mark.parametrize("task", ["detect", "segment", "pose", "classify"])
def test_a_run_creates_the_project_and_tasks_whose_predictions_land_on_the_squares(
        tmp_path, server, api, monkeypatch, task):
    model = build_model(tmp_path / f"{task}.onnx", task)
    config = tmp_path / "all.json"
    config.write_text(json.dumps({
        "enabled": True, "persist_predictions": True, "tags": ["bootstrap"],
        "sampling_strategies": [{"name": "all", "type": "random", "traffic_percentage": 1.0, "tags": ["every"]}],
        "batching_strategy": {"batches_name_prefix": "squares", "recreation_interval": "never"}}))
    monkeypatch.setenv("LABEL_STUDIO_URL", server.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", server.personal_access_token())
    title = f"squares {task}"
    video = str(squares_video(tmp_path / "squares.mp4"))
    summary = run(RunOptions(sources=[video], model=str(model), al_config=str(config), drain_timeout=300,
                             target=f"labelstudio:{title}", outbox=str(tmp_path / "outbox")))  # a busy server: slow
    outbox = summary.collected.target
    assert summary.collected.datapoints_registered == 4 and outbox is not None
    assert outbox.delivered == 4 and outbox.pending == 0  # delivered before the exit

    project = api.project(title)
    assert {tag.get("value") for tag in ET.fromstring(project["label_config"]).iter("Label")} | \
        {tag.get("value") for tag in ET.fromstring(project["label_config"]).iter("Choice")} >= {"red", "green", "blue"}
    tasks = api.tasks(title)
    assert sorted(t["data"]["frame_id"] for t in tasks) == [0, 1, 2, 3]
    _, truth = scene(WIDTH, HEIGHT)
    for t in tasks:
        data = t["data"]
        assert data["source"] == video and data["batch"].startswith("squares") and data["strategy"] == "all"
        assert set(data["tags"]) >= {"bootstrap", "every"} and data["datapoint_id"]
        image = api.http.get(server.url + data["image"], timeout=30)
        assert image.ok and image.content[:2] == b"\xff\xd8"  # the uploaded JPEG is served to labelers
        [prediction] = t["predictions"]
        assert prediction["model_version"] == model.stem and 0 < prediction["score"] <= 1
        results = prediction["result"]
        if task == "classify":  # three equal squares: equal shares, the first class is the top one
            assert [(r["type"], r["value"]) for r in results] == [("choices", {"choices": ["red"]})]
            assert prediction["score"] == pytest.approx(1 / 3, abs=1e-3)
            continue
        shapes = {r["value"].get("rectanglelabels", r["value"].get("polygonlabels", [None]))[0]: r for r in results
                  if r["type"] != "keypointlabels"}
        assert set(shapes) == {"red", "green", "blue"}
        for name, (x1, y1, x2, y2) in truth.items():
            shape = shapes[name]
            assert shape["original_width"] == WIDTH and shape["original_height"] == HEIGHT
            if task == "segment":
                points = np.array(shape["value"]["points"])  # traced on the mask: one mask pixel is 8 px here
                near = 100 * 8 / WIDTH
                assert points[:, 0].min() == pytest.approx(100 * x1 / WIDTH, abs=near)
                assert points[:, 0].max() == pytest.approx(100 * x2 / WIDTH, abs=near)
                assert points[:, 1].min() == pytest.approx(100 * y1 / HEIGHT, abs=near)
                assert points[:, 1].max() == pytest.approx(100 * y2 / HEIGHT, abs=near)
            else:
                value = shape["value"]
                assert value["x"] == pytest.approx(100 * x1 / WIDTH, abs=TOLERANCE)
                assert value["y"] == pytest.approx(100 * y1 / HEIGHT, abs=TOLERANCE)
                assert value["width"] == pytest.approx(100 * (x2 - x1) / WIDTH, abs=TOLERANCE)
                assert value["height"] == pytest.approx(100 * (y2 - y1) / HEIGHT, abs=TOLERANCE)
        if task == "pose":  # two keypoints per square: its top-left corner and its centre
            points = sorted((r["value"]["keypointlabels"][0], round(r["value"]["x"] * WIDTH / 100),
                             round(r["value"]["y"] * HEIGHT / 100)) for r in results if r["type"] == "keypointlabels")
            expected = sorted([("corner", x1, y1) for x1, y1, _, _ in truth.values()]
                              + [("centre", (x1 + x2) // 2, (y1 + y2) // 2) for x1, y1, x2, y2 in truth.values()])
            assert [p[0] for p in points] == [e[0] for e in expected]
            assert np.abs(np.array([p[1:] for p in points]) - np.array([e[1:] for e in expected])).max() <= 1.5


def test_bootstrapping_with_the_stub_makes_tasks_without_predictions_labelled_from_classes(
        tmp_path, server, api, monkeypatch):
    (tmp_path / "classes.txt").write_text("forklift\npallet\n")
    config = tmp_path / "random.json"
    config.write_text(json.dumps({
        "enabled": True, "persist_predictions": True,
        "sampling_strategies": [{"name": "all", "type": "random", "traffic_percentage": 1.0}],
        "batching_strategy": {"batches_name_prefix": "boot", "recreation_interval": "never"}}))
    monkeypatch.setenv("LABEL_STUDIO_URL", server.url)
    summary = run(RunOptions(sources=[str(squares_video(tmp_path / "squares.mp4", frames=3))], model="stub",
                             classes=str(tmp_path / "classes.txt"), al_config=str(config),
                             target="labelstudio:warehouse bootstrap", api_key=LABEL_STUDIO_TOKEN,
                             outbox=str(tmp_path / "outbox"), drain_timeout=300))
    assert summary.collected.target is not None and summary.collected.target.delivered == 3
    labels = [t.get("value") for t in ET.fromstring(api.project("warehouse bootstrap")["label_config"]).iter("Label")]
    assert labels == ["forklift", "pallet"]
    tasks = api.tasks("warehouse bootstrap")
    assert len(tasks) == 3 and all(not t["predictions"] and t["data"]["batch"] == "boot" for t in tasks)


def test_a_retry_after_a_lost_reply_creates_no_second_task(tmp_path, server, api):
    target = LabelStudioTarget("lost replies", server.url, LABEL_STUDIO_TOKEN, Outbox(tmp_path / "outbox"))
    target.register(datapoint(1, detection_json()))
    entry = target.outbox.oldest()
    target.deliver(entry, target.outbox)  # the task is created, but say its reply never came back:
    target.deliver(entry, target.outbox)  # the sender retries the same entry, which knows its image was uploaded
    target.close(0)
    [task] = api.tasks("lost replies")
    assert task["data"]["datapoint_id"] == "dp0001" and task["data"]["image"] == entry.meta["labelstudio_image"]
    assert task["predictions"][0]["result"][0]["value"]["rectanglelabels"] == ["red"]


WORKER = """
import sys, time
sys.path.insert(0, sys.argv[3])
from framesift.collectors.targets.labelstudio import LabelStudioTarget
from tests.servers import LABEL_STUDIO_TOKEN
from tests.test_labelstudio import datapoint, detection_json
target = LabelStudioTarget("killed senders", sys.argv[2], LABEL_STUDIO_TOKEN, sys.argv[1], timeout=5)
target.start()
for i in range(int(sys.argv[4]) if len(sys.argv) > 4 else 0):
    target.register(datapoint(i, detection_json()))
print("ready", flush=True)
while target.stats().pending:
    time.sleep(0.01)
print("done", flush=True)
"""


def test_sigkill_of_the_sender_mid_delivery_then_restart_gives_exactly_one_task_each(tmp_path, server, api):
    n, rng = 10, random.Random(7)
    args = [sys.executable, "-c", WORKER, str(tmp_path / "outbox"), server.url, str(Path(__file__).parents[1])]
    for attempt in range(20):
        child = subprocess.Popen(args + ([str(n)] if attempt == 0 else []), stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.02, 0.3))  # kills land before, during and after the task is created
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if not describe(tmp_path / "outbox")["pending"]:
            break
    child = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert child.stdout.strip().endswith("done"), child.stderr
    ids = sorted(t["data"]["datapoint_id"] for t in api.tasks("killed senders"))
    assert ids == [f"dp{i:04d}" for i in range(n)]  # every datapoint once, none twice
    assert all(len(t["predictions"]) == 1 for t in api.tasks("killed senders"))


def test_an_expired_access_token_is_renewed_from_the_personal_token(tmp_path, server, api):
    target = LabelStudioTarget("renewed", server.url, server.personal_access_token(), Outbox(tmp_path / "outbox"))
    target.register(datapoint(1))
    target.register(datapoint(2))
    target.deliver(target.outbox.oldest(), target.outbox)
    target.outbox.remove(target.outbox.oldest())
    target._client._access = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.expired"  # what an access token is after 5 min
    target.deliver(target.outbox.oldest(), target.outbox)  # 401, renewed, sent again
    target.close(0)
    assert sorted(t["data"]["frame_id"] for t in api.tasks("renewed")) == [1, 2]


def test_a_project_deleted_during_the_run_is_made_again(tmp_path, server, api):
    target = LabelStudioTarget("deleted midway", server.url, LABEL_STUDIO_TOKEN, Outbox(tmp_path / "outbox"),
                               labels=Labels("object-detection", ("red",)))
    target.register(datapoint(1, detection_json()))
    target.deliver(target.outbox.oldest(), target.outbox)
    target.outbox.remove(target.outbox.oldest())
    first = api.project("deleted midway")["id"]
    api.http.delete(f"{server.url}/api/projects/{first}", timeout=30).raise_for_status()
    target.register(datapoint(2, detection_json()))
    with pytest.raises(RetryableError, match="is gone"):
        target.deliver(target.outbox.oldest(), target.outbox)
    target.deliver(target.outbox.oldest(), target.outbox)  # the sender's retry
    target.close(0)
    assert api.project("deleted midway")["id"] != first
    [task] = api.tasks("deleted midway")
    assert task["data"]["frame_id"] == 2 and api.http.get(server.url + task["data"]["image"], timeout=30).ok


def test_an_existing_project_keeps_its_configuration(tmp_path, server, api):
    config = ('<View><Image name="img" value="$photo"/>'
              '<RectangleLabels name="boxes" toName="img"><Label value="red"/></RectangleLabels></View>')
    api.http.post(f"{server.url}/api/projects", json={"title": "made by hand", "label_config": config},
                  timeout=30).raise_for_status()
    target = LabelStudioTarget("made by hand", server.url, LABEL_STUDIO_TOKEN, Outbox(tmp_path / "outbox"),
                               labels=Labels("classification", ("cat",)))
    target.start()
    target.register(datapoint(2, detection_json()))
    assert wait_until(lambda: target.stats().delivered == 1)
    target.close()
    assert api.project("made by hand")["label_config"] == config
    [task] = api.tasks("made by hand")
    assert task["data"]["photo"].startswith("/data/upload/")
    assert task["predictions"][0]["result"][0]["from_name"] == "boxes"


def test_server_down_then_restart_delivers_what_was_pending(tmp_path, server, api):
    from tests.servers import free_port

    down = LabelStudioTarget("was down", f"http://127.0.0.1:{free_port()}", LABEL_STUDIO_TOKEN,
                             Outbox(tmp_path / "outbox"))
    down.sender._initial = 0.05
    down.sender.start()
    for i in range(3):
        down.register(datapoint(i))
    assert wait_until(lambda: down.stats().retried >= 2)
    assert down.stats().pending == 3 and "ConnectionError" in down.stats().last_error
    down.close(0)
    again = LabelStudioTarget("was down", server.url, LABEL_STUDIO_TOKEN, Outbox(tmp_path / "outbox"))
    again.start()
    assert wait_until(lambda: again.stats().delivered == 3)
    again.close()
    assert sorted(t["data"]["frame_id"] for t in api.tasks("was down")) == [0, 1, 2]


def test_a_refused_key_is_dead_lettered_with_the_reason_and_never_shown(tmp_path, server, caplog):
    caplog.set_level(logging.DEBUG)
    for key in ("not-a-valid-legacy-token-42", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"):
        outbox = Outbox(tmp_path / key[:8])
        target = LabelStudioTarget("refused", server.url, key, outbox)
        target.start()
        target.register(datapoint(1))
        assert wait_until(lambda: target.stats().dead == 1)  # noqa: B023
        target.close()
        [dead] = describe(outbox.root)["dead_letters"]
        assert "401" in dead["dead_reason"]
        assert key not in caplog.text and key not in json.dumps(dead)


def test_open_target_reads_the_server_and_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(ValueError, match="needs an API key"):
        open_target("labelstudio:cameras", outbox=tmp_path)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "k" * 40)
    with pytest.raises(ValueError, match="3 to 50 characters"):
        open_target("labelstudio:ab", outbox=tmp_path)
    monkeypatch.setenv("LABEL_STUDIO_URL", "ftp://somewhere")
    with pytest.raises(ValueError, match="http:// or https://"):
        open_target("labelstudio:cameras", outbox=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing created for a target that cannot work
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")
    target = open_target("labelstudio:front door / north", outbox=tmp_path)
    target.close(0)
    assert (tmp_path / "labelstudio-front_door_north" / "pending").is_dir()
