"""Rebuild the bundled demo model: `python scripts/build_demo_model.py` (needs the `onnx` package)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from framesift.models import DEMO_MODEL  # noqa: E402
from tests.model_builders import build_demo_model  # noqa: E402

if __name__ == "__main__":
    print(build_demo_model(DEMO_MODEL))
