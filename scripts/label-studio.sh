#!/usr/bin/env bash
# Install Label Studio, pinned, into its own virtual environment for the tests (its pinned dependencies clash
# with ours). Idempotent: does nothing when the environment is complete. Prints the environment's path.
exec "$(dirname "$0")/own-venv.sh" label-studio 1.23.2 FRAMESIFT_LABEL_STUDIO_VENV "about 1 GB"
