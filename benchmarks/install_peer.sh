#!/usr/bin/env bash
# Installs the peer, Roboflow's `inference` package (InferencePipeline), in its own virtual environment:
# it is large and pins its own PyAV, OpenCV and ONNX Runtime, so it is never a framesift dependency.
# Usage: benchmarks/install_peer.sh [VENV]   (default benchmarks/.peer-venv). Prints the venv's size.
set -euo pipefail
venv="${1:-$(dirname "$0")/.peer-venv}"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
# A CPU build of torch first, so that inference-models' torch requirement does not pull CUDA packages.
"$venv/bin/pip" install -q torch==2.13.0 || "$venv/bin/pip" install -q torch --index-url https://download.pytorch.org/whl/cpu
"$venv/bin/pip" install -q inference
"$venv/bin/python" -c "import inference, importlib.metadata as m; print('inference', m.version('inference'))"
du -sh "$venv"
