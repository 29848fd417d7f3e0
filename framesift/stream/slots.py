"""One bounded slot per source, and one condition the inference thread waits on.

A live source's slot holds only its newest frame: putting a frame into a full slot replaces the waiting one,
which is counted as dropped. A replayed file's slot holds two frames (its thread decodes one ahead while the model
works) and makes its source wait when full instead (backpressure: no frame of a file is ever dropped).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from framesift.frames import Frame

REPLAY_SLOT = 2  # a file's thread decodes one frame ahead while the model works


class FrameSlots:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._slots: dict[str, deque[Frame]] = {}
        self._live: dict[str, bool] = {}
        self._capacity: dict[str, int] = {}
        self._order: list[str] = []
        self._next = 0

    def add(self, source: str, live: bool) -> None:
        self._slots[source] = deque()
        self._order.append(source)
        self.configure(source, live)

    def configure(self, source: str, live: bool) -> None:
        """Make a source's slot live (newest frame wins) or replayed (backpressure), as found when it opened."""
        with self._cond:
            self._live[source] = live
            self._capacity[source] = 1 if live else REPLAY_SLOT
            self._cond.notify_all()

    def live(self, source: str) -> bool:
        """Whether the source's frames are live (replaced by newer ones) rather than replayed (waited for)."""
        return self._live[source]

    def put(self, frame: Frame, stopping: Callable[[], bool], on_drop: Callable[[Frame], None]) -> bool:
        """Hand a frame over; a live source never waits, a replayed one waits for room. False if stopping (the
        frame is not taken)."""
        with self._cond:
            if stopping():
                return False
            slot = self._slots[frame.source]
            if self._live[frame.source]:
                while len(slot) >= self._capacity[frame.source]:
                    on_drop(slot.popleft())
            else:
                while len(slot) >= self._capacity[frame.source]:
                    if stopping():
                        return False
                    self._cond.wait(0.1)
            slot.append(frame)
            self._cond.notify_all()
            return True

    def take(self, max_frames: int, timeout: float) -> list[Frame]:
        """Up to `max_frames` frames, the oldest waiting one of each ready source, taking turns between sources."""
        with self._cond:
            if not any(self._slots.values()):
                self._cond.wait(timeout)
            taken: list[Frame] = []
            for i in range(len(self._order)):
                name = self._order[(self._next + i) % len(self._order)]
                if self._slots[name] and len(taken) < max_frames:
                    taken.append(self._slots[name].popleft())
            if self._order:
                self._next = (self._next + 1) % len(self._order)
            if taken:
                self._cond.notify_all()  # room for waiting replay sources
            return taken

    def waiting(self, source: str) -> bool:
        """Whether a frame of `source` waits to be taken."""
        with self._cond:
            return bool(self._slots[source])

    def pending(self) -> bool:
        with self._cond:
            return any(self._slots.values())

    def drain(self) -> list[Frame]:
        """Everything still waiting (at shutdown)."""
        with self._cond:
            frames = [f for slot in self._slots.values() for f in slot]
            for slot in self._slots.values():
                slot.clear()
            self._cond.notify_all()
            return frames

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()
