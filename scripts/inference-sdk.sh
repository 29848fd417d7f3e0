#!/usr/bin/env bash
# Install Roboflow's inference-sdk client, pinned, into its own virtual environment for the tests of `framesift serve`
# (it pulls the non-headless opencv-python, which must not share an environment with ours). Idempotent: does nothing
# when the environment is complete. Prints the environment's path.
set -euo pipefail
VERSION=1.8.3
VENV="${FRAMESIFT_INFERENCE_SDK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/framesift/inference-sdk-$VERSION}"
if [ ! -f "$VENV/.installed" ]; then
    echo "installing inference-sdk==$VERSION into $VENV (about 300 MB, once)" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -qq --upgrade pip
    "$VENV/bin/python" -m pip install -qq "inference-sdk==$VERSION"
    touch "$VENV/.installed"
fi
echo "$VENV"
