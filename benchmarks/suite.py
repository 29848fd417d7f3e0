"""The end-to-end figures of issue 5: cost of collection, overlap of stages, the peer, a hand-written loop, live
latency and memory. Every run is its own process; figures are medians with min–max over `--repeats` runs, and
each ratio compares runs made side by side in this one invocation, interleaved (a, b, a, b, ...).

Run: `python benchmarks/suite.py [--repeats 3] [--yolo PATH]
[--sections collection,overlap,peer,handloop,latency,memory]` (part of `make bench`). Prints Markdown; every
section names the machine (CPU model, cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"
PEER_PYTHON = HERE / ".peer-venv" / "bin" / "python"
YOLO = ROOT.parent / "shared" / "models" / "yolov8n-random-static.onnx"
YOLO_DYNAMIC = ROOT.parent / "shared" / "models" / "yolov8n-random-dyn.onnx"  # fed 640×384 on 16:9 (issue 24)
SECTIONS = ("collection", "overlap", "peer", "handloop", "latency", "memory")
SIZES = {"480p": (640, 480), "720p": (1280, 720), "1080p": (1920, 1080)}

sys.path.insert(0, str(ROOT))

from benchmarks.run import cpu_name  # noqa: E402


def video(name: str, size: tuple[int, int], frames: int) -> str:
    """A generated H.264 clip with motion and texture, cached in benchmarks/.work."""
    from framesift.demo import write_demo_video

    path = WORK / f"{name}.mp4"
    if not path.exists():
        write_demo_video(path, frames=frames, width=size[0], height=size[1])
    return str(path)


def measure_together(commands: dict[str, list[str] | None], repeats: int) -> dict[str, dict]:
    """Runs compared by a ratio, interleaved round-robin (a, b, a, b, ...) so that the machine's drift over
    minutes hits every side alike. A None command (a peer not installed) is skipped."""
    runs: dict[str, list[dict]] = {name: [] for name, command in commands.items() if command}
    for _ in range(repeats):
        for name in runs:
            runs[name].append(_run_once(commands[name]))
    return {name: {key: _summary([r[key] for r in results if r.get(key) is not None])
                   for key in results[0] if isinstance(results[0][key], (int, float))}
            for name, results in runs.items()}


def _run_once(command: list[str]) -> dict:
    process = subprocess.Popen([*command, "--t0", repr(time.time())], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT)
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def _summary(values: list[float]) -> tuple[float, float, float] | None:
    return (statistics.median(values), min(values), max(values)) if values else None


def framesift(mode: str, source: str, **options) -> list[str]:
    if options.get("model") == "demo":
        options.setdefault("confidence", 0.5)  # the demo model's working threshold, as the peer's runner uses
    command = [sys.executable, str(HERE / "runner.py"), mode, source]
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        command += [flag] if value is True else [flag, str(value)]
    return command


def peer(source: str, **options) -> list[str] | None:
    if not PEER_PYTHON.exists():
        return None
    command = [str(PEER_PYTHON), str(HERE / "peer_runner.py"), source]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    return command


def f(t: tuple | None, digits: int = 1) -> str:
    if t is None:
        return "–"
    return f"{t[0]:.{digits}f} ({t[1]:.{digits}f}–{t[2]:.{digits}f})"


def ratio(a: dict, b: dict, key: str = "fps") -> str:
    return f"{a[key][0] / b[key][0]:.2f}" if a.get(key) and b.get(key) else "–"


def main(repeats: int = 3, yolo: Path = YOLO, sections: tuple[str, ...] = SECTIONS) -> str:
    from framesift.models import ModelError  # noqa: F401 - fail early if the package is missing

    WORK.mkdir(exist_ok=True)
    clips = {name: video(f"clip-{name}", size, 300) for name, size in SIZES.items()}
    cfg = {name: str(HERE / "configs" / f"{name}.yaml") for name in ("realistic", "stress", "bootstrap")}
    yolo_model = str(yolo) if yolo.is_file() else None
    out = [f"## End to end ({repeats} runs each; fps median (min–max); {cpu_name()})", ""]
    if "collection" in sections:
        out += collection(repeats, clips, cfg, yolo_model)
    if "overlap" in sections:
        out += overlap(repeats, clips, yolo_model)
    if "peer" in sections:
        out += against_peer(repeats, clips, cfg, yolo_model)
    if "handloop" in sections and yolo_model:
        out += handloop(repeats, clips, cfg, yolo_model)
    if "latency" in sections:
        out += ["", "### 5. Live latency: a 30 fps source, a model slower than that (YOLOv8n or the demo model, 480p)",
                ""]
        out += live_latency(repeats, yolo_model or "demo")
    if "memory" in sections:
        out += memory(repeats, clips, cfg)
    return "\n".join(out) + "\n"


def collection(repeats: int, clips: dict[str, str], cfg: dict[str, str], yolo_model: str | None) -> list[str]:
    out = ["### 1. Cost of collection (1080p, 300 frames)", "",
            "| model | run | fps | sampled | registered | dropped (counted) | ratio to no collection | target |",
            "|---|---|---|---|---|---|---|---|"]
    for model in ("demo", yolo_model):
        if model is None:
            continue
        runs = measure_together({"off": framesift("pipeline", clips["1080p"], model=model),
                                 **{name: framesift("pipeline", clips["1080p"], model=model, config=cfg[name])
                                    for name in ("realistic", "stress")}}, repeats)
        base = runs["off"]
        out.append(f"| {Path(model).stem} | collection off | {f(base['fps'])} | – | – | – | 1.00 | |")
        for name, target in (("realistic", "≥ 0.97"), ("stress", "≥ 0.90")):
            run = runs[name]
            out.append(f"| {Path(model).stem} | {name} | {f(run['fps'])} | {f(run['datapoints_sampled'], 0)} | "
                       f"{f(run['datapoints_registered'], 0)} | {f(run['datapoints_dropped'], 0)} | "
                       f"{ratio(run, base)} | {target} |")
    return out


def overlap(repeats: int, clips: dict[str, str], yolo_model: str | None) -> list[str]:
    out = ["", "### 2. Overlap of stages (1080p)", "",
            "| model | decode only | model only (with preprocessing) | full pipeline | pipeline ÷ min(stages) |",
            "|---|---|---|---|---|"]
    for model in ("demo", yolo_model):
        if model is None:
            continue
        runs = measure_together({"decode": framesift("decode", clips["1080p"]),
                                 "alone": framesift("model", clips["1080p"], model=model),
                                 "full": framesift("pipeline", clips["1080p"], model=model)}, repeats)
        decode, alone, full = runs["decode"], runs["alone"], runs["full"]
        slowest = min(decode["fps"][0], alone["fps"][0])
        out.append(f"| {Path(model).stem} | {f(decode['fps'])} | {f(alone['fps'])} | {f(full['fps'])} | "
                   f"{full['fps'][0] / slowest:.2f} (target ≥ 0.95) |")
    return out


def against_peer(repeats: int, clips: dict[str, str], cfg: dict[str, str], yolo_model: str | None) -> list[str]:
    """framesift and the peer replaying the 1080p file, timed from each pipeline's start to its end (the first
    prediction, imports included, reported apart). The dynamic-size YOLOv8n export is also run fed its 640×640
    square (`--square`: framesift before issue 24's rectangular inputs; the peer's user code feeds it that too)."""
    out = ["", "### 3. Against Roboflow Inference's InferencePipeline (1080p, 300 frames)", ""]
    if not PEER_PYTHON.exists():
        return [*out, "Not measured: the peer is not installed (`benchmarks/install_peer.sh`)."]
    out += ["| case | framesift fps | peer fps | ratio | target | framesift first prediction (s) | "
            "peer first prediction (s) | framesift peak RSS (MiB) | peer peak RSS (MiB) | framesift fed the square: "
            "fps | framesift ÷ fed the square |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    cases = [("bootstrapping: stub, random 1 %, every frame decoded", "stub", cfg["bootstrap"], "≥ 2.0"),
             ("light model: demo", "demo", cfg["realistic"], "≥ 1.5")]
    if yolo_model:
        cases.append(("YOLOv8n export", yolo_model, cfg["realistic"], "≥ 1.1"))
    if YOLO_DYNAMIC.is_file():
        cases.append(("YOLOv8n dynamic-size export (640×384)", str(YOLO_DYNAMIC), cfg["realistic"], "≥ 1.1"))
    for label, model, config, target in cases:
        square = model == str(YOLO_DYNAMIC)
        runs = measure_together({
            "ours": framesift("pipeline", clips["1080p"], model=model, config=config),
            "square": framesift("pipeline", clips["1080p"], model=model, config=config, square=True)
            if square else None,
            "theirs": peer(clips["1080p"], model=model, sample=0.01 if model == "stub" else 0.1)}, repeats)
        ours, theirs, before = runs["ours"], runs["theirs"], runs.get("square")
        out.append(f"| {label} | {f(ours['fps'])} | {f(theirs['fps'])} | {ratio(ours, theirs)} | {target} | "
                   f"{f(ours['first_prediction_s'], 2)} | {f(theirs['first_prediction_s'], 2)} | "
                   f"{f(ours['rss_mib'], 0)} | {f(theirs['rss_mib'], 0)} | "
                   f"{f(before['fps']) if before else '–'} | {ratio(ours, before) if before else '–'} |")
    return [*out, "", f"Installed size: framesift's environment {_du(ROOT / '.venv')}, "
                      f"the peer's {_du(HERE / '.peer-venv')}."]


def handloop(repeats: int, clips: dict[str, str], cfg: dict[str, str], yolo_model: str) -> list[str]:
    out = ["", "### 4. Against a hand-written OpenCV + ONNX Runtime loop (YOLOv8n, realistic config, 1080p)", "",
           "| run | fps | ratio | target |", "|---|---|---|---|"]
    runs = measure_together({
        "hand": framesift("handloop", clips["1080p"], model=yolo_model),
        "ours": framesift("pipeline", clips["1080p"], model=yolo_model, config=cfg["realistic"])}, repeats)
    hand, ours = runs["hand"], runs["ours"]
    return [*out, f"| hand-written loop | {f(hand['fps'])} | 1.00 | |",
            f"| framesift | {f(ours['fps'])} | {ratio(ours, hand)} | ≥ 1.2 |"]


def memory(repeats: int, clips: dict[str, str], cfg: dict[str, str]) -> list[str]:
    long_clip = video("long-480p", SIZES["480p"], 3000)
    out = ["", "### 6. Memory: peak RSS with the realistic configuration (demo model, 480p)", "",
           "| video | frames | peak RSS (MiB) |", "|---|---|---|"]
    runs = measure_together({label: framesift("pipeline", clip, model="demo", config=cfg["realistic"])
                             for label, clip in (("300 frames", clips["480p"]), ("3000 frames", long_clip))}, repeats)
    return [*out, *(f"| {label} | {f(run['frames'], 0)} | {f(run['rss_mib'], 0)} |" for label, run in runs.items())]


def live_latency(repeats: int, model: str) -> list[str]:
    from tests.servers import RtspServer, free_port

    server = RtspServer(free_port(), size=(640, 480, 30))
    try:
        server.start()
    except (RuntimeError, OSError) as error:
        return [f"Not measured: {error}"]
    lines = ["| pipeline | frame age p50 (s) | frame age p99 (s) | frames inferred | frames dropped (counted) |",
             "|---|---|---|---|---|"]
    try:
        runs = measure_together({"ours": framesift("pipeline", server.url, model=model, duration=20),
                                 "theirs": peer(server.url, model=model, duration=20, sample=0.0)}, repeats)
        ours = runs["ours"]
        lines.append(f"| framesift | {f(ours['age_p50'], 3)} | {f(ours['age_p99'], 3)} | {f(ours['frames'], 0)} | "
                     f"{f(ours['dropped'], 0)} |")
        if "theirs" in runs:
            theirs = runs["theirs"]
            lines.append(f"| peer | {f(theirs['age_p50'], 3)} | {f(theirs['age_p99'], 3)} | "
                         f"{f(theirs['frames'], 0)} | {f(theirs['dropped'], 0)} (from frame_id gaps) |")
    finally:
        server.stop()
    lines += ["", "Frame age: from the frame's arrival to its prediction. 20 s per run."]
    return lines


def _du(path: Path) -> str:
    if not path.exists():
        return "–"
    out = subprocess.run(["du", "-sh", str(path)], capture_output=True, text=True).stdout.split()
    return f"{out[0]}B" if out else "–"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--yolo", type=Path, default=YOLO)
    parser.add_argument("--sections", default=",".join(SECTIONS))
    arguments = parser.parse_args()
    print(main(arguments.repeats, arguments.yolo, tuple(arguments.sections.split(","))))
