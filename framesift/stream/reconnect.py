"""How long a live source waits before each try to reopen it.

A camera that was streaming and went away is most often restarting (a reboot, a network blip, a server restarted):
the first try is made at once, and the next ones every `initial` seconds while it has been down for less than
`prompt_s`, so it is back within one pause of its return. A camera that stays dead, or never came up, is tried
with exponential backoff: `initial` doubling to `maximum`. Every pause but the immediate one has ±20 % jitter, so
that cameras that failed together are not all tried at the same instant.

Example:
    >>> backoff = Backoff(0.5, 30.0, jitter=0)
    >>> backoff.streamed(now=100.0, for_s=60.0)
    >>> [backoff.pause(now=100.0 + t) for t in (0.0, 0.1, 5.0, 12.0, 14.0)]
    [0.0, 0.5, 0.5, 0.5, 1.0]
"""

from __future__ import annotations

import random

PROMPT_S = 10.0  # how long a camera that was streaming is tried every `initial` seconds
STREAMED_S = 1.0  # a connection that delivered frames for this long earns an immediate retry
JITTER = 0.2


class Backoff:
    """The pauses before each try to reopen a source: `pause(now)` before each try, `streamed(now, for_s)` after
    a connection that delivered frames."""

    def __init__(self, initial: float, maximum: float, prompt_s: float = PROMPT_S, jitter: float = JITTER):
        self._initial, self._maximum, self._prompt_s, self._jitter = initial, maximum, prompt_s, jitter
        self._down_since: float | None = None  # when the last connection that streamed ended
        self._immediate = False
        self._delay = initial  # the next pause of the exponential backoff

    def streamed(self, now: float, for_s: float) -> None:
        """A connection delivered frames for `for_s` seconds and ended at `now`."""
        self._down_since, self._delay = now, self._initial
        self._immediate = for_s >= STREAMED_S

    def pause(self, now: float) -> float:
        """Seconds to wait before the next try."""
        if self._immediate:
            self._immediate = False
            return 0.0
        if self._down_since is not None and now - self._down_since < self._prompt_s:
            delay = self._initial
        else:
            delay, self._delay = self._delay, min(self._delay * 2, self._maximum)
        return delay * random.uniform(1 - self._jitter, 1 + self._jitter)
