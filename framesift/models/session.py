"""ONNX Runtime sessions on the device the user asked for — and proof that it is the one in use.

ONNX Runtime silently falls back to the CPU when a GPU provider cannot load. framesift checks
`session.get_providers()` after creating the session: a named device that did not load is an error, and `auto`
takes the best device that actually loaded.

TensorRT keeps the engines it builds (minutes on a Jetson) and its layer timings in a cache folder per model file
and ONNX Runtime version (`tensorrt_cache`), so a restart loads them in seconds; a model whose batch axis (or image
size) is dynamic gets one optimisation profile from 1 to the most images framesift gives it in one call, so a
batch of another size never makes TensorRT build its engines again while the stream runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from framesift.errors import ModelError
from framesift.models.layouts import Shape, input_geometry
from framesift.models.metadata import ModelMetadata

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "tensorrt")
PROVIDERS = {
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "cpu": ["CPUExecutionProvider"],
}


def create_session(path: str, device: str = "auto") -> tuple[Any, str]:
    """An `InferenceSession` for `path` on `device`, and the device really in use (`cpu`, `cuda`, `tensorrt`)."""
    import onnxruntime as ort

    if device not in DEVICES:
        raise ModelError(f"unknown device {device!r} (expected one of {', '.join(DEVICES)})")
    available = ort.get_available_providers()
    wanted = [d for d in ("tensorrt", "cuda", "cpu") if device in ("auto", d)]
    for candidate in wanted:
        provider = PROVIDERS[candidate][0]
        if provider not in available:
            if device == candidate:
                raise ModelError(
                    f"device {device!r} is not available: this ONNX Runtime offers only {', '.join(available)} "
                    "(install onnxruntime-gpu instead of onnxruntime for CUDA and TensorRT)")
            continue
        providers: list[Any] = list(PROVIDERS[candidate])
        trt = tensorrt_options(path, *_image_input(ort, path)) if candidate == "tensorrt" else None
        if trt is not None:
            providers[0] = (providers[0], trt)
        session = _open(ort, path, providers)
        in_use = session.get_providers()
        if in_use and in_use[0] == provider:
            log.info("model %s runs on %s (%s)", path, candidate, provider)
            if trt is not None:
                log.info("TensorRT keeps its engines for %s in %s: the first run on this machine builds them, which "
                         "can take minutes", path, trt["trt_engine_cache_path"])
            return session, candidate
        if device == candidate:
            raise ModelError(f"device {device!r} did not load (ONNX Runtime fell back to {in_use[0]}); "
                             "check the CUDA, cuDNN and TensorRT libraries it needs")
        log.warning("%s did not load; trying the next device", provider)
    raise ModelError(f"no device could run {path}")  # unreachable while the CPU provider exists


def tensorrt_options(path: str, name: str, shape: Shape, meta: ModelMetadata) -> dict[str, Any]:
    """TensorRT's provider options for the model at `path` whose image input is `name` of `shape`: engine and
    timing caches, and for a dynamic input one profile covering every batch framesift makes."""
    cache = str(tensorrt_cache(path))
    options: dict[str, Any] = {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
                               "trt_timing_cache_enable": True, "trt_timing_cache_path": cache}
    if not all(isinstance(size, int) for size in shape):
        geometry = input_geometry(shape, meta)
        image = f"{shape[1]}x{geometry.height}x{geometry.width}"
        options["trt_profile_min_shapes"] = f"{name}:1x{image}"
        options["trt_profile_opt_shapes"] = options["trt_profile_max_shapes"] = f"{name}:{geometry.max_batch}x{image}"
    return options


def tensorrt_cache(path: str) -> Path:
    """Where TensorRT's engines for the model file at `path` are kept: `$XDG_CACHE_HOME/framesift/tensorrt/` (else
    `~/.cache/...`), one folder per model content and ONNX Runtime version (an engine is valid for neither another
    model nor another TensorRT)."""
    import onnxruntime as ort

    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "framesift" / "tensorrt" / f"{Path(path).stem}-{digest}-ort{ort.__version__}"


def _image_input(ort: Any, path: str) -> tuple[str, Shape, ModelMetadata]:
    """The model's image input (name, shape) and metadata, read by a CPU session: TensorRT's options need them
    before its own session is made."""
    probe = _open(ort, path, ["CPUExecutionProvider"])
    image = probe.get_inputs()[0]
    return image.name, image.shape, ModelMetadata.from_map(probe.get_modelmeta().custom_metadata_map)


def _open(ort: Any, path: str, providers: list[Any]) -> Any:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # our own messages say what happened; keep ORT's fallback warnings out
    # ORT's intra-op threads spin-wait between runs by default, taking the cores the decoder and the collector
    # need: with collection on, the stream ran 1.6x faster without spinning on 2 cores (benchmarks/RESULTS.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(path, sess_options=options, providers=providers)
    except Exception as error:  # ORT raises its own Fail / InvalidProtobuf / NoSuchFile classes
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelError(f"{path} is not a usable ONNX model: {message}") from None
