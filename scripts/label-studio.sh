#!/usr/bin/env bash
# Install Label Studio, pinned, into its own virtual environment for the tests (its pinned dependencies clash
# with ours). Idempotent: does nothing when the environment is complete. Prints the environment's path.
set -euo pipefail
VERSION=1.23.2
VENV="${FRAMESIFT_LABEL_STUDIO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/framesift/label-studio-$VERSION}"
if [ ! -f "$VENV/.installed" ]; then
    echo "installing label-studio==$VERSION into $VENV (about 1 GB, once)" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -qq --upgrade pip
    "$VENV/bin/python" -m pip install -qq "label-studio==$VERSION"
    touch "$VENV/.installed"
fi
echo "$VENV"
