"""SPEC §5: downscaling, JPEG quality, and geometry that lands on the same pixels of the saved image."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from framesift.collectors import Collector, LocalDataset
from framesift.collectors.images import fitted_size, prepare_image
from framesift.predictions import DetectionPrediction
from tests.helpers import collect_all_config


@pytest.mark.parametrize("size,max_size,expected", [
    ((1920, 1080), (480, 640), (640, 360)),      # width is the longer relative side
    ((1080, 1920), (480, 640), (270, 480)),      # height is
    ((640, 480), (1080, 1920), (640, 480)),      # never upscaled
    ((1000, 3), (10, 10), (10, 1)),              # minimum 1
    ((641, 480), (480, 640), (640, 479)),        # 479.25 rounds to 479
    ((100, 100), None, (100, 100)),
])
def test_fitted_size(size, max_size, expected):
    assert fitted_size(*size, max_size) == expected


def test_jpeg_quality_is_the_compression_level():
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    low, high = prepare_image(frame, None, 10), prepare_image(frame, None, 95)
    assert len(low.jpeg) < len(high.jpeg) / 2
    assert cv2.imdecode(np.frombuffer(high.jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)


def bright_bbox(image: np.ndarray, channel: int) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(image[:, :, channel] > 128)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def test_box_polygon_and_keypoints_land_on_the_same_pixels(tmp_path):
    # a 1200x600 frame saved at most 300x400 (h, w) -> 400x200: x factor 1/3, y factor 1/3
    # a 1000x900 frame -> 333x300 exercises different x and y factors after rounding
    for width, height in ((1200, 600), (1000, 900)):
        frame = np.zeros((height, width, 3), np.uint8)
        box = (300, 150, 600, 450)
        cv2.rectangle(frame, box[:2], (box[2] - 1, box[3] - 1), (255, 0, 0), -1)  # blue box
        triangle = np.array([[700, 100], [900, 100], [800, 400]], np.int32)
        cv2.fillPoly(frame, [triangle], (0, 255, 0))  # green polygon
        keypoint = (150, 500)
        cv2.circle(frame, keypoint, 12, (0, 0, 255), -1)  # red keypoint
        prediction = DetectionPrediction.from_lists(
            "instance-segmentation", "shapes/1", (width, height),
            xyxy=[box, [700, 100, 900, 400]], confidence=[0.9, 0.8], class_name=["box", "triangle"],
            polygons=[[[300, 150], [600, 150], [600, 450], [300, 450]], triangle.tolist()],
            keypoints=[[[keypoint[0], keypoint[1], 1.0]], [[0, 0, 0.0]]], keypoint_names=["dot"])
        before = prediction.to_json()
        target = tmp_path / f"ds{width}"
        collector = Collector(collect_all_config(max_image_size=[300, 400]), LocalDataset(target))
        assert collector.submit(frame, prediction)
        collector.close()
        assert prediction.to_json()["predictions"][0]["x"] == before["predictions"][0]["x"]  # not mutated
        record = json.loads((target / "datapoints.jsonl").read_text())
        saved = cv2.imread(str(target / record["image"]))
        saved_json = json.loads((target / record["prediction"]).read_text())
        h, w = saved.shape[:2]
        assert (record["width"], record["height"]) == (w, h)
        assert saved_json["image"] == {"width": w, "height": h}
        sx, sy = w / width, h / height

        p_box, p_tri = saved_json["predictions"]
        x1, y1, x2, y2 = bright_bbox(saved, 0)
        assert abs(p_box["x"] - (x1 + x2) / 2) <= 1.5 and abs(p_box["y"] - (y1 + y2) / 2) <= 1.5
        assert abs(p_box["width"] - (x2 - x1)) <= 2 and abs(p_box["height"] - (y2 - y1)) <= 2
        tx1, ty1, tx2, ty2 = bright_bbox(saved, 1)
        xs = [pt["x"] for pt in p_tri["points"]]
        ys = [pt["y"] for pt in p_tri["points"]]
        assert abs(min(xs) - tx1) <= 2 and abs(max(xs) - tx2) <= 2
        assert abs(min(ys) - ty1) <= 2 and abs(max(ys) - ty2) <= 2
        kx, ky = p_box["keypoints"][0]["x"], p_box["keypoints"][0]["y"]
        assert saved[round(ky), round(kx), 2] > 200  # the keypoint is on the red dot
        assert (kx, ky) == pytest.approx((keypoint[0] * sx, keypoint[1] * sy))
