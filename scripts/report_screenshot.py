"""Make the README's screenshot of the report: `python scripts/report_screenshot.py [docs/report.png]` runs
`framesift demo` in a temporary folder, which ends by writing the report of its dataset and saying where to open
it, and has the tests' headless Chromium (tests/browser.py) take a screenshot of that page."""

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser import screenshot  # noqa: E402

SIZE = (1400, 1800)  # width, height: the charts and the first rows of the gallery
OPEN = "the report of the dataset: open "  # how `framesift demo` ends


def take(out: Path, work: Path) -> Path:
    """Run `framesift demo` in `work` and screenshot the report it says to open into `out`."""
    work.mkdir(parents=True, exist_ok=True)
    demo = subprocess.run([sys.executable, "-m", "framesift.cli", "demo"], cwd=work, capture_output=True, text=True,
                          check=True, timeout=300)
    last = demo.stdout.strip().splitlines()[-1]
    if not last.startswith(OPEN):
        raise RuntimeError(f"framesift demo did not end by saying where its report is: {last!r}")
    return screenshot(last.removeprefix(OPEN), out, size=SIZE)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        print(take(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "report.png"), Path(folder)))
