"""ONNX Runtime sessions on the device the user asked for — and proof that it is the one in use.

ONNX Runtime silently falls back to the CPU when a GPU provider cannot load. framesift checks
`session.get_providers()` after creating the session: a named device that did not load is an error, and `auto`
takes the best device that actually loaded.
"""

from __future__ import annotations

import logging
from typing import Any

from framesift.errors import ModelError

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
        session = _open(ort, path, PROVIDERS[candidate])
        in_use = session.get_providers()
        if in_use and in_use[0] == provider:
            log.info("model %s runs on %s (%s)", path, candidate, provider)
            return session, candidate
        if device == candidate:
            raise ModelError(f"device {device!r} did not load (ONNX Runtime fell back to {in_use[0]}); "
                             "check the CUDA, cuDNN and TensorRT libraries it needs")
        log.warning("%s did not load; trying the next device", provider)
    raise ModelError(f"no device could run {path}")  # unreachable while the CPU provider exists


def _open(ort: Any, path: str, providers: list[str]) -> Any:
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
