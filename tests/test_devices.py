"""Where the model runs (`--device`), and how framesift is installed for it: the forms `--device` takes, one
sentence for a device that cannot run, a quiet fallback for `auto`, and a framesift without ONNX Runtime.

ONNX Runtime's GPU wheel (`scripts/onnxruntime-gpu.sh` unpacks it beside the environment) lists its TensorRT and CUDA
providers on this GPU-less machine, whose libraries are missing: the very case where ONNX Runtime printed its own
"EP Error ... Falling back" block."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from framesift.errors import ModelError
from framesift.models.session import Device, parse_device

REPO = Path(__file__).resolve().parents[1]
NO_ONNXRUNTIME = """
import sys
class Absent:  # what Python finds for a package that is not installed
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "onnxruntime":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Absent())
from framesift.cli import main
sys.exit(main(sys.argv[1:]))
"""


def framesift(*args: str, pythonpath: str | None = None, blocker: bool = False) -> subprocess.CompletedProcess:
    """A real `framesift` process; with `pythonpath` first on the import path, with `blocker` without ONNX Runtime."""
    env = {**os.environ, "PYTHONPATH": pythonpath} if pythonpath else None
    command = [sys.executable, "-c", NO_ONNXRUNTIME] if blocker else [sys.executable, "-m", "framesift.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="session")
def onnxruntime_gpu() -> str:
    """The folder holding ONNX Runtime's GPU wheel, unpacked (installed on first use)."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        pytest.skip("ONNX Runtime's GPU wheel is published for Linux x86-64")
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has an NVIDIA GPU: scripts/gpu-check.sh checks the device choice there")
    done = subprocess.run([str(REPO / "scripts" / "onnxruntime-gpu.sh")], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHON": sys.executable}, timeout=900)
    return done.stdout.strip()


@pytest.mark.parametrize("text, device", [
    ("auto", Device("auto")), ("cpu", Device("cpu")), ("cuda", Device("cuda")), ("tensorrt", Device("tensorrt")),
    ("cuda:1", Device("cuda", 1)), ("tensorrt:0", Device("tensorrt", 0)), ("2", Device("cuda", 2)),
    (" CUDA:3 ", Device("cuda", 3))])
def test_device_forms(text, device):
    assert parse_device(text) == device


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:-1", "cpu:0", "auto:1", "0,1", "cuda:0,1", "-1", "", "mps"])
def test_a_device_no_form_names_is_one_sentence_exit_2(text, clip_path):
    with pytest.raises(ModelError, match=r"^--device .* is not a device: give auto, cpu, cuda, tensorrt, cuda:N or "):
        parse_device(text)
    done = framesift("run", str(clip_path), "--model", "stub", "--device", text, "--no-progress")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"framesift: --device {text!r} is not a device: give auto, cpu, cuda, tensorrt,"
                                        " cuda:N or tensorrt:N (N: the GPU's number among those CUDA sees; N alone "
                                        "means cuda:N)"]


@pytest.mark.parametrize("device", ["cuda", "tensorrt:1", "0"])
def test_a_gpu_this_onnx_runtime_does_not_offer_is_one_sentence_exit_2(device, clip_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this environment has ONNX Runtime's GPU wheel")
    done = framesift("run", str(clip_path), "--model", "demo", "--device", device, "--no-progress")
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"framesift: device {device!r} is not available: this ONNX Runtime offers only ")
    assert line.endswith("(pip install 'framesift[gpu]' for CUDA and TensorRT, without the CPU-only onnxruntime "
                         "beside it)")


def test_auto_falls_back_from_gpu_providers_that_cannot_load_in_one_line_of_its_own(onnxruntime_gpu, clip_path):
    done = framesift("run", str(clip_path), "--model", "demo", "--max-frames", "5", "--no-progress",
                     pythonpath=onnxruntime_gpu)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # ONNX Runtime's "EP Error" block went to stdout
    assert "onnxruntime" not in done.stderr.replace("onnxruntime-gpu", "")  # nor its own log lines
    [fallback] = [line for line in done.stderr.splitlines() if "framesift.models" in line]
    assert " WARNING framesift.models.session: --device auto: neither TensorRT (lib" in fallback
    assert ".so.13 is missing) nor CUDA (lib" in fallback
    assert fallback.endswith("demo-shapes.onnx runs on cpu (CPUExecutionProvider)")
    assert "inferred 5 frames" in done.stderr


@pytest.mark.parametrize("device", ["cuda", "tensorrt", "cuda:1", "1"])
def test_a_named_gpu_that_cannot_load_is_one_sentence_naming_what_is_missing(onnxruntime_gpu, clip_path, device):
    done = framesift("run", str(clip_path), "--model", "demo", "--device", device, "--no-progress",
                     pythonpath=onnxruntime_gpu)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"framesift: device {device!r} did not load: lib") and line.endswith(".so.13 is missing")


def test_without_onnx_runtime_a_model_says_which_extra_to_install_and_the_stub_still_runs(clip_path, tmp_path):
    done = framesift("run", str(clip_path), "--model", "demo", "--no-progress", blocker=True)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["framesift: ONNX Runtime is not installed, and models need it: pip install "
                                        "'framesift[cpu]' (or 'framesift[gpu]' for an NVIDIA GPU; on a Jetson, "
                                        "JetPack's onnxruntime-gpu)"]
    stub = framesift("run", str(clip_path), "--model", "stub", "--summary", str(tmp_path / "s.json"), "--no-progress",
                     blocker=True)
    assert stub.returncode == 0, stub.stderr
    assert "inferred 60 frames" in stub.stderr
