"""ONNX Runtime sessions on the device the user asked for — and proof that it is the one in use.

`--device` is `auto`, `cpu`, `cuda`, `tensorrt`, `cuda:N` or `tensorrt:N` (the GPU numbered N among those CUDA
sees: `CUDA_VISIBLE_DEVICES`), or `N` alone for `cuda:N` (as Ultralytics reads it). ONNX Runtime silently falls back
to the CPU when a GPU provider cannot load, and its Python class prints a block of its own ("EP Error ... Falling
back to ...") when it does. framesift tries each provider on its own, with that fallback and ONNX Runtime's log
off, and checks `session.get_providers()` after creating the session: a named device that did not load is one
sentence naming what was missing, and `auto` takes the best device that actually loaded, saying in one log line
what the ones before it lacked (`-v` leaves ONNX Runtime's own log on).

TensorRT keeps the engines it builds (minutes on a Jetson) and its layer timings in a cache folder per model file
and ONNX Runtime version (`tensorrt_cache`), so a restart loads them in seconds; a model whose batch axis (or image
size) is dynamic gets one optimisation profile from 1 to the most images framesift gives it in one call, so a
batch of another size never makes TensorRT build its engines again while the stream runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import io
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from framesift.errors import ModelError
from framesift.models.layouts import Shape, input_geometry
from framesift.models.metadata import ModelMetadata

log = logging.getLogger(__name__)

PROVIDERS = {
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "cpu": ["CPUExecutionProvider"],
}
NAMES = {"tensorrt": "TensorRT", "cuda": "CUDA"}
INSTALL = "pip install 'framesift[cpu]' (or 'framesift[gpu]' for an NVIDIA GPU; on a Jetson, JetPack's onnxruntime-gpu)"
_DEVICE_FORM = re.compile(r"(?:(cuda|tensorrt):)?(\d+)|auto|cpu|cuda|tensorrt")


@dataclass(frozen=True)
class Device:
    """What `--device` asked for: `kind` (auto, cpu, cuda, tensorrt) and the GPU's number (ONNX Runtime's
    `device_id`) when one was named; ONNX Runtime takes GPU 0 otherwise."""

    kind: str
    index: int | None = None


def parse_device(text: str) -> Device:
    """The device `text` names, or `ModelError` (exit 2) in one sentence.

    >>> parse_device("cuda:1"), parse_device("0"), parse_device("auto")
    (Device(kind='cuda', index=1), Device(kind='cuda', index=0), Device(kind='auto', index=None))
    """
    match = _DEVICE_FORM.fullmatch(text.strip().lower())
    if match is None:
        raise ModelError(f"--device {text!r} is not a device: give auto, cpu, cuda, tensorrt, cuda:N or tensorrt:N "
                         "(N: the GPU's number among those CUDA sees; N alone means cuda:N)")
    if match.group(2) is not None:
        return Device(match.group(1) or "cuda", int(match.group(2)))
    return Device(match.group(0))


def onnxruntime() -> Any:
    """The `onnxruntime` module, or one sentence (exit 2) saying which extra installs it."""
    try:
        import onnxruntime as ort
    except ModuleNotFoundError as error:
        if error.name != "onnxruntime":
            raise
        raise ModelError(f"ONNX Runtime is not installed, and models need it: {INSTALL}") from None
    return ort


def create_session(path: str, device: str = "auto") -> tuple[Any, str]:
    """An `InferenceSession` for `path` on `device`, and the device really in use (`cpu`, `cuda`, `tensorrt`)."""
    wanted = parse_device(device)
    ort = onnxruntime()
    available = ort.get_available_providers()
    candidates = [kind for kind in ("tensorrt", "cuda", "cpu") if wanted.kind in ("auto", kind)]
    quiet = not log.isEnabledFor(logging.DEBUG)  # -v: ONNX Runtime's own log says what it tried
    missed: list[tuple[str, str]] = []  # (device, what it lacked) of those tried before
    for kind in candidates:
        provider = PROVIDERS[kind][0]
        if provider not in available:
            if wanted.kind == kind:
                raise ModelError(_not_offered(device, available))
            continue
        if kind != "cpu":
            _preload_gpu_libraries(ort)
        trt = tensorrt_options(path, *_image_input(ort, path)) if kind == "tensorrt" else None
        providers = _providers(kind, wanted.index, trt)
        try:
            with _ort_log_silenced(ort, quiet and kind != "cpu"):
                session = _open(ort, path, providers)
        except _ProviderFailed as error:
            reason = _missing_library(ort, kind) or str(error)
        else:
            in_use = session.get_providers()[0] if session.get_providers() else "no provider"
            if in_use == provider:
                _announce(path, kind, wanted.index or 0, missed)
                if trt is not None:
                    log.info("TensorRT keeps its engines for %s in %s: the first run on this machine builds them, "
                             "which can take minutes", path, trt["trt_engine_cache_path"])
                return session, kind
            reason = _missing_library(ort, kind) or f"ONNX Runtime fell back to {in_use}; -v shows why"
        if wanted.kind == kind:
            raise ModelError(f"device {device!r} did not load: {reason}")
        missed.append((NAMES[kind], reason))
    raise ModelError(f"no device could run {path}")  # unreachable while the CPU provider exists


def _providers(kind: str, index: int | None, trt: dict[str, Any] | None) -> list[Any]:
    """ONNX Runtime's providers for `kind`, best first, each with its options: TensorRT's, and the GPU's number."""
    gpu = {} if index is None else {"device_id": index}
    providers: list[Any] = list(PROVIDERS[kind])
    if trt is not None or gpu:
        providers[0] = (providers[0], {**(trt or {}), **gpu})
    if kind == "tensorrt" and gpu:
        providers[1] = (providers[1], gpu)  # CUDA takes what TensorRT cannot run: on the same GPU
    return providers


def _not_offered(device: str, available: list[str]) -> str:
    """Why `device` is not among ONNX Runtime's providers, with the one command that fixes it."""
    if len(_wheels()) == 2:
        return (f"device {device!r} is not available: the CPU-only onnxruntime is installed beside onnxruntime-gpu "
                "and hides it (both are the module onnxruntime): pip uninstall -y onnxruntime onnxruntime-gpu && "
                "pip install 'framesift[gpu]'")
    return (f"device {device!r} is not available: this ONNX Runtime offers only {', '.join(available)} "
            "(pip install 'framesift[gpu]' for CUDA and TensorRT, without the CPU-only onnxruntime beside it)")


def onnxruntime_version() -> str | None:
    """The ONNX Runtime wheel installed, read from its metadata without importing it: `1.23.2` (the CPU wheel),
    `1.31.1 gpu` (onnxruntime-gpu), both joined by ` + ` when both are (a broken environment), None when none is."""
    return " + ".join(f"{version}{suffix}" for suffix, version in _wheels().items()) or None


def _wheels() -> dict[str, str]:
    """The versions of the ONNX Runtime wheels installed, by their suffix ('' for the CPU one, ' gpu')."""
    found = {}
    for distribution, suffix in (("onnxruntime", ""), ("onnxruntime-gpu", " gpu")):
        try:
            found[suffix] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            pass
    return found


def _announce(path: str, kind: str, index: int, missed: list[tuple[str, str]]) -> None:
    """One line: where the model runs (on a GPU: which one) and, after a fallback, what the devices before lacked."""
    where = f"{kind} ({PROVIDERS[kind][0]})"
    if kind != "cpu":
        gpu = describe_gpu(index)
        where = f"{kind}:{index} ({PROVIDERS[kind][0]}; GPU {index}{': ' + gpu if gpu else ''})"
    if missed:
        tried = [f"{name} ({reason})" for name, reason in missed]
        lacked = f"{tried[0]} did not load" if len(tried) == 1 else f"neither {' nor '.join(tried)} loaded"
        log.warning("--device auto: %s, so model %s runs on %s", lacked, path, where)
    else:
        log.info("model %s runs on %s", path, where)


def nvidia_smi_id(index: int) -> str | None:
    """What `nvidia-smi -i` calls the GPU CUDA numbers `index`: the index-th entry of `CUDA_VISIBLE_DEVICES` when it
    is set (an index or a UUID), else `index`; None when that variable hides it."""
    if "CUDA_VISIBLE_DEVICES" not in os.environ:
        return str(index)
    visible = [v.strip() for v in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if v.strip()]
    return visible[index] if index < len(visible) else None


def describe_gpu(index: int) -> str | None:
    """The name and memory of the GPU CUDA numbers `index`, from `nvidia-smi`; None without it (older Jetsons)
    or when it fails."""
    smi, gpu = shutil.which("nvidia-smi"), nvidia_smi_id(index)
    if smi is None or gpu is None:
        return None
    try:
        done = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader", "-i", gpu],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else None


@functools.cache
def _preload_gpu_libraries(ort: Any) -> None:
    """Let ONNX Runtime (1.21+) load the CUDA and cuDNN libraries of the pip wheels `framesift[gpu]` installs
    (nothing on the library path finds them otherwise); what it prints about libraries it did not find goes to the
    debug log (the provider's own failure is reported by `create_session`)."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            preload()
        except Exception as error:  # a folder it expects is missing: the provider's failure will say what lacks
            log.debug("onnxruntime.preload_dlls failed: %s", error)
    if printed.getvalue().strip():
        log.debug("onnxruntime.preload_dlls: %s", printed.getvalue().strip())


def _missing_library(ort: Any, kind: str) -> str | None:
    """The first shared library the provider's own library cannot find ("libcudnn.so.9 is missing"), from the
    dynamic loader, or None (it loads: something else failed)."""
    if kind == "cpu" or os.name != "posix":
        return None
    library = Path(ort.__file__).parent / "capi" / f"libonnxruntime_providers_{kind}.so"
    if not library.is_file():
        return None
    try:
        ctypes.CDLL(str(library))
    except OSError as error:
        found = re.search(r"([\w.+-]+\.so[\w.]*): cannot open shared object file", str(error))
        return f"{found.group(1)} is missing" if found else str(error).splitlines()[0]
    return None


@contextlib.contextmanager
def _ort_log_silenced(ort: Any, quiet: bool) -> Any:
    """ONNX Runtime's default logger off (it logs a provider that cannot load as an error, on stderr) while a GPU
    provider is tried; back to its default (warnings) after."""
    if not quiet:
        yield
        return
    ort.set_default_logger_severity(4)
    try:
        yield
    finally:
        ort.set_default_logger_severity(2)


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
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "framesift" / "tensorrt" / f"{Path(path).stem}-{digest}-ort{onnxruntime().__version__}"


def _image_input(ort: Any, path: str) -> tuple[str, Shape, ModelMetadata]:
    """The model's image input (name, shape) and metadata, read by a CPU session: TensorRT's options need them
    before its own session is made."""
    probe = _open(ort, path, ["CPUExecutionProvider"])
    image = probe.get_inputs()[0]
    return image.name, image.shape, ModelMetadata.from_map(probe.get_modelmeta().custom_metadata_map)


class _ProviderFailed(Exception):
    """A GPU provider ONNX Runtime could not create for a model that opens on the CPU; the message is ORT's."""


def _open(ort: Any, path: str, providers: list[Any]) -> Any:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # our own messages say what happened; keep ORT's fallback warnings out
    # ORT's intra-op threads spin-wait between runs by default, taking the cores the decoder and the collector
    # need: with collection on, the stream ran 1.6x faster without spinning on 2 cores (benchmarks/RESULTS.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:  # without ORT's own fallback, which prints its "EP Error" block and retries with other providers
        return ort.InferenceSession(path, sess_options=options, providers=providers, enable_fallback=0)
    except Exception as error:  # ORT raises its own Fail / InvalidProtobuf / NoSuchFile classes
        lines = str(error).strip().splitlines()
        message = re.sub(r"^\S+\.cc:\d+ .*?\) ", "", lines[0]) if lines else type(error).__name__
        if providers != ["CPUExecutionProvider"]:
            _open(ort, path, ["CPUExecutionProvider"])  # a model the CPU cannot open either is the model's fault
            raise _ProviderFailed(message) from None
        raise ModelError(f"{path} is not a usable ONNX model: {message}") from None
