"""`framesift serve` against Roboflow's own `inference_sdk` client (installed by `scripts/inference-sdk.sh` in an
environment of its own), both real processes on 127.0.0.1: the routes the client calls, the answers it parses,
active learning on every request, refusals in one sentence."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import requests

from framesift.serve.errors import Overloaded
from framesift.serve.models import InferenceQueue
from tests.helpers import ROBOFLOW_KEY, SlowModel, wait_until
from tests.model_builders import CONFIDENCES, build_model, scene, squares_video
from tests.servers import free_port, kill, wait_for_port

REPO = Path(__file__).resolve().parents[1]
CLIENT_KEY = "client-key-5c1e7a"  # what the clients send as api_key: it must appear nowhere
COLLECT_ALL = {"enabled": True, "persist_predictions": True,
               "sampling_strategies": [{"name": "all", "type": "random", "traffic_percentage": 1.0}],
               "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}
MODELS = {"squares/1": "detect", "squares-seg/1": "segment", "squares-pose/1": "pose", "squares-cls/1": "classify"}


@pytest.fixture(scope="session")
def sdk_python() -> str:
    """The Python of the environment holding Roboflow's inference-sdk client."""
    venv = subprocess.run([str(REPO / "scripts" / "inference-sdk.sh")], check=True, capture_output=True,
                          text=True).stdout.strip()
    return str(Path(venv) / "bin" / "python")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    for model_id, task in MODELS.items():
        (folder / model_id).parent.mkdir(exist_ok=True)
        build_model(folder / f"{model_id}.onnx", task, dynamic_batch=True)
    return folder


class Serve:
    """A `framesift serve` process; `stop()` sends SIGTERM and returns its exit code."""

    def __init__(self, workdir: Path, *args: str, port: int | None = None, env: dict[str, str] | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"serve-{self.port}.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "framesift.cli", "serve", "--port",
                                             str(self.port), *args], cwd=workdir, stdout=log, stderr=log,
                                            env={**os.environ, **(env or {})})
        try:
            wait_for_port(self.port, 60)
        except TimeoutError:
            kill(self.process)
            raise AssertionError(self.log.read_text()) from None

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        finally:
            kill(self.process)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Serve] = []

    def start(*args: str, **kwargs: Any) -> Serve:
        started.append(Serve(tmp_path, *args, **kwargs))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def client(sdk_python: str, url: str, code: str, *, timeout: float = 120) -> Any:
    """Run `code` with Roboflow's client (`CLIENT`, the scene image `image`, `json`) in its own environment; the
    JSON it prints is the result."""
    prelude = textwrap.dedent(f"""
        import json, warnings
        import numpy as np
        from inference_sdk import InferenceHTTPClient, InferenceConfiguration
        warnings.simplefilter("ignore")
        CLIENT = InferenceHTTPClient(api_url={url!r}, api_key={CLIENT_KEY!r})
        image = np.load({str(scene_file())!r})
    """)
    done = subprocess.run([sdk_python, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def scene_file() -> Path:
    path = Path(os.environ.get("PYTEST_TMPDIR", "/tmp")) / "framesift-serve-scene.npy"
    if not path.exists():
        frame, _ = scene(320, 240)
        np.save(path, frame)
    return path


def records(dataset: Path) -> list[dict[str, Any]]:
    path = dataset / "datapoints.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_seeds_client_code_gets_the_stubs_exact_answer(serve, sdk_python, tmp_path):
    """The seeds' lines, unchanged but for the port when 9001 is taken on this machine."""
    port = 9001 if _free(9001) else free_port()
    server = serve("--stub-task", "asl-poly-instance-seg=instance-segmentation", port=port)
    seeds = textwrap.dedent(f"""
        import json
        import numpy as np
        from inference_sdk import InferenceHTTPClient
        image = np.zeros((240, 320, 3), np.uint8)
        LOCALHOST_CLIENT = InferenceHTTPClient(api_url="http://127.0.0.1:{port}", api_key="XXX")
        print(json.dumps(LOCALHOST_CLIENT.infer(image, model_id="asl-poly-instance-seg/0")))
    """)
    done = subprocess.run([sdk_python, "-c", seeds], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert list(answer) == ["time", "is_stub", "model_id", "task_type"]
    assert answer["is_stub"] is True and isinstance(answer["time"], float)
    assert (answer["model_id"], answer["task_type"]) == ("asl-poly-instance-seg/0", "instance-segmentation")
    assert server.stop() == 0


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_each_task_answers_in_roboflows_shapes_and_every_request_is_collected(serve, sdk_python, models, tmp_path):
    (tmp_path / "al.json").write_text(json.dumps(COLLECT_ALL))
    server = serve("--models", str(models), "--al-config", "al.json", "--target", "datasets")
    answers = client(sdk_python, server.url, """
        answers = {}
        for model_id in ("squares/1", "squares-seg/1", "squares-pose/1", "squares-cls/1"):
            answers[model_id] = CLIENT.infer(image, model_id=model_id)
        answers["registry"] = [m.model_id + " " + m.task_type for m in CLIENT.list_loaded_models().models]
        print(json.dumps(answers))
    """)
    assert sorted(answers.pop("registry")) == ["squares-cls/1 classification", "squares-pose/1 keypoint-detection",
                                               "squares-seg/1 instance-segmentation", "squares/1 object-detection"]
    _, boxes = scene(320, 240)
    for model_id in ("squares/1", "squares-seg/1", "squares-pose/1"):
        answer = answers[model_id]
        assert answer["image"] == {"width": 320, "height": 240} and answer["inference_id"]
        found = {p["class"]: p for p in answer["predictions"]}
        assert set(found) == {"red", "green", "blue"}
        for name, (x1, y1, x2, y2) in boxes.items():
            p = found[name]
            assert abs(p["x"] - (x1 + x2) / 2) < 3 and abs(p["width"] - (x2 - x1)) < 4, (model_id, p)
            assert abs(p["y"] - (y1 + y2) / 2) < 3 and abs(p["height"] - (y2 - y1)) < 4, (model_id, p)
            assert p["confidence"] == pytest.approx(CONFIDENCES[name], abs=0.01)
            assert {"class_id", "detection_id"} <= set(p)
    assert all(p["points"] for p in answers["squares-seg/1"]["predictions"])
    assert all(len(p["keypoints"]) == 2 for p in answers["squares-pose/1"]["predictions"])
    classification = answers["squares-cls/1"]
    assert classification["top"] in ("red", "green", "blue") and classification["predictions"][0]["class"] \
        == classification["top"]

    # every request collected into its model's project, with the predictions it was answered
    for model_id, answer in answers.items():
        dataset = tmp_path / "datasets" / model_id.partition("/")[0]
        assert wait_until(lambda dataset=dataset: len(records(dataset)) == 1), model_id
        record = records(dataset)[0]
        assert record["inference_id"] == answer["inference_id"] and record["model_id"] == model_id
        saved = json.loads((dataset / record["prediction"]).read_text())
        if "top" not in answer:
            assert [p["detection_id"] for p in saved["predictions"]] == \
                [p["detection_id"] for p in answer["predictions"]]
    assert server.stop() == 0


def test_request_options_active_learning_switches_and_the_legacy_route(serve, sdk_python, models, tmp_path):
    (tmp_path / "al.json").write_text(json.dumps(COLLECT_ALL))
    server = serve("--models", str(models), "--al-config", "al.json", "--target", "datasets")
    answers = client(sdk_python, server.url, """
        out = {}
        CLIENT.configure(InferenceConfiguration(disable_active_learning=True))
        out["disabled"] = CLIENT.infer(image, model_id="squares/1")
        CLIENT.configure(InferenceConfiguration(active_learning_target_dataset="night-shift", confidence_threshold=0.5,
                                                class_filter=["red", "blue"]))
        out["elsewhere"] = CLIENT.infer(image, model_id="squares/1")
        CLIENT.configure(InferenceConfiguration(max_batch_size=2, disable_active_learning=True))
        out["two in one request"] = CLIENT.infer([image, image[:120]], model_id="squares/1")
        CLIENT.configure(InferenceConfiguration())
        with CLIENT.use_api_v0():
            out["legacy"] = CLIENT.infer(image, model_id="squares/1")
        print(json.dumps(out))
    """)
    assert [a["image"] for a in answers["two in one request"]] == [{"width": 320, "height": 240},
                                                                   {"width": 320, "height": 120}]
    assert [p["class"] for p in answers["elsewhere"]["predictions"]] == ["red"]  # blue is under 0.5, green filtered
    assert {p["class"] for p in answers["legacy"]["predictions"]} == {"red", "green", "blue"}
    assert wait_until(lambda: len(records(tmp_path / "datasets" / "night-shift")) == 1)
    assert wait_until(lambda: len(records(tmp_path / "datasets" / "squares")) == 1)
    collected = {r["inference_id"] for r in records(tmp_path / "datasets" / "squares")}
    assert collected == {answers["legacy"]["inference_id"]}  # not the request that disabled active learning
    assert server.stop() == 0
    leaked = [str(p) for p in tmp_path.rglob("*") if p.is_file() and CLIENT_KEY.encode() in p.read_bytes()]
    assert leaked == []


def test_bad_requests_are_one_sentence_4xx(serve, models, tmp_path):
    server = serve("--models", str(models), "--max-body-bytes", "200000", env={"FRAMESIFT_SERVE_API_KEY": "srv-k3y"})
    url = server.url

    def post(path: str, **kwargs: Any) -> tuple[int, str]:
        response = requests.post(url + path, timeout=60, **kwargs)
        return response.status_code, response.json().get("message", "")

    good = {"model_id": "squares/1", "api_key": "srv-k3y", "image": {"type": "base64", "value": _png_base64()}}
    assert post("/infer/object_detection", json=good)[0] == 200
    cases = {
        "wrong key": (dict(good, api_key="guess"), 401),
        "no key": ({k: v for k, v in good.items() if k != "api_key"}, 401),
        "not base64 image": (dict(good, image={"type": "base64", "value": "%%%"}), 400),
        "not an image": (dict(good, image={"type": "base64", "value": "aGVsbG8="}), 400),
        "url image": (dict(good, image={"type": "url", "value": "http://127.0.0.1:1/x.jpg"}), 400),
        "numpy image": (dict(good, image={"type": "numpy", "value": "gASV"}), 400),
        "unknown model": (dict(good, model_id="nothing/4"), 404),
        "escaping model id": (dict(good, model_id="../../etc/passwd"), 404),
        "confidence": (dict(good, confidence=7), 400),
        "dataset escaping": (dict(good, active_learning_target_dataset="../x"), 400),
        "wrong task's route": (dict(good, model_id="squares-cls/1"), 400),
    }
    for name, (body, status) in cases.items():
        got, message = post("/infer/object_detection", json=body)
        assert got == status, (name, message)
        assert message and "\n" not in message and "Traceback" not in message, name
    assert post("/infer/object_detection", data=b"{nope", headers={"Authorization": "Bearer srv-k3y"})[0] == 400
    assert post("/infer/object_detection", json=dict(good, image={"type": "base64", "value": "A" * 300_000}))[0] == 413
    assert requests.get(url + "/model/registry", params={"api_key": "srv-k3y"}, timeout=30).status_code == 200
    assert requests.get(url + "/model/registry", timeout=30).status_code == 401
    metrics = requests.get(url + "/metrics", headers={"Authorization": "Bearer srv-k3y"}, timeout=30).text
    assert 'framesift_serve_requests_total{route="/infer/object_detection",status="401"} 2.0' in metrics
    assert 'framesift_serve_request_seconds_count{route="/infer/object_detection"}' in metrics
    assert server.stop() == 0
    assert "srv-k3y" not in server.log.read_text() and "guess" not in server.log.read_text()


def _png_base64() -> str:
    import base64

    frame, _ = scene(320, 240)
    return base64.b64encode(cv2.imencode(".png", frame)[1].tobytes()).decode()


def test_a_full_inference_queue_refuses_at_once_and_counts():
    with InferenceQueue(max_pending=1) as queue:
        model = SlowModel(0.5)
        image = [model.prepare(np.zeros((48, 64, 3), np.uint8))]
        first = queue.submit(model, image, 0.25, 0.45)  # taken by the inference thread
        assert wait_until(lambda: queue.depth() == 0, 10)
        second = queue.submit(model, image, 0.25, 0.45)  # waits in the queue's one place
        with pytest.raises(Overloaded) as refused:
            queue.submit(model, image, 0.25, 0.45)
        assert refused.value.status == 503 and refused.value.retry_after == 1 and queue.overloaded == 1
        assert len(first.result(30)) == 1 and len(second.result(30)) == 1


def test_requests_waiting_together_share_one_model_call():
    model = SlowModel(0.3)
    model.max_batch = 8
    image = [model.prepare(np.zeros((48, 64, 3), np.uint8))]
    with InferenceQueue(max_pending=16, batch_wait=0.0) as queue:
        blocker = queue.submit(model, image, 0.25, 0.45)
        assert wait_until(lambda: queue.depth() == 0, 10)
        waiting = [queue.submit(model, image, 0.25, 0.45) for _ in range(4)]
        assert all(len(done.result(30)) == 1 for done in [blocker, *waiting])
        assert queue.batches == 2  # the four that waited went in one call


def test_a_budget_is_shared_with_framesift_run_on_the_same_redis(serve, sdk_python, models, redis_server, tmp_path):
    limited = dict(COLLECT_ALL, sampling_strategies=[{"name": "all", "type": "random", "traffic_percentage": 1.0,
                                                      "limits": [{"type": "hourly", "value": 4}]}])
    (tmp_path / "al.json").write_text(json.dumps(limited))
    cli = [sys.executable, "-m", "framesift.cli"]
    subprocess.run([*cli, "config", "set", "squares", "al.json", "--store", redis_server.url], cwd=tmp_path,
                   check=True, capture_output=True)
    server = serve("--models", str(models), "--al-config", redis_server.url, "--redis", redis_server.url,
                   "--target", "served", "--config-cache", "cache")
    client(sdk_python, server.url, """
        print(json.dumps([CLIENT.infer(image, model_id="squares/1")["inference_id"] for _ in range(3)]))
    """)
    assert wait_until(lambda: len(records(tmp_path / "served" / "squares")) == 3)
    squares_video(tmp_path / "clip.mp4", 320, 240, frames=6)
    subprocess.run([*cli, "run", "clip.mp4", "--model", "squares/1", "--models", str(models), "--al-config",
                    redis_server.url, "--redis", redis_server.url, "--target", "ran/squares", "--config-cache", "cache",
                    "--no-progress"], cwd=tmp_path, check=True, capture_output=True, timeout=120)
    assert len(records(tmp_path / "ran" / "squares")) == 1  # the budget of 4 an hour: 3 went to the server
    client(sdk_python, server.url, """print(json.dumps(CLIENT.infer(image, model_id="squares/1")["time"]))""")
    metrics = ""

    def refused() -> bool:
        nonlocal metrics
        metrics = requests.get(server.url + "/metrics", timeout=30).text
        return 'framesift_datapoints_rejected_total{dataset="squares",reason="limits"} 1.0' in metrics

    assert wait_until(refused), metrics
    assert len(records(tmp_path / "served" / "squares")) == 3
    assert server.stop() == 0


def test_stopping_writes_what_was_queued(serve, sdk_python, models, tmp_path):
    """SIGTERM: the requests answered are all in the dataset once the server has exited."""
    (tmp_path / "al.json").write_text(json.dumps(COLLECT_ALL))
    server = serve("--models", str(models), "--al-config", "al.json", "--target", "datasets")
    ids = client(sdk_python, server.url, """
        print(json.dumps([CLIENT.infer(image, model_id="squares/1")["inference_id"] for _ in range(5)]))
    """)
    assert server.stop() == 0
    assert sorted(r["inference_id"] for r in records(tmp_path / "datasets" / "squares")) == sorted(ids)


def test_concurrent_clients_all_get_their_own_answers(serve, models, tmp_path):
    server = serve("--models", str(models))
    body = {"model_id": "squares/1", "image": {"type": "base64", "value": _png_base64()}}
    answers: list[int] = []

    def one() -> None:
        for _ in range(5):
            answers.append(len(requests.post(server.url + "/infer/object_detection", json=body,
                                             timeout=60).json()["predictions"]))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert answers == [3] * 40
    assert server.stop() == 0


def test_a_workflow_sent_over_http_runs_and_its_collector_collects(serve, sdk_python, models, tmp_path):
    spec = {"version": "1.0", "inputs": [{"type": "InferenceImage", "name": "image"},
                                         {"type": "InferenceParameter", "name": "conf", "default_value": 0.25}],
            "steps": [{"type": "ObjectDetectionModel", "name": "det", "image": "$inputs.image",
                       "model_id": "squares/1", "confidence": "$inputs.conf"},
                      {"type": "ActiveLearningDataCollector", "name": "collect", "image": "$inputs.image",
                       "predictions": "$steps.det.predictions", "target_dataset": "wf",
                       "active_learning_configuration": COLLECT_ALL}],
            "outputs": [{"type": "JsonField", "name": "boxes", "selector": "$steps.det.predictions"}]}
    (tmp_path / "al.json").write_text(json.dumps(COLLECT_ALL))
    server = serve("--models", str(models), "--target", "datasets", "--al-config", "al.json")
    outputs = client(sdk_python, server.url, f"""
        spec = json.loads({json.dumps(json.dumps(spec))})
        first = CLIENT.run_workflow(specification=spec, images={{"image": image}})
        again = CLIENT.run_workflow(specification=spec, images={{"image": [image, image]}}, parameters={{"conf": 0.5}})
        print(json.dumps([first, again]))
    """)
    first, again = outputs
    assert len(first) == 1 and {p["class"] for p in first[0]["boxes"]["predictions"]} == {"red", "green", "blue"}
    assert len(again) == 2 and all({p["class"] for p in o["boxes"]["predictions"]} == {"red", "green"} for o in again)
    assert wait_until(lambda: len(records(tmp_path / "datasets" / "wf")) == 3), \
        (records(tmp_path / "datasets" / "wf"), server.log.read_text())
    # one writer per dataset: the inference routes leave a workflow's dataset alone, and the other way round
    client(sdk_python, server.url, """
        CLIENT.configure(InferenceConfiguration(active_learning_target_dataset="wf"))
        print(json.dumps(CLIENT.infer(image, model_id="squares/1")["time"]))
        CLIENT.configure(InferenceConfiguration())
        print(json.dumps(CLIENT.infer(image, model_id="squares/1")["time"]))
    """)
    assert wait_until(lambda: len(records(tmp_path / "datasets" / "squares")) == 1)
    assert len(records(tmp_path / "datasets" / "wf")) == 3
    assert 'framesift_serve_uncollected_total{reason="written_by_a_workflow"} 1.0' in \
        requests.get(server.url + "/metrics", timeout=30).text
    into_squares = json.loads(json.dumps(spec).replace('"wf"', '"squares"'))
    taken = requests.post(server.url + "/workflows/run", timeout=60, json={
        "specification": into_squares, "inputs": {"image": {"type": "base64", "value": _png_base64()}}})
    assert taken.status_code == 409 and "squares" in taken.json()["message"]
    refused = requests.post(server.url + "/workflows/run", json={"specification": {"steps": "no"}}, timeout=30)
    assert refused.status_code == 400 and "steps" in refused.json()["message"]
    named = requests.post(server.url + "/infer/workflows/ws/flow", json={"inputs": {}}, timeout=30)
    assert named.status_code == 404
    assert server.stop() == 0


def test_a_loopback_server_refuses_other_host_names(serve, tmp_path):
    server = serve()
    assert requests.get(server.url + "/info", timeout=30).status_code == 200
    rebound = requests.get(server.url + "/info", headers={"Host": "attacker.example"}, timeout=30)
    assert rebound.status_code == 403 and "127.0.0.1" in rebound.json()["message"]
    assert server.stop() == 0


def test_overload_is_a_503_with_retry_after_and_counted(serve, models, tmp_path):
    server = serve("--models", str(models), "--max-pending", "1")
    body = {"model_id": "squares/1", "image": {"type": "base64", "value": _png_base64()}}
    statuses: list[tuple[int, str | None, str]] = []

    def one() -> None:
        response = requests.post(server.url + "/infer/object_detection", json=body, timeout=60)
        statuses.append((response.status_code, response.headers.get("retry-after"),
                         response.json().get("message", "")))

    def burst() -> bool:
        threads = [threading.Thread(target=one) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        return any(status == 503 for status, _, _ in statuses)

    assert wait_until(burst, 120)
    refused = [s for s in statuses if s[0] == 503]
    assert all(after == "1" and "retry later" in message for _, after, message in refused)
    assert {status for status, _, _ in statuses} <= {200, 503}
    metrics = requests.get(server.url + "/metrics", timeout=30).text
    assert f"framesift_serve_overloaded_total {float(len(refused))}" in metrics
    assert server.stop() == 0


def test_a_new_configuration_in_the_store_is_followed_live(serve, sdk_python, models, redis_server, tmp_path):
    cli = [sys.executable, "-m", "framesift.cli"]

    def set_config(data: dict[str, Any]) -> None:
        (tmp_path / "al.json").write_text(json.dumps(data))
        subprocess.run([*cli, "config", "set", "squares", "al.json", "--store", redis_server.url], cwd=tmp_path,
                       check=True, capture_output=True)

    set_config(COLLECT_ALL)
    server = serve("--models", str(models), "--al-config", redis_server.url, "--target", "datasets",
                   "--config-cache", "cache")
    infer = """print(json.dumps(CLIENT.infer(image, model_id="squares/1")["inference_id"]))"""
    client(sdk_python, server.url, infer)
    assert wait_until(lambda: len(records(tmp_path / "datasets" / "squares")) == 1)
    set_config(dict(COLLECT_ALL, enabled=False))
    assert wait_until(lambda: 'framesift_config_version{dataset="squares"} 2.0' in
                      requests.get(server.url + "/metrics", timeout=30).text)
    client(sdk_python, server.url, infer)
    set_config(COLLECT_ALL)
    assert wait_until(lambda: 'framesift_config_version{dataset="squares"} 3.0' in
                      requests.get(server.url + "/metrics", timeout=30).text)
    last = client(sdk_python, server.url, infer)
    assert wait_until(lambda: len(records(tmp_path / "datasets" / "squares")) == 2)
    assert records(tmp_path / "datasets" / "squares")[-1]["inference_id"] == last
    assert server.stop() == 0


def test_a_restart_loses_nothing_queued_for_a_remote_target(serve, sdk_python, models, roboflow, tmp_path):
    """Roboflow out of reach: the collected requests wait in the outbox; the server killed and started again with
    --dataset delivers them without a request."""
    (tmp_path / "al.json").write_text(json.dumps(COLLECT_ALL))
    env = {"ROBOFLOW_API_URL": roboflow.url, "ROBOFLOW_API_KEY": ROBOFLOW_KEY}
    args = ("--models", str(models), "--al-config", "al.json", "--target", "roboflow:")
    roboflow.stop()
    server = serve(*args, env=env)
    client(sdk_python, server.url, """
        print(json.dumps([CLIENT.infer(image, model_id="squares/1")["inference_id"] for _ in range(2)]))
    """)
    assert wait_until(lambda: 'framesift_datapoints_registered_total{dataset="squares"} 2.0' in
                      requests.get(server.url + "/metrics", timeout=30).text)
    kill(server.process)
    roboflow.start()
    restarted = serve(*args, "--dataset", "squares", env=env)
    assert wait_until(lambda: len(roboflow.uploads) == 2, 60)
    assert restarted.stop() == 0


def test_what_cannot_be_served_is_refused_at_start_in_one_sentence(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        cases = {"in use": (["--port", port], "cannot listen on 127.0.0.1"),
                 "no configuration file": (["--al-config", "missing.json"], "file not found"),
                 "one dataset as the target": (["--al-config", str(REPO / "configs" / "random.json"), "--target",
                                                "roboflow:people"], "--target is a folder of datasets"),
                 "stub task": (["--stub-task", "people=boxes"], "task type must be one of"),
                 "dataset": (["--dataset", "../up"], "is no dataset name")}
        for name, (args, said) in cases.items():
            done = subprocess.run([sys.executable, "-m", "framesift.cli", "serve", "--port", port, *args],
                                  cwd=tmp_path, capture_output=True, text=True, timeout=120)
            assert done.returncode == 2 and said in done.stderr, (name, done.stderr)
            assert "Traceback" not in done.stderr and "ERROR" not in done.stderr, (name, done.stderr)
