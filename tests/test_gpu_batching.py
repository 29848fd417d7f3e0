"""Issue 21: on a GPU every run of a model has one batch size, warmed when the pipeline is made, whichever sources are
ready (ONNX Runtime's CUDA provider plans its convolutions again at every new input shape: hundreds of ms a call).
No GPU here: real ONNX Runtime sessions on the CPU, told to batch as on a GPU (`as_on_a_gpu`), their runs noted at
the session."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from framesift import LocalDataset, Pipeline, SourceSpec, load_model, read_records
from framesift.collectors import Collector
from framesift.models.layouts import MAX_DYNAMIC_BATCH
from framesift.models.metadata import ModelMetadata
from framesift.models.session import tensorrt_options
from framesift.pipeline.sinks import PredictionsFile
from framesift.stream.sources import SourceOptions
from tests.helpers import as_on_a_gpu, collect_all_config, wait_until
from tests.model_builders import build_model, scene
from tests.servers import RtspServer, free_port


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {"dynamic": build_model(folder / "dynamic.onnx", "detect", dynamic_batch=True),
            "static": build_model(folder / "static.onnx", "detect", static_batch=2)}


def test_every_run_has_the_fixed_size_and_the_blank_images_are_never_predicted(models):
    model = load_model(str(models["dynamic"]), confidence=0.3)
    plain = [model.predict([scene(*size)[0]])[0] for size in [(320, 160), (160, 320), (200, 200)] * 2]
    session = as_on_a_gpu(model)
    assert model.fix_batch(4) == 4 and session.batches == [4]  # warmed when fixed, before any frame
    frames = [scene(*size)[0] for size in [(320, 160), (160, 320), (200, 200)] * 2]
    for count in (1, 3, 4, 6):
        predictions = model.predict(frames[:count])
        assert len(predictions) == count  # one per frame: none for the blank images
        for got, expected in zip(predictions, plain, strict=False):
            assert got.class_name == expected.class_name and np.allclose(got.xyxy, expected.xyxy)
    assert set(session.batches) == {4}  # 6 frames: a run of 4, and one of 2 filled to 4
    assert model.fix_batch(40) == MAX_DYNAMIC_BATCH  # never more than the model takes
    static = load_model(str(models["static"]))
    as_on_a_gpu(static)
    assert static.fix_batch(5) == 2  # a static export's N is its only size


def test_tensorrt_s_profile_covers_every_size_used(models):
    """The sizes `fix_batch` chooses lie within the one optimisation profile TensorRT is given (1 to the model's
    maximum), so no size used ever makes it build its engines again."""
    model = load_model(str(models["dynamic"]))
    options = tensorrt_options(str(models["dynamic"]), "images", ["batch", 3, 160, 160], ModelMetadata.from_map({}))
    low, high = (int(options[f"trt_profile_{end}_shapes"].split(":")[1].split("x")[0]) for end in ("min", "max"))
    assert {model.fix_batch(sources) for sources in range(1, 40)} == set(range(low, high + 1))


def test_live_cameras_that_drop_out_come_back_or_join_late_never_make_a_new_shape(models, tmp_path,
                                                                                   rtsp_server_factory):
    """Three cameras: one steady, one that goes away and comes back, one that appears only later. Every run the
    session gets holds 3 images, and the blank ones never reach the callbacks, the sinks, the collector or the
    counts."""
    steady, flaky = rtsp_server_factory(), rtsp_server_factory()
    late = RtspServer(free_port())  # started once the pipeline runs
    model = load_model(str(models["dynamic"]))
    session = as_on_a_gpu(model)
    seen: list[tuple[str, int]] = []
    collector = Collector(collect_all_config(), LocalDataset(tmp_path / "dataset"))
    sink = PredictionsFile(tmp_path / "predictions.jsonl")
    names = ["steady", "flaky", "late"]
    pipeline = Pipeline([SourceSpec(s.url, n) for s, n in zip((steady, flaky, late), names, strict=True)], model,
                        collector, options=SourceOptions(open_timeout=2, read_timeout=2), sinks=[sink],
                        on_prediction=[lambda frame, prediction: seen.append((frame.source, frame.frame_id))])
    assert session.batches == [3]  # warmed when the pipeline was made

    def inferred(name: str) -> int:
        return pipeline.snapshot().sources[name].frames_inferred

    try:
        with pipeline:
            pipeline.start()
            assert wait_until(lambda: inferred("steady") >= 10 and inferred("flaky") >= 10, timeout=60)
            flaky.stop()
            assert wait_until(lambda: not pipeline.snapshot().sources["flaky"].connected, timeout=30)
            late.start()
            assert wait_until(lambda: inferred("late") >= 10, timeout=60)
            before = inferred("flaky")
            flaky.start()
            assert wait_until(lambda: inferred("flaky") >= before + 10, timeout=60)
            snapshot = pipeline.snapshot()
    finally:
        late.stop()
    assert set(session.batches) == {3}
    assert len(session.batches) > 30  # the runs the frames went in, not only the warm-up
    assert sorted(set(seen)) == sorted(seen) and {source for source, _ in seen} == set(names)
    assert snapshot.sources["flaky"].reconnects >= 1
    final = pipeline.snapshot()
    assert final.frames_inferred == len(seen)  # no blank image counted as a frame
    lines = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) + final.sinks["PredictionsFile"].dropped == len(seen)
    assert {(line["source"], line["frame_id"]) for line in lines} <= set(seen)
    collected = final.collectors["collect"]
    assert collected.datapoints_sampled == len(seen)  # every frame offered once, and nothing else
    records = list(read_records(tmp_path / "dataset"))
    assert len(records) == collected.datapoints_registered
    url = {name: server.url for name, server in zip(names, (steady, flaky, late), strict=True)}
    assert {(r["source"], r["frame_id"]) for r in records} <= {(url[name], i) for name, i in seen}


def test_on_a_gpu_a_live_frame_is_prepared_by_its_source_s_thread(models, rtsp_server):
    """A GPU infers nearly every live frame: each source's thread makes its frames' model input, in parallel with
    the others, and the inference thread only batches them (on the CPU it prepares the few frames it takes)."""
    model = load_model(str(models["dynamic"]))
    as_on_a_gpu(model)
    threads: list[str] = []
    prepare = model.prepare

    def noted(frame):
        threads.append(threading.current_thread().name)
        return prepare(frame)

    with Pipeline([SourceSpec(rtsp_server.url, "cam")], model) as pipeline:
        model.prepare = noted  # from here on: the warm-up ran on this thread
        pipeline.start()
        assert wait_until(lambda: pipeline.snapshot().frames_inferred >= 10, timeout=60)
    assert set(threads) == {"framesift-source-cam"} and len(threads) >= pipeline.snapshot().frames_inferred


def test_two_models_on_the_frames_take_the_calls_the_smaller_one_allows(models):
    """A call takes at most the frames of the smaller batch axis: the other model is fixed at that size, not at the
    number of sources, which would only fill every call of it with blank images."""
    from framesift import Workflow, parse_workflow

    definition = parse_workflow({"version": "1.0", "inputs": [{"type": "InferenceImage", "name": "image"}],
                                 "steps": [{"type": "ObjectDetectionModel", "name": name, "image": "$inputs.image",
                                            "model_id": "unused"} for name in ("static", "dynamic")],
                                 "outputs": []})
    loaded = {name: load_model(str(models[name])) for name in ("static", "dynamic")}
    runs = {name: as_on_a_gpu(model) for name, model in loaded.items()}
    with Workflow(definition, loaded) as workflow:
        workflow.fix_batches(3)
        assert workflow.max_batch == 2
    assert runs["static"].batches == runs["dynamic"].batches == [2]
