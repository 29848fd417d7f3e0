"""The near-duplicate gate's memory: the signatures of the frames collected lately, per source.

A camera sends thirty nearly identical frames a second; a budget spent on them buys nothing. Before a sampled
frame takes any budget, its signature (`signatures.signature`) is compared with those of the frames the collector
collected from the same source in the last `within_s` seconds (the last `memory` of them): within `max_distance`
bits of one, it is a near-duplicate and is not collected. Only frames actually collected are remembered, so a scene
that stays the same is collected once, and again when it changes.

Example:
    >>> recent = RecentSignatures()
    >>> recent.remember("cam1", 0b1111, now=0.0, memory=32)
    >>> recent.nearest("cam1", 0b1110, now=1.0, within_s=600.0)
    1
"""

from __future__ import annotations

from collections import deque

from framesift.collectors.sampling.signatures import distance


class RecentSignatures:
    """(time, signature) of the frames collected lately, per source; used by the collector's thread alone."""

    def __init__(self) -> None:
        self._by_source: dict[str, deque[tuple[float, int]]] = {}

    def nearest(self, source: str, signature: int, now: float, within_s: float) -> int | None:
        """The smallest distance to a signature remembered from `source` in the last `within_s` seconds; None when
        there is none."""
        recent = self._by_source.get(source)
        if not recent:
            return None
        while recent and recent[0][0] < now - within_s:
            recent.popleft()
        return min((distance(signature, kept) for _, kept in recent), default=None)

    def remember(self, source: str, signature: int, now: float, memory: int) -> None:
        recent = self._by_source.setdefault(source, deque())
        recent.append((now, signature))
        while len(recent) > memory:
            recent.popleft()
