"""Which GOPs of a live camera to decode: none in full that the model will not take a frame of.

A live camera's frames wait in a slot of one, where the newest replaces the one waiting (`FrameSlots`): when the
model takes a frame of this camera less often than the camera sends keyframes (many cameras, a heavy model), most
GOPs are decoded in full only to be replaced. The gate learns, from the packets' arrival, when keyframes come and
when the model takes a frame (a frame that was waiting no longer is), and decides at each keyframe: the GOP it
starts is decoded in full when the model's next take is expected before the next keyframe (give or take the
spread of the last intervals between takes and a quarter of a GOP), else only its keyframe is decoded and its
other frames are skipped (counted: `frames_skipped`, reason `keyframes_only`), not even handed to the decoder.
The frame the model takes is then still one of a GOP decoded in full, as fresh as before; a take that comes
earlier than expected gets the keyframe (a miss: every GOP is then decoded in full for the next 10 takes, so
takes too irregular to foresee turn skipping off). Until it has seen a few keyframes and takes, and when the takes
come at least once a GOP, every GOP is decoded: a model that takes every frame changes nothing.

Opt-in (`SourceOptions.skip_gops`, `--skip-gops`): on the 2-core box it was built on, loaded by other work, 16
cameras with YOLOv8n showed no gain and a worse frame age with it (`benchmarks/RESULTS.md`), so it waits for a
measurement on a quiet machine before it becomes the default.

Example (packets every 0.1 s, a keyframe every second, the model takes a frame every 3 s): once it has learned
that, two GOPs in three are decoded keyframe only.
    >>> gate = KeyframeGate()
    >>> decoded = [gate.decode(t % 10 == 0, waiting=t % 30 != 0, now=t / 10) for t in range(600)]
    >>> "".join("D" if d else "." for d in decoded[300:330]), decoded.count(False)
    ('D.........D.........DDDDDDDDDD', 306)
"""

from __future__ import annotations

import itertools
import statistics
from collections import deque
from collections.abc import Iterable

HISTORY = 5  # keyframes and takes the intervals are estimated from
MARGIN = 0.25  # of a GOP, added to the spread of the intervals between takes
HOLD = 10  # takes after a miss during which every GOP is decoded in full


class KeyframeGate:
    """One connection's decision, packet by packet: `decode(keyframe, waiting, now)` says whether to decode it."""

    def __init__(self) -> None:
        self._keyframes: deque[float] = deque(maxlen=HISTORY)  # arrival times
        self._takes: deque[float] = deque(maxlen=HISTORY)  # when a waiting frame was found taken
        self._waiting = False  # whether a frame waited after the previous packet
        self._full = True  # whether the current GOP is decoded in full
        self._hold = 0  # takes to come during which every GOP is decoded in full (after a take got a keyframe)

    def decode(self, keyframe: bool, waiting: bool, now: float) -> bool:
        """Whether to decode a packet that arrived at `now` (`waiting`: whether a frame of this source still waits
        for the model as it arrives)."""
        if self._waiting and not waiting:
            self._takes.append(now)
            self._hold = HOLD if not self._full else max(0, self._hold - 1)  # a miss: the keyframe was taken
        if keyframe:
            self._keyframes.append(now)
            self._full = self._take_expected(now)
        decoded = keyframe or self._full
        self._waiting = waiting or decoded
        return decoded

    def _take_expected(self, now: float) -> bool:
        """Whether the model's next take may come before the next keyframe."""
        if len(self._keyframes) < HISTORY or len(self._takes) < 3 or self._hold:
            return True
        gop = statistics.median(_intervals(self._keyframes))
        takes = _intervals(self._takes)
        margin = max(takes) - min(takes) + gop * MARGIN  # takes that come irregularly: a wider window in full
        return self._takes[-1] + statistics.median(takes) - margin < now + gop


def _intervals(times: Iterable[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]
