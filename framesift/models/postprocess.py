"""From raw Ultralytics outputs to predictions in frame pixels.

NMS is OpenCV's class-aware `NMSBoxesBatched`: it keeps exactly what `supervision.box_non_max_suppression` keeps
and was 4-8x faster on 500-3000 candidates here. An end-to-end export has selected its detections already: its
rows only pass the confidence threshold (`select_rows`). Mask polygons are traced by supervision.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from framesift.defaults import MAX_CANDIDATES, MAX_DETECTIONS
from framesift.models.letterbox import Letterbox

CANDIDATE_FLOOR = 0.01  # anchors whose best class score reaches this are handed on as candidates (uncertainty)


class Selection(NamedTuple):
    kept: np.ndarray  # the kept anchors' indices, best first
    xyxy: np.ndarray  # their boxes, input pixels
    score: np.ndarray
    class_id: np.ndarray
    candidate_score: np.ndarray  # the best class score of every anchor at or above the floor, before NMS
    candidate_class: np.ndarray  # and that class


def select_boxes(raw: np.ndarray, num_classes: int, confidence: float, iou: float, max_detections: int = MAX_DETECTIONS,
                 floor: float = CANDIDATE_FLOOR, *, class_agnostic: bool = False,
                 max_candidates: int = MAX_CANDIDATES) -> Selection:
    """From one image's `(4+nc+extra, N)` output: NMS (class-aware unless `class_agnostic`) of the anchors at or
    above `confidence` (at most `max_candidates`, the most confident), best first, at most `max_detections`; and
    what was computed on the way, the candidates at or above `floor` (at most `MAX_CANDIDATES`, the most confident)
    with their best class, for the sampler."""
    import cv2

    scores = raw[4:4 + num_classes]
    best = scores.max(axis=0)
    scored = np.flatnonzero(best >= min(confidence, floor))
    if scored.size > MAX_CANDIDATES:
        scored = scored[np.argpartition(-best[scored], MAX_CANDIDATES)[:MAX_CANDIDATES]]
    scored_class = scores[:, scored].argmax(axis=0) if scored.size else np.zeros(0, dtype=np.int64)
    passing = best[scored] >= confidence
    candidates, class_id = scored[passing], scored_class[passing]
    if candidates.size > max_candidates:
        best_ones = np.argpartition(-best[candidates], max_candidates)[:max_candidates]
        candidates, class_id = candidates[best_ones], class_id[best_ones]
    if candidates.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Selection(empty, np.zeros((0, 4), np.float32), np.zeros(0, np.float32), empty, best[scored],
                         scored_class)
    score = best[candidates]
    cx, cy, w, h = raw[:4, candidates]
    xywh = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
    groups = np.zeros_like(class_id) if class_agnostic else class_id
    kept = cv2.dnn.NMSBoxesBatched(xywh, score, groups, confidence, iou, top_k=max_detections)  # type: ignore[arg-type]  # arrays work
    keep = np.asarray(kept, dtype=np.int64).reshape(-1)  # best first
    xyxy = np.column_stack([xywh[keep, :2], xywh[keep, :2] + xywh[keep, 2:]])
    return Selection(candidates[keep], xyxy, score[keep], class_id[keep], best[scored], scored_class)


def select_rows(rows: np.ndarray, confidence: float, max_detections: int = MAX_DETECTIONS,
                floor: float = CANDIDATE_FLOOR) -> Selection:
    """From one image's end-to-end output `(M, 6+extra)` (x1, y1, x2, y2, score, class, ...; input pixels): the
    rows at or above `confidence`, best first, at most `max_detections`, with no second NMS; and the candidates at
    or above `floor`. The rows an `nms=True` export pads with (all zero) are never candidates."""
    score = rows[:, 4]
    order = np.argsort(-score, kind="stable")
    scored = order[(score[order] >= min(confidence, floor)) & (score[order] > 0)]
    class_id = rows[:, 5].round().astype(np.int64)
    kept = scored[score[scored] >= confidence][:max_detections]
    return Selection(kept, rows[kept, :4], score[kept], class_id[kept], score[scored], class_id[scored])


def mask_polygons(coefficients: np.ndarray, prototypes: np.ndarray, boxes: np.ndarray, box: Letterbox
                  ) -> list[np.ndarray]:
    """One polygon (frame pixels, `(M, 2)`) per detection from its mask coefficients `(n, P)` and the image's
    prototypes `(P, h, w)`; `boxes` are the detections in input pixels. The mask is cropped to its box, as
    Ultralytics does, and traced at the resolution of the resized frame."""
    import cv2
    import supervision as sv

    if len(coefficients) == 0:
        return []
    p, mh, mw = prototypes.shape
    logits = (coefficients @ prototypes.reshape(p, -1)).reshape(-1, mh, mw)
    polygons = []
    for logit, (bx1, by1, bx2, by2) in zip(logits, boxes, strict=True):
        full = cv2.resize(logit, (box.input_w, box.input_h), interpolation=cv2.INTER_LINEAR)
        region = full[box.top:box.top + box.resized_h, box.left:box.left + box.resized_w]
        mask = region > 0  # sigmoid(x) > 0.5
        crop = np.zeros_like(mask)
        cx1, cy1 = max(0, int(bx1 - box.left)), max(0, int(by1 - box.top))
        cx2, cy2 = int(np.ceil(bx2 - box.left)), int(np.ceil(by2 - box.top))
        crop[cy1:cy2, cx1:cx2] = mask[cy1:cy2, cx1:cx2]
        found = sv.mask_to_polygons(crop)
        if not found:
            polygons.append(np.zeros((0, 2), np.float32))
            continue
        largest = max(found, key=cv2.contourArea).astype(np.float32)
        polygons.append(np.column_stack([largest[:, 0] / box.scale_x, largest[:, 1] / box.scale_y]))
    return polygons


def keypoints_to_frame(raw: np.ndarray, kpt_shape: tuple[int, int], box: Letterbox) -> np.ndarray:
    """`(n, K*D)` keypoint rows in input pixels → `(n, K, 3)` x, y, confidence in frame pixels."""
    k, d = kpt_shape
    points = raw.reshape(len(raw), k, d)
    out = np.ones((len(raw), k, 3), dtype=np.float32)
    out[..., :2] = box.to_frame(points[..., :2])
    if d == 3:
        out[..., 2] = points[..., 2]
    return out


def label_scores(raw: np.ndarray) -> np.ndarray:
    """A multi-label classifier's independent class scores: as given when all lie in [0, 1], else read as logits
    (a sigmoid applied)."""
    if raw.min() >= 0 and raw.max() <= 1:
        return raw.astype(np.float32)
    return (1 / (1 + np.exp(-raw))).astype(np.float32)


def class_probabilities(raw: np.ndarray) -> np.ndarray:
    """Ultralytics classifiers apply softmax in the graph; apply it here only when they did not."""
    if raw.min() >= 0 and abs(float(raw.sum()) - 1.0) < 1e-3:
        return raw.astype(np.float32)
    shifted = np.exp(raw - raw.max())
    return (shifted / shifted.sum()).astype(np.float32)
