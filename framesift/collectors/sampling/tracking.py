"""A small IoU tracker, one per source and strategy, for framesift's own `new_objects` strategy.

supervision 0.31 dropped its ByteTrack, and the `trackers` package that replaced it requires the non-headless
OpenCV (two `cv2` in one environment), so framesift tracks with what it has: a detection continues the track of
the same class whose box overlaps it most (at least `min_iou`, matched greedily, best overlap first); one that
continues none starts a track. A track the detector misses is kept, lost, for up to `max_missed` frames (a
lost-track buffer, as ByteTrack keeps one): a detection continues it where its last box was or where its motion
has taken it since (its last box moved on by its velocity, smoothed over the frames it was seen — what ByteTrack's
Kalman filter predicts, in its simplest form), so a walking person missed for ten frames is still the same
person. A track is *new* on the frame it has been seen `min_frames` frames in a row — once: so each car that
passes is reported about once, however long it stays in view and however often the detector misses it.

Its known error: two objects of one class that cross closely can swap tracks (no harm here: neither is new, but
one missed while they cross may come back as new), and an object hidden for more than `max_missed` frames, or that
jumps further than its own size between two frames against its motion (a very low frame rate), comes back as a
new track.

Example:
    >>> tracker = IouTracker()
    >>> boxes = np.array([[10, 10, 50, 50]], np.float32)
    >>> tracker.update(boxes, ["car"]), tracker.update(boxes + 2, ["car"])
    ([1], [])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class _Track:
    id: int
    class_name: str
    seen: int = 1  # frames in a row
    missed: int = 0  # frames since it was last seen
    announced: bool = False


SMOOTHING = 0.2  # the weight of the latest step in a track's velocity (boxes jitter by a pixel or two a frame)


class IouTracker:
    """Tracks of one source; `update` returns the ids of the tracks that became new on this frame."""

    def __init__(self, min_iou: float = 0.3, max_missed: int = 30, min_frames: int = 1):
        self.min_iou, self.max_missed, self.min_frames = min_iou, max_missed, min_frames
        self._tracks: list[_Track] = []
        self._boxes = np.zeros((0, 4), np.float32)  # the last box of each track, row for row
        self._velocities = np.zeros((0, 4), np.float32)  # and its centre's motion, in pixels per frame (twice)
        self._next_id = 1
        self.detection_of: dict[int, int] = {}  # track id -> the index of its detection on the last frame

    def update(self, boxes: np.ndarray, classes: Sequence[str]) -> list[int]:
        """One frame's detections (`(N, 4)` xyxy and their classes); the ids of tracks new on it, in order."""
        boxes = boxes.reshape(-1, 4).astype(np.float32, copy=False)
        continued: dict[int, int] = {}  # track row -> detection
        frames = np.array([track.missed + 1 for track in self._tracks], np.float32)[:, None]  # since last seen
        if self._tracks and len(classes):
            moved = self._boxes + self._velocities * frames  # where its motion has taken each track
            overlap = _iou(np.concatenate([self._boxes, moved]), boxes)  # the better of the two
            overlap = np.maximum(overlap[:len(self._tracks)], overlap[len(self._tracks):])
            rows, columns = np.nonzero(overlap >= self.min_iou)
            best_first = np.argsort(-overlap[rows, columns], kind="stable")
            taken: set[int] = set()
            for t, d in zip(rows[best_first].tolist(), columns[best_first].tolist(), strict=True):
                if t not in continued and d not in taken and self._tracks[t].class_name == classes[d]:
                    continued[t] = d
                    taken.add(d)
        self.detection_of = {self._tracks[t].id: d for t, d in continued.items()}
        if continued:
            rows, found = np.array(list(continued)), boxes[list(continued.values())]
            step = (found - self._boxes[rows]) / frames[rows]
            step[:, :2] = step[:, 2:] = (step[:, :2] + step[:, 2:]) / 2  # the box moves with its centre
            self._velocities[rows] = SMOOTHING * step + (1 - SMOOTHING) * self._velocities[rows]
            self._boxes[rows] = found
        for row, track in enumerate(self._tracks):
            if row in continued:
                track.seen, track.missed = track.seen + 1, 0
            else:
                track.seen, track.missed = 0, track.missed + 1
        kept = [row for row, track in enumerate(self._tracks) if track.missed <= self.max_missed]
        if len(kept) < len(self._tracks):
            self._tracks = [self._tracks[row] for row in kept]
            self._boxes, self._velocities = self._boxes[kept], self._velocities[kept]
        started = sorted(set(range(len(classes))) - set(continued.values()))
        if started:
            self.detection_of.update((self._next_id + i, d) for i, d in enumerate(started))
            self._tracks += [_Track(self._next_id + i, classes[d]) for i, d in enumerate(started)]
            self._boxes = np.vstack([self._boxes, boxes[started]])
            self._velocities = np.vstack([self._velocities, np.zeros((len(started), 4), np.float32)])
            self._next_id += len(started)
        new = [t for t in self._tracks if not t.announced and t.seen >= self.min_frames]
        for track in new:
            track.announced = True
        return [t.id for t in new]

    def class_of(self, track_id: int) -> str:
        return next(t.class_name for t in self._tracks if t.id == track_id)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` `(M, 4)` with every box of `b` `(N, 4)`: `(M, N)`."""
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(width, 0) * np.maximum(height, 0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
