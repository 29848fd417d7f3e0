"""`scripts/gpu-check.sh` (and `benchmarks/gpu.py` under it) runs end to end: on the CPU with `--device cpu`, small,
so that the check a GPU box runs cannot rot on machines without one. No figure is asserted, only that each is there."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_end_to_end_on_the_cpu(tmp_path):
    small = ["--sizes", "1,2", "--duration", "2", "--check-frames", "5", "--file-seconds", "1", "--clip-seconds", "2"]
    done = subprocess.run([str(REPO / "scripts" / "gpu-check.sh"), "--device", "cpu", "--model", "demo", *small,
                           "--work", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"^ONNX Runtime [\d.]+ \(.*\): .*CPUExecutionProvider", out, re.M)
    for device in ("auto", "cpu"):
        assert re.search(rf"^\| `--device {device}` \| 0 \| `model \S+demo-shapes.onnx runs on cpu "
                         r"\(CPUExecutionProvider\)` \| no \|$", out, re.M)
    assert re.search(r"^\| demo \| 5 \| 0\.000 \| 0\.00000 \| [1-9]\d* \| 0 \| 0\.00 \| 0\.0000 \| yes \|$", out, re.M)
    assert re.search(r"^\| cpu \| 30 \| [\d.]+ \| [\d.]+ \|$", out, re.M)
    for cameras in (1, 2):
        row = re.search(rf"^\| {cameras} \| [\d.]+ of {30 * cameras} \(\d+%\) \| [\d.]+ / [\d.]+ \([\d.]+\) \| \d+ "
                        r"\(\d+%\) \| [\d.]+ \| [\d.]+ \| [\d.]+ \| – \| [\d.]+ \| (.*) \|$", out, re.M)
        assert row and "framesift-inference" in row.group(1), out


def test_make_bench_says_in_a_line_why_the_gpu_section_is_skipped():
    import onnxruntime

    from benchmarks import gpu

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime offers CUDA: make bench measures it")
    assert gpu.main().startswith("## On a GPU\n\nSkipped: this ONNX Runtime offers ")
