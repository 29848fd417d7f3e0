#!/usr/bin/env bash
# ONNX Runtime's GPU wheel, pinned, unpacked into a folder of its own (no dependencies: the tests' environment has
# them) for the tests that run framesift on a machine where its CUDA and TensorRT providers are listed but their
# libraries are missing. Idempotent. Prints the folder's path (put it first on PYTHONPATH to use it).
set -euo pipefail
VERSION=1.31.1
PYTHON="${PYTHON:-python3}"
DIR="${FRAMESIFT_ORT_GPU:-${XDG_CACHE_HOME:-$HOME/.cache}/framesift/onnxruntime-gpu-$VERSION-py$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')}"
if [ ! -f "$DIR/.installed" ]; then
    echo "installing onnxruntime-gpu==$VERSION into $DIR (about 250 MB, once)" >&2
    rm -rf "$DIR"
    "$PYTHON" -m pip install -qq --no-deps --no-compile --only-binary=:all: --target "$DIR" "onnxruntime-gpu==$VERSION"
    touch "$DIR/.installed"
fi
echo "$DIR"
