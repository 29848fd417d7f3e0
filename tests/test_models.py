"""SPEC §2, §10: Ultralytics layouts decoded exactly, on frames of several aspect ratios, through ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from framesift.models import ModelError, StubModel, load_model
from framesift.models.metadata import ModelMetadata
from framesift.models.session import tensorrt_cache, tensorrt_options
from framesift.predictions import ClassificationPrediction, DetectionPrediction, StubPrediction
from tests.model_builders import (
    BGR,
    CONFIDENCES,
    LOW_SCORE,
    build_model,
    build_model_failing_at_run_time,
    build_unknown_layout,
    scene,
)

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"

# (frame width, frame height): wide and tall frames pad on different axes; odd sizes exercise rounding
FRAME_SIZES = [(320, 160), (160, 320), (200, 200), (1280, 720), (333, 517)]


def tolerance(model, width: int, height: int) -> float:
    """One input pixel in frame pixels, plus one for the blended edge of the resize."""
    box = model.letterbox(width, height)
    return 1 / min(box.scale_x, box.scale_y) + 1


# the input each frame size goes in at, for an export of 160 px with image axes of dynamic size: the frame's aspect
# ratio, each side rounded up to the stride (32); a static one takes 160 × 160 whatever the frame
RECTANGULAR = {(320, 160): (160, 96), (160, 320): (96, 160), (200, 200): (160, 160), (1280, 720): (160, 96),
               (333, 517): (128, 160)}
EXPORTS = ["static size", "dynamic size"]


def exported(models, task: str, export: str):
    """The path of the export of `task` in the form `export` (one of `EXPORTS`)."""
    return models[task if export == "static size" else f"{task}-dynamic-size"]


def assert_fed_at(model, export: str, frame) -> None:
    """The model input is the frame's own rectangle for a dynamic-size export, the export's square otherwise."""
    width, height = (frame.shape[1], frame.shape[0]) if isinstance(frame, np.ndarray) else (frame.width, frame.height)
    expected = RECTANGULAR[width, height] if export == "dynamic size" else model.input_size
    assert model.prepare(frame).tensor.shape == (3, expected[1], expected[0])


def as_av_frame(frame: np.ndarray) -> av.VideoFrame:
    """A frame shaped as a decoder gives it (yuv420p; odd sizes take the other path)."""
    return av.VideoFrame.from_ndarray(frame, format="bgr24").reformat(format="yuv420p")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    built = {task: build_model(folder / f"{task}.onnx", task) for task in ("detect", "segment", "pose", "classify")}
    built["dynamic"] = build_model(folder / "dynamic.onnx", "detect", dynamic_batch=True)
    for task in ("detect", "segment", "pose"):  # as `dynamic=True` exports them: batch and image axes symbolic
        built[f"{task}-dynamic-size"] = build_model(folder / f"{task}-dyn.onnx", task, dynamic_batch=True,
                                                    dynamic_size=True)
    return built


@pytest.mark.parametrize("export", EXPORTS)
@pytest.mark.parametrize("width,height", FRAME_SIZES)
@pytest.mark.parametrize("path", ["bgr", "av"])
def test_detection_boxes_classes_and_confidences(models, width, height, path, export):
    model = load_model(str(exported(models, "detect", export)), confidence=0.3)
    frame, truth = scene(width, height)
    image = frame if path == "bgr" else as_av_frame(frame)
    assert_fed_at(model, export, image)
    [p] = model.predict([image])
    assert isinstance(p, DetectionPrediction) and p.task_type == "object-detection"
    assert p.image_size == (width, height)
    assert sorted(p.class_name) == ["blue", "green", "red"]
    tol = tolerance(model, width, height)
    for name, xyxy, conf in zip(p.class_name, p.xyxy, p.confidence, strict=True):
        assert np.allclose(xyxy, truth[name], atol=tol), (name, xyxy, truth[name])
        assert conf == pytest.approx(CONFIDENCES[name])
    assert list(p.confidence) == sorted(p.confidence, reverse=True)  # best first


def test_confidence_threshold_and_missing_objects(models):
    model = load_model(str(models["detect"]), confidence=0.5)
    frame, _ = scene(320, 160)
    assert load_model(str(models["detect"]), confidence=0.5).predict([frame])[0].class_name == ["red", "green"]
    empty = np.full((160, 320, 3), 90, np.uint8)
    assert len(model.predict([empty])[0]) == 0


@pytest.mark.parametrize("export", EXPORTS)
@pytest.mark.parametrize("width,height", FRAME_SIZES)
def test_segmentation_polygons_trace_the_squares(models, width, height, export):
    model = load_model(str(exported(models, "segment", export)), confidence=0.3)
    frame, truth = scene(width, height)
    assert_fed_at(model, export, frame)
    [p] = model.predict([frame])
    assert p.task_type == "instance-segmentation" and len(p) == 3
    box = model.letterbox(width, height)
    tol = tolerance(model, width, height) + 4 / min(box.scale_x, box.scale_y)
    for name, polygon in zip(p.class_name, p.polygons, strict=True):
        x1, y1, x2, y2 = truth[name]
        assert polygon.shape[0] >= 4
        assert np.allclose([polygon[:, 0].min(), polygon[:, 1].min()], [x1, y1], atol=tol)
        assert np.allclose([polygon[:, 0].max(), polygon[:, 1].max()], [x2, y2], atol=tol)
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
        inside = mask[y1:y2, x1:x2].mean()
        assert inside > 0.8 and mask.sum() < 1.3 * (x2 - x1) * (y2 - y1)  # the polygon covers its square


@pytest.mark.parametrize("export", EXPORTS)
@pytest.mark.parametrize("width,height", FRAME_SIZES)
def test_pose_keypoints_land_on_corner_and_centre(models, width, height, export):
    model = load_model(str(exported(models, "pose", export)), confidence=0.3)
    frame, truth = scene(width, height)
    assert_fed_at(model, export, as_av_frame(frame))
    [p] = model.predict([as_av_frame(frame)])
    assert p.task_type == "keypoint-detection" and p.keypoint_names == ["corner", "centre"]
    tol = tolerance(model, width, height)
    for name, keypoints in zip(p.class_name, p.keypoints, strict=True):
        x1, y1, x2, y2 = truth[name]
        assert np.allclose(keypoints[0], [x1, y1, 0.9], atol=tol)
        assert np.allclose(keypoints[1], [(x1 + x2) / 2, (y1 + y2) / 2, 0.9], atol=tol)
    json = p.to_json()
    assert json["predictions"][0]["keypoints"][1]["class"] == "centre"


@pytest.mark.parametrize("width,height", [(320, 160), (160, 320)])
def test_classification_top_class(models, width, height):
    model = load_model(str(models["classify"]))
    frame = np.full((height, width, 3), 90, np.uint8)
    frame[: height * 3 // 4] = BGR["blue"]
    [p] = model.predict([frame])
    assert isinstance(p, ClassificationPrediction)
    assert p.top == "blue" and p.confidences.sum() == pytest.approx(1.0, abs=1e-5)
    assert p.to_json()["top"] == "blue"


def test_dynamic_batch_runs_several_frames_in_one_call(models):
    model = load_model(str(models["dynamic"]), confidence=0.3)
    assert model.max_batch > 1
    frames = [scene(*size)[0] for size in FRAME_SIZES[:3]]
    batched = model.predict(frames)
    single = [model.predict([f])[0] for f in frames]
    for a, b in zip(batched, single, strict=True):
        assert a.class_name == b.class_name and np.allclose(a.xyxy, b.xyxy)
    static = load_model(str(models["detect"]))
    assert static.max_batch == 1 and len(static.predict(frames)) == 3


@pytest.mark.parametrize("task", ["detect", "segment", "pose"])
def test_frames_of_several_sizes_in_one_call_each_at_its_own_rectangle(models, task):
    """A dynamic-size export given frames of different aspect ratios in one call runs each shape in its own run and
    returns the predictions in the order of the frames, as frame by frame; on a GPU (every call of one shape) and
    for a model on crops (`fit_frames` off) every frame goes in at the export's square."""
    model = load_model(str(models[f"{task}-dynamic-size"]), confidence=0.3)
    frames = [scene(*size)[0] for size in [(320, 160), (160, 320), (1280, 720), (333, 517), (320, 160)]]
    batched = model.predict(frames)
    for got, frame in zip(batched, frames, strict=True):
        [expected] = model.predict([frame])
        assert got.image_size == expected.image_size == (frame.shape[1], frame.shape[0])
        assert got.class_name == expected.class_name and np.allclose(got.xyxy, expected.xyxy)
    for off in ("on_gpu", "fit_frames"):
        square = load_model(str(models[f"{task}-dynamic-size"]), confidence=0.3)
        setattr(square, off, off == "on_gpu")
        assert square.prepare(frames[2]).tensor.shape == (3, 160, 160)
        assert [p.class_name for p in square.predict(frames)] == [p.class_name for p in batched]


@pytest.mark.parametrize("task", ["detect", "segment", "pose", "classify"])
@pytest.mark.parametrize("export", ["half", "static batch of 2"])
def test_half_and_static_batch_exports_predict_what_the_plain_export_does(models, tmp_path, task, export):
    """Both ran into ONNX Runtime errors on every frame: a `half=True` export's input is float16 (framesift gave
    float32), and an export with a static batch of N takes exactly N images (framesift gave one)."""
    options = {"half": True} if export == "half" else {"static_batch": 2}
    variant = load_model(str(build_model(tmp_path / "variant.onnx", task, **options)), confidence=0.3)
    plain = load_model(str(models[task]), confidence=0.3)
    frames = [scene(*size)[0] for size in FRAME_SIZES[:3]]
    for got, expected in zip(variant.predict(frames), plain.predict(frames), strict=True):
        assert got.to_json().keys() == expected.to_json().keys()
        if isinstance(expected, DetectionPrediction):
            assert got.class_name == expected.class_name
            assert np.allclose(got.xyxy, expected.xyxy, atol=1) and np.allclose(got.confidence, expected.confidence,
                                                                                atol=1e-3)
        else:
            assert got.to_json()["top"] == expected.to_json()["top"]


END_TO_END_FORMS = ["end2end", "nms", "v10"]  # YOLO26's default and YOLOv10; nms=True; YOLOv10 without metadata


@pytest.fixture(scope="module")
def end_to_end(tmp_path_factory):
    folder = tmp_path_factory.mktemp("end-to-end")
    return {(task, form): build_model(folder / f"{task}-{form}.onnx", task, form=form)
            for task in ("detect", "segment", "pose") for form in END_TO_END_FORMS}


@pytest.mark.parametrize("form", END_TO_END_FORMS)
@pytest.mark.parametrize("task", ["detect", "segment", "pose"])
def test_end_to_end_exports_predict_what_the_plain_export_does(models, end_to_end, task, form):
    """They were refused: `unknown model layout ... outputs [[1, 300, 6]]`. Each form is recognised from its shapes
    and metadata and decoded as it is (x1, y1, x2, y2, score, class, then coefficients or keypoints), with the
    class names, masks and keypoints the plain export of the same graph gives, its boxes within 1 px."""
    model = load_model(str(end_to_end[task, form]), confidence=0.3)
    plain = load_model(str(models[task]), confidence=0.3)
    assert model.layout.end_to_end and model.task_type == plain.task_type and model.class_names == plain.class_names
    for width, height in FRAME_SIZES:
        frame, truth = scene(width, height)
        [got], [expected] = model.predict([as_av_frame(frame)]), plain.predict([as_av_frame(frame)])
        assert got.class_name == expected.class_name == ["red", "green", "blue"]  # best first
        assert np.allclose(got.xyxy, expected.xyxy, atol=1)
        assert np.allclose(got.confidence, [CONFIDENCES[n] for n in got.class_name])
        tol = tolerance(model, width, height)
        for k, name in enumerate(got.class_name):
            assert np.allclose(got.xyxy[k], truth[name], atol=tol), (name, got.xyxy[k], truth[name])
            if task == "segment":
                polygon, reference = got.polygons[k], expected.polygons[k]
                assert np.allclose([polygon.min(axis=0), polygon.max(axis=0)],
                                   [reference.min(axis=0), reference.max(axis=0)], atol=1)
            if task == "pose":
                x1, y1, x2, y2 = truth[name]
                assert np.allclose(got.keypoints[k], [[x1, y1, 0.9], [(x1 + x2) / 2, (y1 + y2) / 2, 0.9]], atol=tol)
        assert got.to_json().keys() == expected.to_json().keys()


@pytest.mark.parametrize("form", END_TO_END_FORMS)
def test_end_to_end_rows_pass_the_confidence_threshold_and_no_second_nms(end_to_end, form):
    frame, _ = scene(320, 160)
    strict = load_model(str(end_to_end["detect", form]), confidence=0.5)
    [p] = strict.predict([frame])
    assert p.class_name == ["red", "green"]
    assert p.candidate_class == ["red", "green", "blue"]  # blue (0.35) is a candidate; the filling rows are not
    empty = np.full((160, 320, 3), 90, np.uint8)
    assert len(strict.predict([empty])[0]) == 0
    # YOLO26 fills its 300 rows with low scores: below the threshold they are dropped; above it, every row is kept
    # (the filling rows are 297 copies of one box, which any NMS would have merged into one)
    everything = load_model(str(end_to_end["detect", form]), confidence=LOW_SCORE / 2)
    [p] = everything.predict([frame])
    assert len(p) == (300 if form != "nms" else 3)  # an nms=True export pads with zeros: no detection
    assert p.class_name[:3] == ["red", "green", "blue"] and list(p.confidence) == sorted(p.confidence, reverse=True)


def test_a_dynamic_end_to_end_export_batches_frames(tmp_path):
    """`dynamic=True` makes the batch axis and the last axis of an end-to-end export symbolic: the metadata says
    what its rows hold."""
    path = build_model(tmp_path / "dynamic.onnx", "pose", form="end2end", dynamic_batch=True, symbolic_columns=True)
    model = load_model(str(path), confidence=0.3)
    assert model.layout.end_to_end and model.max_batch > 1
    frames = [scene(*size)[0] for size in FRAME_SIZES[:3]]
    for batched, single in zip(model.predict(frames), [model.predict([f])[0] for f in frames], strict=True):
        assert batched.class_name == single.class_name == ["red", "green", "blue"]
        assert np.allclose(batched.xyxy, single.xyxy) and np.allclose(batched.keypoints, single.keypoints)


def test_an_end_to_end_export_without_names_needs_a_classes_file(tmp_path):
    """Its shapes do not say how many classes it has."""
    path = build_model(tmp_path / "bare.onnx", "detect", form="end2end", names_metadata=False)
    with pytest.raises(ModelError, match="end-to-end export without names metadata: give its class names"):
        load_model(str(path))
    (tmp_path / "classes.txt").write_text("apple\nbanana\ncherry\n")
    model = load_model(str(path), classes=tmp_path / "classes.txt", confidence=0.3)
    assert model.predict([scene(200, 200)[0]])[0].class_name == ["apple", "banana", "cherry"]
    (tmp_path / "two.txt").write_text("apple\nbanana\n")  # class 2 predicted, two names: each frame fails loudly
    with pytest.raises(ModelError, match="the model predicted class 2, but it has 2 class names"):
        load_model(str(path), classes=tmp_path / "two.txt", confidence=0.3).predict([scene(200, 200)[0]])


@pytest.mark.parametrize("name,kind,weights", [
    ("yolo26n.pt", "a PyTorch model", "yolo26n.pt"),
    ("yolo26n.engine", "a TensorRT engine", "yolo26n.pt"),
    ("yolo26n.tflite", "a TensorFlow Lite model", "yolo26n.pt"),
    ("yolo26n.torchscript", "a TorchScript model", "yolo26n.pt"),
    ("yolo26n_openvino_model", "an OpenVINO model", "yolo26n.pt"),
])
def test_other_model_formats_say_how_to_export_an_onnx_file(tmp_path, name, kind, weights):
    """A `.pt` gave ONNX Runtime's `INVALID_PROTOBUF`."""
    path = tmp_path / name
    if name.endswith("_model"):
        path.mkdir()
    else:
        path.write_bytes(b"PK\x03\x04 not an ONNX file")
    with pytest.raises(ModelError) as raised:
        load_model(str(path))
    assert str(raised.value) == (f"{path} is {kind}, and framesift runs ONNX files: export one with `yolo export "
                                 f"model={path if name.endswith('.pt') else weights} format=onnx` (framesift builds "
                                 "TensorRT engines itself with --device tensorrt)")


def test_a_model_that_loads_but_cannot_run_is_refused_when_loaded(tmp_path):
    """It loaded, and then failed on every frame: each counted as a model error while the run looked healthy."""
    path = build_model_failing_at_run_time(tmp_path / "failing.onnx")
    with pytest.raises(ModelError, match=f"^{path} loaded but failed its first run on cpu: .*Reshape"):
        load_model(str(path))


def test_both_preprocessing_paths_give_the_same_tensor_geometry(models):
    model = load_model(str(models["detect"]))
    frame, _ = scene(1280, 720)
    a, b = model.prepare(frame), model.prepare(as_av_frame(frame))
    assert a.letterbox == b.letterbox and a.tensor.shape == b.tensor.shape == (3, 160, 160)
    assert np.abs(a.tensor - b.tensor).mean() < 0.02  # OpenCV and swscale bilinear differ slightly


def test_class_names_from_file_and_generic_names_without_metadata(models, tmp_path):
    bare = build_model(tmp_path / "bare.onnx", "detect", names_metadata=False, extra_metadata={"task": ""})
    model = load_model(str(bare), confidence=0.3)
    assert model.task_type == "object-detection" and model.class_names == ["0", "1", "2"]
    (tmp_path / "classes.txt").write_text("apple\nbanana\n\ncherry\n")
    named = load_model(str(bare), classes=tmp_path / "classes.txt", confidence=0.3)
    assert named.class_names == ["apple", "banana", "cherry"]
    assert set(named.predict([scene(200, 200)[0]])[0].class_name) == {"apple", "banana", "cherry"}
    (tmp_path / "two.txt").write_text("a\nb\n")
    with pytest.raises(ModelError, match="2 class names given for a model of 3 classes"):
        load_model(str(bare), classes=tmp_path / "two.txt")


def test_task_type_is_inferred_from_shapes_without_task_metadata(models, tmp_path):
    for task, expected in (("segment", "instance-segmentation"), ("classify", "classification")):
        path = build_model(tmp_path / f"{task}.onnx", task, extra_metadata={"task": ""})
        assert load_model(str(path)).task_type == expected


def test_names_metadata_is_parsed_safely(tmp_path):
    evil = "__import__('os').system('touch " + str(tmp_path / "pwned") + "')"
    path = build_model(tmp_path / "evil.onnx", "detect", extra_metadata={"names": evil})
    model = load_model(str(path))
    assert model.class_names == ["0", "1", "2"] and not (tmp_path / "pwned").exists()


@pytest.mark.skipif(not SHARED_MODELS.is_dir(), reason="the reference exports are not here")
@pytest.mark.parametrize("name,task,classes,size", [
    ("yolov8n-random-static.onnx", "object-detection", 80, (640, 640)),
    ("yolov8n-random-dyn.onnx", "object-detection", 80, (640, 640)),
    ("yolov8n-seg-random-static.onnx", "instance-segmentation", 80, (640, 640)),
    ("yolov8n-pose-random-static.onnx", "keypoint-detection", 1, (640, 640)),
    ("yolov8n-cls-random-static.onnx", "classification", 1000, (224, 224)),
])
def test_reference_exports_load_with_the_right_layout(name, task, classes, size):
    model = load_model(str(SHARED_MODELS / name), device="cpu")
    assert (model.task_type, len(model.class_names), model.input_size) == (task, classes, size)
    assert model.max_batch == (16 if "dyn" in name else 1)
    [p] = model.predict([np.zeros((480, 640, 3), np.uint8)])
    assert p.task_type == task
    fed = model.prepare(np.zeros((1080, 1920, 3), np.uint8)).tensor.shape
    assert fed == ((3, 384, 640) if "dyn" in name else (3, *size[::-1]))  # 16:9 at its own rectangle when it can
    if task == "keypoint-detection":
        assert model.keypoint_names[0] == "nose"


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelError, match="is not a usable ONNX model"):
        load_model(str(bad))
    with pytest.raises(ModelError, match="model file not found"):
        load_model(str(tmp_path / "missing.onnx"))


def test_unknown_layout_names_the_shapes(tmp_path):
    with pytest.raises(ModelError) as raised:
        load_model(str(build_unknown_layout(tmp_path / "odd.onnx")))
    message = str(raised.value)
    assert message.startswith("unknown model layout: inputs [[1, 3, 32, 32]], outputs [[1, ")
    assert "expected an Ultralytics export" in message


@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_a_named_device_that_does_not_load_is_an_error(models, device):
    import onnxruntime

    if {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(onnxruntime.get_available_providers()):
        pytest.skip("this machine has a GPU build of ONNX Runtime")
    with pytest.raises(ModelError, match=f"device '{device}' is not available"):
        load_model(str(models["detect"]), device=device)
    assert load_model(str(models["detect"]), device="auto").device == "cpu"


def test_tensorrt_keeps_its_engines_per_model_and_covers_every_batch_with_one_profile(models, tmp_path, monkeypatch):
    """The options framesift gives TensorRT (no GPU here: what TensorRT makes of them is not tested)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dynamic = tensorrt_options(str(models["dynamic"]), "images", ["batch", 3, 160, 160], ModelMetadata.from_map({}))
    cache = Path(dynamic["trt_engine_cache_path"])
    assert cache.parent == tmp_path / "cache" / "framesift" / "tensorrt" and cache.name.startswith("dynamic-")
    assert dynamic == {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
                       "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache),
                       "trt_profile_min_shapes": "images:1x3x160x160",
                       "trt_profile_opt_shapes": "images:16x3x160x160", "trt_profile_max_shapes": "images:16x3x160x160"}
    sizes = tensorrt_options(str(models["dynamic"]), "x", ["b", 3, "h", "w"],
                             ModelMetadata.from_map({"imgsz": "[480, 640]"}))
    assert sizes["trt_profile_max_shapes"] == "x:16x3x480x640"  # a dynamic image size: the one framesift feeds
    static = tensorrt_options(str(models["detect"]), "images", [1, 3, 160, 160], ModelMetadata.from_map({}))
    assert not any(key.startswith("trt_profile") for key in static)  # one shape: no profile to give
    copy = tmp_path / "dynamic.onnx"
    copy.write_bytes(models["dynamic"].read_bytes())
    assert tensorrt_cache(str(copy)) == cache  # the same model, wherever it is
    assert tensorrt_cache(str(models["detect"])) != tensorrt_cache(str(models["segment"]))


def test_stub_model():
    model = load_model("stub:classification", model_id="bootstrap")
    assert isinstance(model, StubModel) and model.input_size is None
    [p] = model.predict([np.zeros((4, 4, 3), np.uint8)])
    assert isinstance(p, StubPrediction) and p.task_type == "classification" and p.model_id == "bootstrap"
    assert p.to_json()["is_stub"] is True
    with pytest.raises(ModelError, match="unknown task type"):
        load_model("stub:segmentation")


def test_bundled_demo_model_is_what_its_builder_makes(tmp_path):
    from framesift.models import DEMO_MODEL
    from tests.model_builders import build_demo_model

    assert build_demo_model(tmp_path / "demo.onnx").read_bytes() == DEMO_MODEL.read_bytes()


def test_demo_model_finds_the_squares_of_the_demo_scene():
    from framesift.demo import demo_frame

    model = load_model("demo", confidence=0.5)
    assert model.model_id == "demo-shapes" and model.input_size == (320, 320)
    found = [model.predict([demo_frame(i)])[0] for i in range(0, 150, 15)]
    assert all(len(p) >= 2 for p in found)
    assert {name for p in found for name in p.class_name} == {"red square", "green square", "blue square"}
    confidences = np.concatenate([p.confidence for p in found])
    assert confidences.max() > 0.8 and confidences.min() < 0.6  # varied, as the demo's strategies need
