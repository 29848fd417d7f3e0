"""What a person watching the terminal sees: a progress bar for files, a status line for live streams."""

from __future__ import annotations

import sys
import threading
from typing import Any


class Progress(threading.Thread):
    """Redraws from the pipeline's snapshot every `interval` seconds until `stop()`."""

    def __init__(self, pipeline: Any, total_frames: int | None, live: bool, interval: float = 1.0):
        super().__init__(name="framesift-progress", daemon=True)
        self._pipeline, self._live, self._interval = pipeline, live, interval
        self._done = threading.Event()
        self._bar = None
        if not live:
            from tqdm import tqdm

            self._bar = tqdm(total=total_frames, unit="frame", dynamic_ncols=True, file=sys.stderr)

    def run(self) -> None:
        while not self._done.wait(self._interval):
            self._draw()

    def stop(self) -> None:
        self._done.set()
        self.join()
        self._draw()
        if self._bar is not None:
            self._bar.close()
        elif self._live:
            print(file=sys.stderr)

    def _draw(self) -> None:
        snap = self._pipeline.snapshot()
        collected = (snap.get("collector") or {}).get("datapoints_registered", 0)
        if self._bar is not None:
            self._bar.n = snap["frames_inferred"]
            self._bar.set_postfix(collected=collected, refresh=False)
            self._bar.refresh()
            return
        rates = " ".join(f"{name} {s['fps']:.1f} fps" + ("" if s["connected"] else " (down)")
                         for name, s in snap["sources"].items())
        print(f"\r{rates} | dropped {snap['frames_dropped']} | collected {collected}   ",
              end="", file=sys.stderr, flush=True)
