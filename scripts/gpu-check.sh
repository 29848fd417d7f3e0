#!/usr/bin/env bash
# framesift on a GPU box, everything in one command: what the machine offers (GPU, driver, cores, ONNX Runtime's
# providers, PyAV's hardware decoders), then benchmarks/gpu.py: what `framesift run` says about the device, the same
# predictions on the CPU and the GPU (within 1 px / 1e-3), one 1080p file on the GPU and on the CPU, and N = 1, 2, 4,
# 8, 16, 32 live-paced 720p cameras (frames inferred, slowest and fastest camera, drops, frame age p50/p99, first
# prediction, GPU use from nvidia-smi, CPU per thread). Prints Markdown for benchmarks/RESULTS.md; exits 1 when the
# predictions differ or a run failed.
#
#   scripts/gpu-check.sh [--device cuda|cuda:N|tensorrt|cpu] [--model PATH.onnx] [--sizes 1,2,4,8,16,32]
#                        [--duration 15] [--check-frames 120] [--file-seconds 20] [--clip-seconds 10] [--work DIR]
#
# Defaults: --device cuda, the YOLOv8n export of ../shared/models when it is there (else the demo detector), 15 s
# per camera count (about 10 minutes in all). `--device cpu` runs the same on the CPU (the tests run it so, small).
# Python: $PYTHON, else .venv/bin/python, else python3; run from anywhere (it works from the checkout's root).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

echo "## The machine"
echo
echo '```'
date -u '+%Y-%m-%d %H:%M UTC'
echo "git $(git rev-parse --short HEAD 2>/dev/null || echo '(not a git checkout)'), $(nproc) cores"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader || true
else
    echo "no nvidia-smi"
fi
"$PYTHON" - <<'PY'
import platform

import av
import numpy

print(f"Python {platform.python_version()}, numpy {numpy.__version__}, PyAV {av.__version__}")
try:
    import onnxruntime
except ModuleNotFoundError:
    print("no ONNX Runtime")
else:
    print(f"ONNX Runtime {onnxruntime.__version__} ({onnxruntime.__file__}): "
          f"{', '.join(onnxruntime.get_available_providers())}")
try:
    from av.codec.hwaccel import hwdevices_available
except ImportError:
    print("PyAV's hardware decoding: not in this PyAV")
else:
    print(f"PyAV's hardware decoders (built in; av.codec.hwaccel): {', '.join(hwdevices_available()) or 'none'}")
PY
echo '```'
echo
exec "$PYTHON" benchmarks/gpu.py "$@"
