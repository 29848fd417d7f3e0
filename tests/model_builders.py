"""ONNX models with outputs the tests know, in the exact Ultralytics export layouts.

The models find pure-colour squares in the image (one per colour, red, green and blue by default) and report
their exact bounding box, computed by the graph from the pixels: so a test draws squares on a frame of any
aspect ratio and checks that the decoded predictions land on them.

- detection: `[B, 4+nc, nc]`, one anchor per colour, confidence `CONFIDENCES[c]` when the colour is present;
- segmentation: adds mask prototypes `[B, nc+1, S/4, S/4]` (the colour masks and a constant), coefficients that
  make each anchor's mask exactly its colour's pixels;
- pose: two keypoints per object, its top-left corner and its centre (`kpt_shape [2, 3]`, confidence 0.9);
- classification: `[B, nc]`, softmax over the share of each colour;
- multi-label classification (`build_multilabel_model`): `[B, nc]` logits, high for each colour present.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

COLOURS_RGB = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}
CONFIDENCES = {"red": 0.9, "green": 0.6, "blue": 0.35}
BGR = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, value: np.ndarray | float | list, dtype=np.float32) -> str:
        name = self._name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs) -> str:
        out = self._name(op_type)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"


def _colour_masks(g: _Graph, image: str) -> list[str]:
    """One `[B, S, S]` float mask per colour: pixels within a small distance of the pure colour."""
    masks = []
    for rgb in COLOURS_RGB.values():
        diff = g.op("Sub", image, g.const(np.array(rgb, np.float32).reshape(1, 3, 1, 1)))
        dist = g.op("ReduceSum", g.op("Mul", diff, diff), g.const([1], np.int64), keepdims=0)
        masks.append(g.op("Cast", g.op("Less", dist, g.const(0.05)), to=TensorProto.FLOAT))
    return masks


def _box_columns(g: _Graph, mask: str) -> tuple[str, str, str, str, str]:
    """cx, cy, w, h and presence `[B, 1]` of the pixels of one mask."""
    cols = g.op("ReduceMax", mask, g.const([1], np.int64), keepdims=0)  # [B, S]
    rows = g.op("ReduceMax", mask, g.const([2], np.int64), keepdims=0)

    def span(v: str) -> tuple[str, str]:
        first = g.op("Cast", g.op("ArgMax", v, axis=1, keepdims=1), to=TensorProto.FLOAT)
        last = g.op("Cast", g.op("ArgMax", v, axis=1, keepdims=1, select_last_index=1), to=TensorProto.FLOAT)
        return first, g.op("Add", last, g.const(1.0))

    x1, x2 = span(cols)
    y1, y2 = span(rows)
    half = g.const(0.5)
    cx = g.op("Mul", g.op("Add", x1, x2), half)
    cy = g.op("Mul", g.op("Add", y1, y2), half)
    present = g.op("ReduceMax", cols, g.const([1], np.int64), keepdims=1)
    return cx, cy, g.op("Sub", x2, x1), g.op("Sub", y2, y1), present


ARGS = "{{'data': None, 'batch': 1, 'fraction': 1.0, 'quantize': None, 'nms': {}, 'dynamic': False, " \
       "'simplify': True, 'opset': 17}}"  # as Ultralytics 8.4 writes them (../shared/models)
END_TO_END_METADATA = {  # what Ultralytics writes for each end-to-end form (YOLOv10's older exports say nothing)
    "end2end": {"end2end": "True", "args": ARGS.format(False)},
    "nms": {"end2end": "False", "args": ARGS.format(True)},
    "v10": {},
}
NMS_EXPORT_CONF = 0.25  # an `nms=True` export keeps the rows above its `conf` (0.25 by default)
LOW_SCORE = 0.005  # the score of the rows an end-to-end export fills its top-k with when nothing else is there


def build_model(path: str | Path, task: str = "detect", size: int = 160, dynamic_batch: bool = False,
                names_metadata: bool = True, extra_metadata: dict[str, str] | None = None, static_batch: int = 1,
                half: bool = False, form: str = "plain", rows: int = 300, symbolic_columns: bool = False,
                dynamic_size: bool = False) -> Path:
    """Write the model for `task` (detect, segment, pose, classify) with a square input of `size` pixels (or, with
    `dynamic_size`, symbolic image axes, as a `dynamic=True` export has, `size` being its `imgsz`); its batch
    axis dynamic or of `static_batch` images; float16 inputs and outputs with `half` (as Ultralytics' `half=True`
    export has).

    `form` is the plain export or an end-to-end one, `[B, rows, 6+extras]` (x1, y1, x2, y2, score, class, then the
    mask coefficients or keypoints), best row first: `end2end` (YOLO26's default: the top `rows` scores, the rest
    filled with rows of `LOW_SCORE`), `v10` (the same rows, no metadata saying so) or `nms` (an `nms=True` export:
    the rows above `NMS_EXPORT_CONF`, then zeros). `symbolic_columns` declares the last axis dynamic, as a
    `dynamic=True` end-to-end export does."""
    g = _Graph()
    batch = "batch" if dynamic_batch else static_batch
    io_type = TensorProto.FLOAT16 if half else TensorProto.FLOAT
    masks = _colour_masks(g, g.op("Cast", "images", to=TensorProto.FLOAT) if half else "images")
    names = list(COLOURS_RGB)
    nc = len(names)
    outputs = []
    metadata = {"task": task, "imgsz": f"[{size}, {size}]", "stride": "32"}
    if names_metadata:
        metadata["names"] = repr(dict(enumerate(names)))

    if task == "classify":
        shares = [g.op("ReduceMean", m, g.const([1, 2], np.int64), keepdims=0) for m in masks]  # [B]
        stacked = g.op("Concat", *[g.op("Unsqueeze", s, g.const([1], np.int64)) for s in shares], axis=1)
        outputs.append(("output0", g.op("Softmax", g.op("Mul", stacked, g.const(10.0)), axis=1), [batch, nc]))
    else:
        columns = []
        for c, mask in enumerate(masks):
            cx, cy, w, h, present = _box_columns(g, mask)
            score_values = [g.op("Mul", present, g.const(CONFIDENCES[names[c]] if k == c else 0.0))
                            for k in range(nc)]
            parts = [cx, cy, w, h, *score_values]
            if task == "segment":  # coefficients over nc colour prototypes and one constant prototype
                coeff = [20.0 if k == c else 0.0 for k in range(nc)] + [-10.0]
                parts += [g.op("Mul", present, g.const(v)) for v in coeff]
            if task == "pose":  # top-left corner and centre, confidence 0.9
                x1 = g.op("Sub", cx, g.op("Mul", w, g.const(0.5)))
                y1 = g.op("Sub", cy, g.op("Mul", h, g.const(0.5)))
                conf = g.op("Mul", present, g.const(0.9))
                parts += [x1, y1, conf, cx, cy, conf]
            if form == "plain":
                columns.append(g.op("Unsqueeze", g.op("Concat", *parts, axis=1), g.const([2], np.int64)))
            else:
                columns.append(_end_to_end_row(g, parts, nc, c, present))
        if form == "plain":
            outputs.append(("output0", g.op("Concat", *columns, axis=2), [batch, len(parts), nc]))
        else:
            width = len(parts) - nc + 2
            outputs.append(("output0", _end_to_end_rows(g, columns, rows, width, form, present),
                            [batch, rows, "anchors" if symbolic_columns else width]))
            metadata.update(END_TO_END_METADATA[form])
        if task == "segment":
            stacked = g.op("Concat", *[g.op("Unsqueeze", m, g.const([1], np.int64)) for m in masks], axis=1)
            pooled = g.op("AveragePool", stacked, kernel_shape=[4, 4], strides=[4, 4])
            ones = g.op("Add", g.op("Mul", g.op("Slice", pooled, g.const([0], np.int64), g.const([1], np.int64),
                                                 g.const([1], np.int64)), g.const(0.0)), g.const(1.0))
            mask_size = ["mask_height", "mask_width"] if dynamic_size else [size // 4, size // 4]
            outputs.append(("output1", g.op("Concat", pooled, ones, axis=1), [batch, nc + 1, *mask_size]))
        if task == "pose":
            metadata["kpt_shape"] = "[2, 3]"
            metadata["kpt_names"] = repr({0: ["corner", "centre"]})
    metadata.update(extra_metadata or {})

    graph_outputs = []
    for name, value, shape in outputs:
        g.nodes.append(helper.make_node("Cast", [value], [name], to=io_type))
        graph_outputs.append(helper.make_tensor_value_info(name, io_type, shape))
    graph = helper.make_graph(
        g.nodes, f"squares-{task}",
        [helper.make_tensor_value_info("images", io_type,
                                       [batch, 3, *(["height", "width"] if dynamic_size else [size, size])])],
        graph_outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="framesift-tests")
    model.ir_version = 8
    for key, value in metadata.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def _end_to_end_row(g: _Graph, parts: list[str], nc: int, c: int, present: str) -> str:
    """One colour's row `[B, 1, 6+extras]` from its plain column: cx, cy, w, h become x1, y1, x2, y2, and its
    class scores its score and class."""
    cx, cy, w, h = parts[:4]
    half_w, half_h = g.op("Mul", w, g.const(0.5)), g.op("Mul", h, g.const(0.5))
    box = [g.op("Sub", cx, half_w), g.op("Sub", cy, half_h), g.op("Add", cx, half_w), g.op("Add", cy, half_h)]
    label = g.op("Add", g.op("Mul", present, g.const(0.0)), g.const(float(c)))
    row = g.op("Concat", *box, parts[4 + c], label, *parts[4 + nc:], axis=1)
    return g.op("Unsqueeze", row, g.const([1], np.int64))


def _end_to_end_rows(g: _Graph, colour_rows: list[str], rows: int, width: int, form: str, present: str) -> str:
    """The colours' rows and the filling ones, sorted by score (TopK), as the export's `[B, rows, width]`."""
    filler = np.zeros((1, width), np.float32)
    if form != "nms":
        filler[0, :5] = [10, 10, 20, 20, LOW_SCORE]
    fill = g.op("Add", g.op("Mul", present, g.const(np.zeros((1, width), np.float32))), g.const(filler))
    fill = g.op("Tile", g.op("Unsqueeze", fill, g.const([1], np.int64)),
                g.const([1, rows - len(colour_rows), 1], np.int64))
    every = g.op("Concat", *colour_rows, fill, axis=1)  # [B, rows, width]
    score = g.op("Gather", every, g.const(4, np.int64), axis=2)  # [B, rows]
    g.nodes.append(helper.make_node("TopK", [score, g.const([rows], np.int64)], ["ranked_scores", "order"], axis=1))
    index = g.op("Expand", g.op("Unsqueeze", "order", g.const([2], np.int64)), g.op("Shape", every))
    ranked = g.op("GatherElements", every, index, axis=1)
    if form == "nms":  # below the export's conf: zeros
        ranked_score = g.op("Gather", ranked, g.const(4, np.int64), axis=2)
        keep = g.op("Cast", g.op("Greater", ranked_score, g.const(NMS_EXPORT_CONF)), to=TensorProto.FLOAT)
        ranked = g.op("Mul", ranked, g.op("Unsqueeze", keep, g.const([2], np.int64)))
    return ranked


def build_multilabel_model(path: str | Path, size: int = 64) -> Path:
    """A multi-label classifier `[B, nc]` of logits (as many multi-label exports give, no sigmoid in the graph): a
    colour present anywhere in the image scores `CONFIDENCES[colour]` after the sigmoid, an absent one 0.02."""
    g = _Graph()
    names = list(COLOURS_RGB)
    logit = lambda p: float(np.log(p / (1 - p)))  # noqa: E731
    columns = []
    for name, mask in zip(names, _colour_masks(g, "images"), strict=True):
        present = g.op("ReduceMax", mask, g.const([1, 2], np.int64), keepdims=0)  # [B]
        score = g.op("Add", g.op("Mul", present, g.const(logit(CONFIDENCES[name]) - logit(0.02))),
                     g.const(logit(0.02)))
        columns.append(g.op("Unsqueeze", score, g.const([1], np.int64)))
    g.nodes.append(helper.make_node("Concat", columns, ["output0"], axis=1))
    graph = helper.make_graph(
        g.nodes, "squares-multilabel", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, len(names)])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="framesift-tests")
    model.ir_version = 8
    for key, value in {"task": "classify", "imgsz": f"[{size}, {size}]", "names": repr(dict(enumerate(names)))}.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def build_unknown_layout(path: str | Path) -> Path:
    """A valid ONNX model whose output `[1, 7]`+`[1, 5, 5]` matches no Ultralytics layout."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 5, 5, 2])
    g = _Graph()
    sliced = g.op("Slice", "images", g.const([0, 0, 0, 0], np.int64), g.const([1, 1, 5, 5], np.int64))
    g.nodes.append(helper.make_node("Concat", [sliced, sliced], ["out"], axis=3))
    graph = helper.make_graph(g.nodes, "odd", [x], [out], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return Path(path)


def build_model_failing_at_run_time(path: str | Path) -> Path:
    """A model whose declared shapes are a detector's (3 classes) but whose Reshape cannot run: it loads, and fails
    on every frame."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 7, 10])
    g = _Graph()
    seven = g.op("Cast", g.op("Add", g.op("Mul", g.op("ReduceMax", "images", keepdims=0), g.const(0.0)),
                              g.const(7.0)), to=TensorProto.INT64)  # computed when run: no check at load sees it
    shape = g.op("Concat", g.const([1], np.int64), g.op("Unsqueeze", seven, g.const([0], np.int64)),
                 g.const([-1], np.int64), axis=0)
    g.nodes.append(helper.make_node("Reshape", ["images", shape], ["output0"]))  # 3072 values in rows of 7
    model = helper.make_model(helper.make_graph(g.nodes, "failing", [x], [out], g.inits),
                              opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return Path(path)


def build_demo_model(path: str | Path, size: int = 320) -> Path:
    """The bundled demo detector (`framesift/models/assets/demo-shapes.onnx`) of the demo scene's squares.

    Anchors every 8 input pixels, boxes of 8 sizes; an anchor's confidence is how well its box fits the pixels of
    its colour: the share of the box they fill times the share of nearby colour pixels the box holds. A perfect
    fit scores about 1; offsets, compression and partial overlaps give the varied confidences the demo shows.
    """
    from framesift.demo import SHAPE_COLOURS_BGR

    g = _Graph()
    masks = []
    for b, gr, r in SHAPE_COLOURS_BGR.values():
        target = np.array([r, gr, b], np.float32).reshape(1, 3, 1, 1) / 255
        diff = g.op("Sub", "images", g.const(target))
        dist = g.op("ReduceSum", g.op("Mul", diff, diff), g.const([1], np.int64), keepdims=1)
        masks.append(g.op("Cast", g.op("Less", dist, g.const(0.06)), to=TensorProto.FLOAT))
    stacked = g.op("Concat", *masks, axis=1)  # [1, nc, S, S]
    coarse = g.op("AveragePool", stacked, kernel_shape=[4, 4], strides=[4, 4])  # 4-pixel cells
    grid = size // 8 + 1
    scores, centres, sizes = [], [], []
    for cells in (4, 6, 8, 10, 12, 14, 16, 20):  # box sides of 16..80 input pixels
        fill = g.op("AveragePool", coarse, kernel_shape=[cells, cells], strides=[2, 2],
                    pads=[cells // 2] * 4, count_include_pad=1)
        near = 2 * cells
        around = g.op("AveragePool", coarse, kernel_shape=[near, near], strides=[2, 2],
                      pads=[near // 2] * 4, count_include_pad=1)
        held = g.op("Div", g.op("Mul", fill, g.const(float(cells * cells))),
                    g.op("Add", g.op("Mul", around, g.const(float(near * near))), g.const(1e-3)))
        score = g.op("Mul", g.op("Mul", fill, held), g.const(0.97))
        scores.append(g.op("Reshape", score, g.const([1, len(masks), grid * grid], np.int64)))
        ys, xs = np.mgrid[0:grid, 0:grid] * 8
        centres.append(np.stack([xs.ravel(), ys.ravel()]))
        sizes.append(np.full((2, grid * grid), cells * 4))
    boxes = np.concatenate([np.concatenate(centres, axis=1), np.concatenate(sizes, axis=1)])[None]
    output = g.op("Concat", g.const(boxes.astype(np.float32)), g.op("Concat", *scores, axis=2), axis=1)
    g.nodes.append(helper.make_node("Identity", [output], ["output0"]))
    anchors = boxes.shape[2]
    graph = helper.make_graph(
        g.nodes, "demo-shapes", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + len(masks), anchors])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="framesift")
    model.ir_version = 8
    metadata = {"task": "detect", "imgsz": f"[{size}, {size}]", "stride": "8",
                "names": repr(dict(enumerate(f"{name} square" for name in SHAPE_COLOURS_BGR))),
                "description": "framesift demo detector of coloured squares (built by scripts/build_demo_model.py)"}
    for key, value in metadata.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def scene(width: int, height: int) -> tuple[np.ndarray, dict[str, tuple[int, int, int, int]]]:
    """A grey frame with a red, a green and a blue square; returns it with the squares' xyxy boxes."""
    frame = np.full((height, width, 3), 90, np.uint8)
    side = max(12, min(width, height) // 5)
    boxes = {}
    for k, name in enumerate(BGR):
        x1 = int(width * (0.1 + 0.3 * k))
        y1 = int(height * (0.15 + 0.25 * k))
        boxes[name] = (x1, y1, x1 + side, y1 + side)
        cv2.rectangle(frame, (x1, y1), (x1 + side - 1, y1 + side - 1), BGR[name], -1)
    return frame, boxes


def squares_video(path: str | Path, width: int, height: int, frames: int = 4, fps: int = 10) -> Path:
    """The `scene` of three squares as an H.264 clip, losslessly coded (qp 0), so a model finds them at their exact
    place; returns its path."""
    import av

    frame, _ = scene(width, height)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"qp": "0"}
        for _ in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode(None))
    return Path(path)
