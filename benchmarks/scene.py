"""A rendered street scene with a known ground truth, for measuring what a sampler covers.

Ten minutes at 15 fps, 640×360: a street with buildings, a sidewalk and two lanes; quiet stretches (the first
minute, 4:00–5:00, 9:20–10:00) between busy ones, where an object arrives every `every_s` seconds on average: cars
and people that enter, some stopping a while (a parked car, a person waiting) before they leave; cars of the near
lane passing in front of those of the far lane; a lighting change at 5:00 (the light drops to 55 % and warms in
3 s); a camera bump at 7:30 (the view shifts 18 px right, 10 px down and turns 1°, for good); sensor noise on every
frame, then H.264. Everything comes from one seed, so the clip, its events (`events.json` beside it) and the
detections are the same on every run.

The detections are simulated from the ground truth, with a detector's errors: an object is found when at least
half of it is in the frame and at most 60 % of it hidden by a nearer one, missed on 5 % of frames anyway, its box
off by a pixel or two; a false detection lasting one frame on 0.5 % of frames. So the comparison measures the
sampler, not a model. `detections(*FLICKER)` is a flickering detector instead (its confidence hovering near its
threshold): it misses 30 % of each object's frames, in runs of 2.5 frames on average.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from framesift.predictions import DetectionPrediction

FPS, SECONDS, WIDTH, HEIGHT = 15, 600, 640, 360
FRAMES = FPS * SECONDS
LIGHT_AT, LIGHT_RAMP_S, BUMP_AT = 300 * FPS, 3, 450 * FPS
BUSY = [(60, 240), (300, 440), (450, 560)]  # seconds with arrivals; quiet otherwise
HORIZON, SIDEWALK, FAR_LANE, NEAR_LANE = 180, 216, 288, 352  # the bottom row of what stands there
BUMP = (18.0, 10.0, 1.0)  # dx, dy (px), degrees
MISSED = 0.05  # the share of an object's frames on which the detector misses it
FLICKER = (0.3, 2.5)  # a flickering detector: it misses 30 % of an object's frames, in runs of 2.5 on average
VERSION = 1  # of the scene: a cached clip of another version is made again


@dataclass(frozen=True)
class Visit:
    """One object that enters, perhaps stops a while, and leaves."""

    id: int
    kind: str  # car or person
    colour: tuple[int, int, int]  # BGR
    width: int
    height: int
    bottom: int  # the row it stands on
    direction: int  # +1 from the left, -1 from the right
    speed: float  # px per frame
    enters: int  # frame
    stop_x: float | None  # where it stops (its left edge), or None: it passes
    stay: int  # frames it stays stopped

    @property
    def depth(self) -> int:
        """Drawing order: the further, the earlier."""
        return self.bottom

    def left(self, frame: int) -> float | None:
        """Its left edge on this frame, or None when it is not in the street."""
        t = frame - self.enters
        start = -self.width if self.direction > 0 else WIDTH
        if t < 0:
            return None
        to_stop = math.inf if self.stop_x is None else abs(self.stop_x - start) / self.speed
        if self.stop_x is None or t < to_stop:
            x = start + self.direction * self.speed * t
        elif t < to_stop + self.stay:
            x = self.stop_x
        else:
            x = self.stop_x + self.direction * self.speed * (t - to_stop - self.stay)
        return x if -self.width < x < WIDTH else None

    def describe(self) -> str:
        side = "the left" if self.direction > 0 else "the right"
        stays = f", stops {self.stay / FPS:.0f} s" if self.stop_x is not None else ""
        return f"{self.kind} {self.id} ({'sidewalk' if self.kind == 'person' else 'lane'}) from {side}{stays}"


def visits(rng: np.random.Generator, every_s: float) -> list[Visit]:
    """The arrivals: one every `every_s` seconds on average in the busy stretches."""
    out: list[Visit] = []
    for start, end in BUSY:
        t = start + rng.exponential(every_s)
        while t < end:
            if rng.random() < 0.65:
                near = rng.random() < 0.5
                scale = 1.3 if near else 1.0
                width, height = int(rng.uniform(90, 125) * scale), int(rng.uniform(40, 52) * scale)
                parks = rng.random() < 0.3
                out.append(Visit(len(out) + 1, "car", _colour(rng), width, height,
                                 NEAR_LANE if near else FAR_LANE, -1 if near else 1, rng.uniform(3, 7),
                                 int(t * FPS), rng.uniform(60, 460) if parks else None,
                                 int(rng.uniform(20, 60) * FPS)))
            else:
                waits = rng.random() < 0.2
                out.append(Visit(len(out) + 1, "person", _colour(rng), int(rng.uniform(18, 26)),
                                 int(rng.uniform(50, 64)), SIDEWALK, int(rng.choice([-1, 1])), rng.uniform(1.2, 2.0),
                                 int(t * FPS), rng.uniform(60, 560) if waits else None,
                                 int(rng.uniform(10, 30) * FPS)))
            t += rng.exponential(every_s)
    return out


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    b, g, r = (int(c) for c in rng.integers(20, 236, 3))
    return b, g, r


def light(frame: int) -> np.ndarray:
    """The light's gain per BGR channel on this frame."""
    done = min(max((frame - LIGHT_AT) / (LIGHT_RAMP_S * FPS), 0.0), 1.0)
    return np.array([1.0 - 0.53 * done, 1.0 - 0.47 * done, 1.0 - 0.45 * done], np.float32)


def state(frame: int) -> str:
    """What the whole view looks like: daylight, light changing, dusk, or dusk after the camera was bumped."""
    if frame < LIGHT_AT:
        return "daylight"
    if frame < LIGHT_AT + LIGHT_RAMP_S * FPS:
        return "light changing"
    return "dusk" if frame < BUMP_AT else "dusk, camera bumped"


def bump_matrix() -> np.ndarray:
    import cv2

    dx, dy, degrees = BUMP
    matrix = cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), degrees, 1.0)
    matrix[:, 2] += np.array([dx, dy])
    return matrix


class Scene:
    """The scene of one seed and rate of arrivals: its visits, its ground truth per frame, its detections, its
    clip."""

    def __init__(self, every_s: float, seed: int = 7):
        self.every_s = every_s
        self.rng = np.random.default_rng(seed)
        self.visits = visits(self.rng, every_s)
        self.background = _background(self.rng)
        self._bump = bump_matrix()
        # per frame: the visible visits' ids and their boxes in the image (after the bump)
        self.visible: list[dict[int, np.ndarray]] = [self._visible(f) for f in range(FRAMES)]

    def boxes(self, frame: int) -> list[tuple[Visit, np.ndarray]]:
        """Every visit in the street on this frame and its box in the scene (before the bump), far first."""
        out = []
        for visit in sorted(self.visits, key=lambda v: v.depth):
            x = visit.left(frame)
            if x is not None:
                out.append((visit, np.array([x, visit.bottom - visit.height, x + visit.width, visit.bottom])))
        return out

    def _visible(self, frame: int) -> dict[int, np.ndarray]:
        placed = [(visit, self._to_image(box, frame)) for visit, box in self.boxes(frame)]
        seen = {}
        for i, (visit, box) in enumerate(placed):
            clipped = np.clip(box, 0, [WIDTH, HEIGHT, WIDTH, HEIGHT])
            inside = _area(clipped) / _area(box)
            hidden = max((_area(_intersection(box, nearer)) / _area(box) for _, nearer in placed[i + 1:]),
                         default=0.0)
            if inside >= 0.5 and hidden <= 0.6:
                seen[visit.id] = clipped
        return seen

    def _to_image(self, box: np.ndarray, frame: int) -> np.ndarray:
        if frame < BUMP_AT:
            return box
        corners = np.array([[box[0], box[1], 1], [box[2], box[1], 1], [box[0], box[3], 1], [box[2], box[3], 1]])
        moved = corners @ self._bump.T
        return np.array([*moved.min(axis=0), *moved.max(axis=0)])

    def events(self) -> list[dict]:
        """What happened: each visit, over the frames it is visible, and each look of the whole view."""
        spans: dict[int, list[int]] = {}
        for f, seen in enumerate(self.visible):
            for visit_id in seen:
                spans.setdefault(visit_id, [f, f])[1] = f
        out = [{"event": "daylight, the street as it is", "state": "daylight", "first": 0, "last": LIGHT_AT - 1},
               {"event": "the light drops at 5:00: dusk", "state": "dusk",
                "first": LIGHT_AT + LIGHT_RAMP_S * FPS, "last": BUMP_AT - 1},
               {"event": "the camera is bumped at 7:30", "state": "dusk, camera bumped", "first": BUMP_AT,
                "last": FRAMES - 1}]
        out += [{"event": visit.describe(), "visit": visit.id, "first": spans[visit.id][0],
                 "last": spans[visit.id][1]} for visit in self.visits if visit.id in spans]
        return out

    def detections(self, missed: float = MISSED, miss_run: float | None = None) -> list[DetectionPrediction]:
        """What a detector with the errors described above finds on each frame; it misses an object on `missed` of
        its frames, each frame on its own (`miss_run` None), or in runs of `miss_run` frames on average (a
        detector whose confidence hovers near its threshold: it flickers)."""
        rng = np.random.default_rng(99)
        kinds = {visit.id: visit.kind for visit in self.visits}
        stays = missed if miss_run is None else 1 - 1 / miss_run  # a miss follows a miss
        starts = missed if miss_run is None else missed / (1 - missed) / miss_run  # a miss follows a detection
        missing: dict[int, bool] = {}
        out = []
        for seen in self.visible:
            boxes, names = [], []
            for visit_id, box in seen.items():
                missing[visit_id] = rng.random() < (stays if missing.get(visit_id) else starts)
                if not missing[visit_id]:
                    boxes.append(box + rng.normal(0, 1.5, 4))
                    names.append(kinds[visit_id])
            if rng.random() < 0.005:
                x, y = rng.uniform(0, WIDTH - 100), rng.uniform(HORIZON, HEIGHT - 50)
                boxes.append(np.array([x, y, x + 100, y + 45]))
                names.append("car")
            out.append(DetectionPrediction.from_lists(
                "object-detection", "simulated/1", (WIDTH, HEIGHT), xyxy=np.array(boxes).reshape(-1, 4).tolist(),
                confidence=rng.uniform(0.4, 0.95, len(names)).tolist(), class_name=names))
        return out

    def render(self, frame: int, noise: np.ndarray) -> np.ndarray:
        import cv2

        image = self.background.copy()
        for visit, box in self.boxes(frame):
            _draw(image, visit, box.astype(int))
        image = image * light(frame)
        if frame >= BUMP_AT:
            image = cv2.warpAffine(image, self._bump, (WIDTH, HEIGHT), borderMode=cv2.BORDER_REFLECT)
        return np.clip(image + noise, 0, 255).astype(np.uint8)

    def write(self, folder: Path) -> Path:
        """The clip and its events in `folder` (made once per version of the scene); the clip's path."""
        import av

        clip, events = folder / "scene.mp4", folder / "events.json"
        made = {"version": VERSION, "every_s": self.every_s}
        if events.exists() and clip.exists() and made.items() <= json.loads(events.read_text()).items():
            return clip
        folder.mkdir(parents=True, exist_ok=True)
        noise = [self.rng.normal(0, 2.5, (HEIGHT, WIDTH, 3)).astype(np.float32) for _ in range(8)]
        with av.open(str(clip), "w") as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            stream.options = {"preset": "veryfast", "crf": "23"}
            for f in range(FRAMES):
                image = self.render(f, noise[int(self.rng.integers(8))])
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
            container.mux(stream.encode(None))
        events.write_text(json.dumps({**made, "fps": FPS, "frames": FRAMES, "events": self.events()}, indent=1))
        return clip


def _background(rng: np.random.Generator) -> np.ndarray:
    import cv2

    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for row in range(HORIZON):
        image[row] = np.array([235, 205, 160]) + (np.array([250, 230, 205]) - [235, 205, 160]) * row / HORIZON
    x = 0
    while x < WIDTH:
        width, height = int(rng.integers(40, 90)), int(rng.integers(50, 140))
        top = HORIZON - height
        cv2.rectangle(image, (x, top), (x + width, HORIZON), _colour(rng), -1)
        for wy in range(top + 8, HORIZON - 12, 18):
            for wx in range(x + 6, x + width - 10, 14):
                cv2.rectangle(image, (wx, wy), (wx + 7, wy + 9), (70, 60, 50) if rng.random() < 0.6 else
                              (150, 210, 230), -1)
        x += width + int(rng.integers(0, 12))
    image[HORIZON:SIDEWALK + 4] = (165, 170, 172)
    image[SIDEWALK + 4:] = (82, 80, 78)
    for x in range(0, WIDTH, 60):
        cv2.rectangle(image, (x, 318), (x + 30, 322), (230, 230, 230), -1)
    texture = cv2.GaussianBlur(rng.normal(0, 10, (HEIGHT, WIDTH, 3)).astype(np.float32), (0, 0), 2)
    return np.clip(image + texture, 0, 255).astype(np.uint8)


def _draw(image: np.ndarray, visit: Visit, box: np.ndarray) -> None:
    import cv2

    x1, y1, x2, y2 = (int(v) for v in box)
    w, h = x2 - x1, y2 - y1
    if visit.kind == "car":
        cv2.rectangle(image, (x1, y1 + h // 3), (x2, y2 - h // 6), visit.colour, -1)
        cv2.rectangle(image, (x1 + w // 5, y1), (x2 - w // 5, y1 + h // 3), visit.colour, -1)
        cv2.rectangle(image, (x1 + w // 4, y1 + 3), (x2 - w // 4, y1 + h // 3 - 2), (120, 100, 90), -1)
        for cx in (x1 + w // 5, x2 - w // 5):
            cv2.circle(image, (cx, y2 - h // 6), h // 6, (25, 25, 25), -1)
    else:
        cv2.rectangle(image, (x1 + w // 5, y1 + h // 2), (x2 - w // 5, y2), (60, 50, 45), -1)
        cv2.rectangle(image, (x1, y1 + h // 5), (x2, y1 + h // 2 + 4), visit.colour, -1)
        cv2.circle(image, ((x1 + x2) // 2, y1 + h // 10), max(w // 3, 4), (140, 170, 210), -1)


def _area(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])])
