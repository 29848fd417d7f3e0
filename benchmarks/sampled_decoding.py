"""Bootstrapping from recordings: decoding only the GOPs of sampled frames (issue 15, part 2).

Two 1080p, 30 fps, one-minute recordings (1800 frames, cached in benchmarks/.work): a camera-like one (a keyframe
every second, no B-frames) and one with long GOPs (a keyframe every 250 frames) and three B-frames, both of a
noisy textured scene whose keyframes are large; and `camera-clip`, the 900-frame 1080p clip of the demo scene that
`many_cameras.py` makes (30 s, a keyframe every second, no B-frames; issue 24's bootstrap figure). Each is replayed
with the stub model and one random strategy at 1 %, 10 % and 50 %, by framesift as `framesift run` does (frames
drawn before decoding), by framesift decoding every frame (`--decode-all`), and by the peer (Roboflow Inference's
InferencePipeline, `benchmarks/peer_runner.py`, the same sampling rate), and by framesift with keyframe draws
(`--keyframe-draws`, opt-in: a sampled GOP gives its keyframe). Every run is its own process; they are
interleaved; figures are frames of the file per second (decoded or not), median (min–max) of `--repeats`.

Run: `python benchmarks/sampled_decoding.py [--repeats 3] [--recordings camera,long-gop,camera-clip]
[--rates 0.01,0.1,0.5]` (part of `make bench`: the first two). Prints a Markdown section naming the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.many_cameras import camera_clip  # noqa: E402
from benchmarks.run import cpu_name  # noqa: E402
from benchmarks.suite import WORK, f, framesift, measure_together, peer, ratio  # noqa: E402

RECORDINGS = {  # name -> (what the table calls it, encoder options; None: the demo scene's camera clip)
    "camera": ("camera-like: keyframe every 1 s, no B-frames", {"g": "30", "bf": "0"}),
    "long-gop": ("long GOPs: keyframe every 250 frames, 3 B-frames", {"g": "250", "bf": "3"}),
    "camera-clip": ("the demo scene's camera clip, 900 frames: keyframe every 1 s, no B-frames", None),
}
RATES = (0.01, 0.10, 0.50)


def recording(name: str, options: dict[str, str], frames: int = 1800) -> str:
    """A 1080p recording of a moving scene over a textured background with sensor noise, cached."""
    import av
    import cv2
    import numpy as np

    path = WORK / f"recording-{name}-1080p.mp4"
    if path.exists():
        return str(path)
    WORK.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    width, height = 1920, 1080
    background = cv2.resize(rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8), (width, height))
    partial = path.with_suffix(".partial.mp4")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {**options, "preset": "veryfast", "crf": "23"}
        for i in range(frames):
            image = background.copy()
            x = (i * 8) % (width - 200)
            cv2.rectangle(image, (x, 400), (x + 200, 600), (0, 0, 255), -1)
            cv2.circle(image, (width - x, 800), 60, (255, 200, 0), -1)
            image = cv2.add(image, rng.integers(0, 6, (height, width, 3), dtype=np.uint8))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode(None))
    partial.rename(path)
    return str(path)


def config(rate: float, folder: Path) -> str:
    path = folder / f"random-{rate:g}.yaml"
    path.write_text(f"enabled: true\npersist_predictions: false\nsampling_strategies:\n"
                    f"  - {{name: bootstrap, type: random, traffic_percentage: {rate}}}\n"
                    f"batching_strategy: {{batches_name_prefix: bench, recreation_interval: never}}\n")
    return str(path)


DEFAULT_RECORDINGS = ("camera", "long-gop")


def nonref_section(repeats: int = 5, recordings: tuple[str, ...] = DEFAULT_RECORDINGS,
                   rates: tuple[float, ...] = (0.01, 0.1)) -> str:
    """Skipping non-reference frames that no sample needs (`SampledDecoding(skip_nonref=...)`), off and on
    alternating in this process: the seconds `SampledDecoding.frames` takes to go through the recording (frame
    threads, as a replay decodes), and the frames the decoder returned; the frames handed on are checked to be the
    same. A recording's share of non-reference frames is counted from its H.264 slices' `nal_ref_idc`."""
    import functools
    import random
    import statistics
    import time

    import av

    from framesift.stream.sampled_decoding import SampledDecoding, scan

    out = ["## Bootstrapping from recordings: non-reference frames no sample needs, not decoded", "",
           f"On {cpu_name()}. `python benchmarks/sampled_decoding.py --part nonref`: `SampledDecoding.frames` alone "
           f"(stub draws: random, seed 0), skipping off and on alternating, {repeats} passes each; s per pass, "
           "median (min–max).", "",
           "| recording | non-reference frames | sampled | handed on | off: s | decoded | on: s | decoded | off ÷ on |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name in recordings:
        label, options = RECORDINGS[name]
        source = recording(name, options) if options else str(camera_clip((1920, 1080), 30))
        packets = scan(source)
        assert not isinstance(packets, str), packets
        nonref = _nonreference(source)
        for rate in rates:
            seconds: dict[bool, list[float]] = {False: [], True: []}
            decoded, handed = {}, {}
            for _ in range(repeats):
                for skip in (False, True):
                    draw = functools.partial(lambda draws, share, _: draws.random() < share, random.Random(0), rate)
                    sampled = SampledDecoding(packets, draw, skip_nonref=skip)
                    with av.open(source) as container:
                        container.streams.video[0].thread_type = "AUTO"
                        started = time.perf_counter()
                        handed[skip] = [index for index, _image, _draws in sampled.frames(container)]
                        seconds[skip].append(time.perf_counter() - started)
                    decoded[skip] = sampled.decoded
            assert handed[True] == handed[False]
            off, on = (statistics.median(seconds[skip]) for skip in (False, True))
            out.append(f"| {label} | {nonref} of {packets.frames} | {rate:.0%} | {len(handed[True])} | "
                       f"{off:.2f} ({min(seconds[False]):.2f}–{max(seconds[False]):.2f}) | {decoded[False]} | "
                       f"{on:.2f} ({min(seconds[True]):.2f}–{max(seconds[True]):.2f}) | {decoded[True]} | "
                       f"{off / on:.2f} |")
    return "\n".join(out) + "\n"


def _nonreference(path: str) -> int:
    """Frames of an H.264 file (length-prefixed NAL units, as in MP4) whose first slice has `nal_ref_idc` 0."""
    import av

    count = 0
    with av.open(path) as container:
        for packet in container.demux(video=0):
            data, at = bytes(packet), 0
            while at + 5 <= len(data):
                header = data[at + 4]
                if header & 0x1F in (1, 5):  # a slice: coded picture data
                    count += not header >> 5 & 3
                    break
                at += 4 + int.from_bytes(data[at:at + 4], "big")
    return count


def main(repeats: int = 3, recordings: tuple[str, ...] = DEFAULT_RECORDINGS, rates: tuple[float, ...] = RATES) -> str:
    folder = Path(tempfile.mkdtemp(prefix="framesift-bench-configs-"))
    out = ["## Bootstrapping from recordings: decoding only what is sampled (stub model, random sampling, 1080p)", "",
           f"On {cpu_name()}. Frames of the recording per second (decoded or not), median (min–max) of {repeats} "
           "runs, interleaved; 1800 frames (one minute at 30 fps) per run, 900 for the camera clip. \"decoded\": "
           "frames framesift handed to the model. Each pipeline is timed from its start to its end; its first "
           "prediction (s from the launch of its process, imports included) is reported apart.", "",
           "| recording | sampled | framesift | decoded | every frame decoded (`--decode-all`) | peer | "
           "÷ every frame | ÷ peer | keyframe draws (`--keyframe-draws`) | decoded | ÷ framesift | ÷ peer | "
           "first prediction, s: framesift / peer |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in recordings:
        label, options = RECORDINGS[name]
        source = recording(name, options) if options else str(camera_clip((1920, 1080), 30))
        for rate in rates:
            cfg = config(rate, folder)
            runs = measure_together({
                "sampled": framesift("pipeline", source, model="stub", config=cfg, as_run=True),
                "all": framesift("pipeline", source, model="stub", config=cfg, as_run=True, decode_all=True),
                "peer": peer(source, model="stub", sample=rate),
                "keyframes": framesift("pipeline", source, model="stub", config=cfg, as_run=True,
                                       keyframe_draws=True)}, repeats)
            ours, every, theirs, keys = runs["sampled"], runs["all"], runs.get("peer"), runs["keyframes"]
            their_first = f(theirs["first_prediction_s"], 2) if theirs else "–"
            out.append(f"| {label} | {rate:.0%} | {f(ours['fps'])} | {f(ours['frames_decoded'], 0)} | "
                       f"{f(every['fps'])} | {f(theirs['fps']) if theirs else '–'} | {ratio(ours, every)} | "
                       f"{ratio(ours, theirs or {})} | {f(keys['fps'])} | {f(keys['frames_decoded'], 0)} | "
                       f"{ratio(keys, ours)} | {ratio(keys, theirs or {})} | "
                       f"{f(ours['first_prediction_s'], 2)} / {their_first} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recordings", default=",".join(DEFAULT_RECORDINGS), help=f"of {','.join(RECORDINGS)}")
    parser.add_argument("--rates", default=",".join(f"{rate:g}" for rate in RATES))
    parser.add_argument("--part", choices=("pipelines", "nonref"), default="pipelines",
                        help="the pipelines side by side (the default), or non-reference skipping alone")
    arguments = parser.parse_args()
    section = main if arguments.part == "pipelines" else nonref_section
    print(section(arguments.repeats, tuple(arguments.recordings.split(",")),
                  tuple(float(rate) for rate in arguments.rates.split(","))))
