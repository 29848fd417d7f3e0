"""Decode only what the draws sample: a replayed file whose sampling does not look at the images (the stub model,
random strategies) has each frame drawn before it is decoded, and the decoder is fed only the GOPs that hold a
sampled frame, each up to its last sampled frame.

A first pass reads the packets' timestamps and keyframe flags without decoding anything (`scan`): it gives every
frame its index (its rank in presentation order, which is the order the decoder returns frames in) and splits the
file into GOPs at its keyframes. The second pass demuxes every packet and feeds the decoder only the planned ones;
decoded frames are matched to their index by timestamp. Seeking is not used: it costs a demuxer seek and a decoder
flush per sampled frame, which made a first attempt slower than decoding everything.

Exactly the frames and pixels of decoding everything:
- the draws are made in frame order, one GOP ahead, with the collector's own random generator, so the same frames
  are sampled with the same seed;
- a GOP is fed from its keyframe, so its frames decode as they would in a full pass; in an open GOP the frames
  shown before the keyframe (B-frames referring to the previous GOP) need the previous GOP too, which is then fed
  to its end;
- when the file has B-frames, the decoder is flushed at each gap (after a jump over GOPs its reordering dropped
  frames of an open GOP that starts with a non-IDR keyframe; measured, `tests/test_sampled_decoding.py`).

Non-reference frames that no sample needs are not decoded (`skip_nonref`, H.264 only): while the decoder is fed a
GOP up to its last sampled frame, each packet is decoded with `skip_frame` "NONREF" unless its own frame is sampled
("DEFAULT"). An H.264 frame whose `nal_ref_idc` is 0 is never referred to by another, so every sampled frame
decodes to the same pixels; in a file with B-frames (x264's default B-pyramid) about half the frames are such.
HEVC is left alone: FFmpeg's "NONREF" there discards sub-layer non-reference pictures, which frames of a higher
temporal sub-layer may refer to.

Keyframe draws (`keyframes=True`, opt-in: `--keyframe-draws`) trade those exact frames for speed: the draws are made
for every frame as above, and a GOP in which one or more frames are sampled hands on its keyframe instead, with the
draws of its first sampled frame, so one frame is decoded per sampled GOP (a keyframe decodes alone) instead of
the GOP up to its sampled frames; the other frames of the GOP are passed over. A GOP with several sampled frames
gives one frame.

A file whose packets do not allow this (a packet without a timestamp, two with the same, a first packet that is
not a keyframe, GOPs whose frames interleave in presentation order) is decoded in full; `scan` says why.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from framesift.frames import Drawn

DrawNext = Callable[[int], Drawn | None]  # a frame's draws, given its index: falsy for "not sampled", None for
# "cannot draw ahead any more"


@dataclass(frozen=True)
class Scan:
    """The packets of a file's video stream, in decode order: timestamps, where GOPs start, frame indices."""

    pts: list[int]
    ranks: list[int]  # the index (presentation order) of each packet's frame
    gops: list[tuple[int, int]]  # [start, end) packet positions, each starting at a keyframe
    reordered: bool  # decode order differs from presentation order (B-frames)
    first_time: float | None  # the first frame's timestamp (s)

    @property
    def frames(self) -> int:
        return len(self.pts)


def scan(path: str) -> Scan | str:
    """The packets of `path`'s first video stream, or a sentence saying why its frames cannot be skipped."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        packets = [(packet.pts, packet.is_keyframe) for packet in container.demux(stream) if packet.size]
        time_base = stream.time_base
    if not packets:
        return "it holds no video packets"
    pts = [p for p, _ in packets]
    if any(p is None for p in pts):
        return "some of its packets have no timestamp"
    if len(set(pts)) != len(pts):
        return "some of its packets share a timestamp"
    if not packets[0][1]:
        return "it does not start with a keyframe"
    order = sorted(range(len(pts)), key=pts.__getitem__)
    ranks = [0] * len(pts)
    for rank, position in enumerate(order):
        ranks[position] = rank
    starts = [i for i, (_, key) in enumerate(packets) if key] + [len(packets)]
    gops = list(itertools.pairwise(starts))
    for start, end in gops:
        if sorted(ranks[start:end]) != list(range(start, end)):
            return "the frames of its GOPs interleave in presentation order"
    reordered = any(rank != position for position, rank in enumerate(ranks))
    first = float(pts[order[0]] * time_base) if time_base is not None else None
    return Scan(pts, ranks, gops, reordered, first)


class SampledDecoding:
    """The sampled frames of one file, decoded: iterate `frames(container)`. `draw(index)` is called once per
    frame in index order, from index `skip` on (earlier frames were replayed before) and below `limit`;
    `passed_over` counts the frames drawn and not handed on; `decoded` the frames the decoder returned, handed on or
    not (the decoding done); `decode_errors` the packets that did not decode (a damaged file goes on with the
    next), and `lost()` the sampled frames the decoder never returned. With `keyframes`, a GOP with a sampled frame
    hands on its keyframe instead; with `skip_nonref`, non-reference frames no sample needs are not decoded (see
    the module's docstring)."""

    def __init__(self, scan: Scan, draw: DrawNext, skip: int = 0, limit: int | None = None, keyframes: bool = False,
                 skip_nonref: bool = True):
        self.scan, self._draw, self._keyframes, self._skip_nonref = scan, draw, keyframes, skip_nonref
        self.skip, self.limit = skip, scan.frames if limit is None else min(limit, scan.frames)
        self.passed_over = 0
        self.decoded = 0
        self.decode_errors = 0
        self._wanted: dict[int, tuple[int, Drawn | None]] = {}  # pts -> (index, its draws; None: drawn later)
        self._feed_end: dict[int, int] = {}  # GOP -> packets of it to feed
        self._leading: dict[int, bool] = {}  # GOP -> whether a frame shown before its keyframe is wanted
        self._drawing = True  # False once `draw` said it cannot draw ahead: every frame is decoded from then on

    def frames(self, container: Any) -> Iterator[tuple[int, Any, Drawn | None]]:
        """(index, decoded frame, its draws) of each sampled frame, in order."""
        import av

        stream = container.streams.video[0]
        decoder = stream.codec_context
        gops = self.scan.gops
        stop = next(end for start, end in gops if start <= self.limit - 1 < end) if self.limit else 0
        skipping = self._skip_nonref and decoder.name == "h264"
        gop, position, last_fed = -1, 0, -1
        for packet in container.demux(stream):
            if not packet.size or position >= stop:
                break  # the demuxer's empty packets at the end, or nothing more to sample
            if gop < 0 or position >= gops[gop][1]:
                gop += 1
                self._plan(gop)
            if position - gops[gop][0] < self._feed_end[gop]:
                if self.scan.reordered and 0 <= last_fed != position - 1:
                    yield from self._matched(decoder.decode(None), stream.time_base)
                    decoder.flush_buffers()
                last_fed = position
                if skipping:
                    decoder.skip_frame = "DEFAULT" if self.scan.pts[position] in self._wanted else "NONREF"
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError:  # a corrupt packet: counted, the next ones go on
                    self.decode_errors += 1
                    decoded = []
                yield from self._matched(decoded, stream.time_base)
            position += 1
        if last_fed >= 0:
            yield from self._matched(decoder.decode(None), stream.time_base)  # what the decoder still holds

    def lost(self) -> int:
        """Sampled frames the decoder did not return (after `frames` ended)."""
        return len(self._wanted)

    def _matched(self, decoded: Any, time_base: Any) -> Iterator[tuple[int, Any, Drawn | None]]:
        for image in decoded:
            self.decoded += 1
            found = self._wanted.pop(image.pts, None)
            if found is not None:
                image.time_base = image.time_base or time_base  # a drained decoder's frames lack it
                yield found[0], image, found[1]

    def _plan(self, gop: int) -> None:
        """Draw for this GOP and the next (a frame of the next one shown before its keyframe needs this one
        whole), then say how much of this one to feed."""
        for g in (gop, gop + 1):
            if g < len(self.scan.gops) and g not in self._leading:
                self._leading[g], self._feed_end[g] = self._draws(g)
        if self._leading.get(gop + 1):
            self._feed_end[gop] = self.scan.gops[gop][1] - self.scan.gops[gop][0]

    def _draws(self, gop: int) -> tuple[bool, int]:
        """Draw for the frames of a GOP, in index order: (whether a frame shown before the keyframe is wanted, how
        many of its packets to feed to decode every wanted one)."""
        start, end = self.scan.gops[gop]
        pts, ranks = self.scan.pts, self.scan.ranks
        leading, feed = False, 0
        first: Drawn | None = None  # with keyframe draws: the draws of the GOP's first sampled frame
        for position in sorted(range(start, end), key=ranks.__getitem__):
            index = ranks[position]
            if index < self.skip or index >= self.limit:
                continue
            drawn = self._draw(index) if self._drawing else None
            if drawn is None:
                self._drawing = False  # the sampling now looks at images: decode everything from here
            elif not drawn or self._keyframes:
                self.passed_over += 1  # with keyframe draws, the keyframe is handed on below in a sampled frame's stead
                first = first or drawn
                continue
            self._wanted[pts[position]] = (index, drawn)
            leading |= pts[position] < pts[start]
            feed = max(feed, position - start + 1)
        if first and pts[start] not in self._wanted and self.skip <= ranks[start] < self.limit:
            self._wanted[pts[start]] = (ranks[start], first)
            self.passed_over -= 1  # the keyframe was drawn, and counted above
            feed = max(feed, 1)
        return leading, feed
