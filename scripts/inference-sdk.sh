#!/usr/bin/env bash
# Install Roboflow's inference-sdk client, pinned, into its own virtual environment for the tests of `framesift serve`
# (it pulls the non-headless opencv-python, which must not share an environment with ours). Idempotent. Prints the
# environment's path.
exec "$(dirname "$0")/own-venv.sh" inference-sdk 1.8.3 FRAMESIFT_INFERENCE_SDK_VENV "about 300 MB"
