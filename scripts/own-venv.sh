#!/usr/bin/env bash
# Install PACKAGE==VERSION into a virtual environment of its own, for the tests (a package whose pinned dependencies
# clash with ours). Idempotent: does nothing when the environment is complete. Prints the environment's path.
# Usage: own-venv.sh PACKAGE VERSION VARIABLE SIZE   (VARIABLE: the environment variable that moves it; SIZE: said
# while installing)
set -euo pipefail
PACKAGE=$1 VERSION=$2 VARIABLE=$3 SIZE=$4
VENV="${!VARIABLE:-${XDG_CACHE_HOME:-$HOME/.cache}/framesift/$PACKAGE-$VERSION}"
if [ ! -f "$VENV/.installed" ]; then
    echo "installing $PACKAGE==$VERSION into $VENV ($SIZE, once)" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -qq --upgrade pip
    "$VENV/bin/python" -m pip install -qq "$PACKAGE==$VERSION"
    touch "$VENV/.installed"
fi
echo "$VENV"
