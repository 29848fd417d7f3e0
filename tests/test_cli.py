"""The command line: exit codes, one-sentence errors, validate, demo and export end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from framesift.cli import main
from framesift.errors import InputError
from framesift.stream import SourceOptions
from tests.helpers import CONFIGS


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framesift.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_validate_valid_and_invalid(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("enabled: false\n")
    assert main(["validate", str(good)]) == 0
    assert capsys.readouterr().out.startswith("valid")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"enabled": True, "persist_predictions": True, "batching_strategy": {},
                               "sampling_strategies": [{"name": "x", "type": "random", "traffic_percentage": 2}]}))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "sampling_strategies[0].traffic_percentage: must be <= 1.0" in err
    assert "batching_strategy.batches_name_prefix: required" in err
    assert "batching_strategy.recreation_interval: required" in err


def test_validate_errors_are_sentences_not_tracebacks(tmp_path):
    (tmp_path / "broken.yaml").write_text("enabled: [\n")
    for path in ("missing.yaml", "broken.yaml"):
        result = run_cli("validate", path, cwd=tmp_path)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("framesift: invalid" if path == "missing.yaml" else
                                        "framesift: broken.yaml line 2, column 1: ")


def test_help_imports_nothing_heavy():
    code = ("import sys; from framesift.cli import main\n"
            "try: main(['validate', '--help'])\nexcept SystemExit: pass\n"
            "import framesift.collectors.config.schema\n"
            "print(sorted(m for m in ('onnxruntime', 'av', 'cv2', 'supervision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "framesift-demo"
    result = run_cli("demo", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "collected" in result.stdout
    return out


def test_demo_collects_a_dataset(demo_dir):
    records = [json.loads(line) for line in (demo_dir / "dataset" / "datapoints.jsonl").read_text().splitlines()]
    assert records
    for record in records:
        assert (demo_dir / "dataset" / record["image"]).stat().st_size > 1000


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_export_formats(demo_dir, tmp_path, fmt):
    dataset = demo_dir / "dataset"
    count = len((dataset / "datapoints.jsonl").read_text().splitlines())
    result = run_cli("export", str(dataset), "--format", fmt, "--out", str(tmp_path / fmt))
    assert result.returncode == 0, result.stderr
    out = tmp_path / fmt
    assert len(list((out / "images").iterdir())) == count
    if fmt == "coco":
        coco = json.loads((out / "annotations.json").read_text())
        assert len(coco["images"]) == count
        annotated = [a for a in coco["annotations"]]
        expected = sum(len(json.loads((dataset / r["prediction"]).read_text())["predictions"])
                       for r in map(json.loads, (dataset / "datapoints.jsonl").read_text().splitlines())
                       if r["prediction"])
        assert len(annotated) == expected
    elif fmt == "yolo":
        assert (out / "data.yaml").is_file() and (out / "labels").is_dir()
    else:
        for xml_file in (out / "annotations").iterdir():
            ET.parse(xml_file)


def test_export_of_a_folder_that_is_no_dataset(tmp_path):
    result = run_cli("export", str(tmp_path), "--format", "coco", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "is not a framesift dataset" in result.stderr


def test_an_export_into_a_file_is_one_sentence(demo_dir, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    assert main(["export", str(demo_dir / "dataset"), "--format", "coco", "--out", str(tmp_path / "a-file")]) == 2
    assert capsys.readouterr().err == f"framesift: cannot write the export to {tmp_path / 'a-file'}: Not a directory\n"


def test_a_disk_that_fills_up_mid_run_fails_datapoints_not_the_stream(small_disk, clip_path, tmp_path):
    disk = small_disk("160k")
    result = run_cli("run", str(clip_path), "--model", "demo", "--al-config",
                     str(CONFIGS / "demo.yaml"), "--target", str(disk / "ds"),
                     "--summary", str(tmp_path / "s.json"), "--seed", "1", "--no-progress")
    summary = json.loads((tmp_path / "s.json").read_text())
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert summary["frames_inferred"] == 60  # the stream went on
    assert summary["datapoints_failed"] > 0 and summary["datapoints_registered"] > 0
    assert "No space left on device" in summary["last_failure"]
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"framesift: {summary['datapoints_failed']} datapoints could not be written (the last: [Errno 28]")
    records = [json.loads(line) for line in (disk / "ds" / "datapoints.jsonl").read_bytes().splitlines()]
    assert len(records) == summary["datapoints_registered"]
    assert all((disk / "ds" / r["image"]).stat().st_size > 0 for r in records)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("name", "text", "message"), [
    ("deep.json", "[" * 1000 + "]" * 1000, "nested too deeply to be a configuration"),
    ("long.json", json.dumps({"enabled": True, "persist_predictions": True,
                              "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"},
                              "sampling_strategies": [{"name": "s", "type": "t" * 100_000}]}),
     "unknown strategy type 'tttt"),
    ("twice.json", '{"enabled": true, "enabled": false}', "(top level): duplicate key 'enabled'"),
])
def test_hostile_configurations_exit_2_in_one_sentence(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    result = run_cli("validate", name, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr and len(result.stderr) < 400


@pytest.mark.parametrize(("option", "message"), [
    (["--max-fps", "0"], "--max-fps must be more than 0, not 0.0"),
    (["--max-fps", "nan"], "--max-fps must be more than 0, not nan"),
    (["--max-frames", "-3"], "--max-frames must be more than 0, not -3"),
    (["--duration", "-1"], "--duration must be more than 0, not -1.0"),
    (["--status-interval", "0"], "--status-interval must be more than 0, not 0.0"),
    (["--config-refresh", "0"], "--config-refresh must be more than 0, not 0.0"),
    (["--outbox-max-bytes", "-1"], "--outbox-max-bytes must be more than 0, not -1"),
    (["--drain-timeout", "-1"], "--drain-timeout must be 0 or more, not -1.0"),
    (["--metrics-port", "70000"], "--metrics-port must be a port number from 0 (any free port) to 65535, not 70000"),
    (["--source-name", "a", "--source-name", "b"], "2 --source-name given for 1 sources"),
])
def test_options_no_run_can_mean_exit_2_in_one_sentence_before_anything_opens(clip_path, tmp_path, capsys, option,
                                                                             message):
    """Such values ran before: `--max-fps 0` without a limit, `--max-frames -3` and `--duration -1` as runs of
    nothing that exited 0, `--config-refresh 0` reading the store in a busy loop, `--metrics-port 70000` as a
    Python `OverflowError` (exit 1)."""
    target = tmp_path / "dataset"
    code = main(["run", str(clip_path), "--model", "stub", "--al-config", str(CONFIGS / "stub_bootstrap.yaml"),
                 "--target", str(target), "--no-progress", *option])
    assert code == 2 and capsys.readouterr().err == f"framesift: {message}\n"
    assert not target.exists()


@pytest.mark.parametrize(("option", "path", "reason"), [
    ("--predictions", "a-file/p.jsonl", "a part of its path is a file"),
    ("--save-video", "a-file/v.mp4", "a part of its path is a file"),
    ("--summary", "a-file/s.json", "a part of its path is a file"),
    ("--summary", "folder", "it is a folder"),
])
def test_output_files_that_cannot_be_written_are_refused_before_the_run(clip_path, tmp_path, capsys, option, path,
                                                                        reason):
    """They failed at the end (the summary: after hours of a run, exit 1 with a Python exception's name) or not at
    all (`--save-video`: the run exited 0 without a video)."""
    (tmp_path / "a-file").write_text("")
    (tmp_path / "folder").mkdir()
    target = tmp_path / "dataset"
    code = main(["run", str(clip_path), "--model", "stub", "--al-config", str(CONFIGS / "stub_bootstrap.yaml"),
                 "--target", str(target), "--no-progress", option, str(tmp_path / path)])
    assert code == 2 and capsys.readouterr().err == f"framesift: cannot write {option} {tmp_path / path}: {reason}\n"
    assert not target.exists()


def test_output_files_go_into_folders_made_for_them(clip_path, tmp_path):
    outputs = {option: tmp_path / "new" / option.strip("-") / name for option, name in
               (("--predictions", "p.jsonl"), ("--save-video", "v.mp4"), ("--summary", "s.json"))}
    assert main(["run", str(clip_path), "--model", "stub", "--target", str(tmp_path / "ds"), "--no-progress",
                 *[str(part) for option, path in outputs.items() for part in (option, path)]]) == 0
    assert all(path.stat().st_size > 0 for path in outputs.values())


def test_a_summary_the_full_disk_refuses_is_one_sentence_after_the_run(small_disk, clip_path, tmp_path, capsys):
    disk = small_disk("64k")
    with open(disk / "filler", "wb", buffering=0) as filler, pytest.raises(OSError):
        while True:
            filler.write(b"\0" * 4096)
    code = main(["run", str(clip_path), "--model", "stub", "--target", str(tmp_path / "ds"), "--no-progress",
                 "--summary", str(disk / "s.json")])
    err = capsys.readouterr().err
    assert code == 1 and "inferred 60 frames" in err
    assert err.endswith(f"framesift: cannot write the summary {disk / 's.json'}: No space left on device\n")


@pytest.mark.parametrize("source", ["", "  "])
def test_an_empty_source_is_one_sentence_not_the_working_folder(clip_path, tmp_path, monkeypatch, capsys, source):
    """`framesift run "$CAMERA"` with the variable unset replayed every video under the working folder, exit 0."""
    shutil.copy(clip_path, tmp_path / "old-recording.mp4")
    monkeypatch.chdir(tmp_path)
    assert main(["run", source, "--model", "stub", "--target", "ds", "--no-progress"]) == 2
    assert capsys.readouterr().err == ("framesift: source source0 is empty (an unset variable?): give a URL, a file "
                                       "or a folder\n")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(("url", "reason"), [
    ("rtsp://", "names no camera: its URL has no host"),
    ("rtsp://admin:hunter2@:554/live", "names no camera: its URL has no host"),
    ("http:///stream.m3u8", "names no camera: its URL has no host"),
    ("rtsp://cam:99999/live", "is no valid URL: Port out of range 0-65535"),
])
def test_a_camera_url_no_retry_can_open_is_one_sentence(capsys, url, reason):
    """They were retried for ever, a live camera's way, and a run with --duration exited 0 having read nothing."""
    assert main(["run", url, "--model", "stub", "--no-progress", "--duration", "30"]) == 2
    shown = url.replace("hunter2", "***")
    assert capsys.readouterr().err == f"framesift: source source0 ({shown}) {reason}\n"


def test_the_stream_api_refuses_options_no_source_can_mean():
    with pytest.raises(InputError, match="max_frames must be more than 0, not 0"):
        SourceOptions(max_frames=0)
    with pytest.raises(InputError, match="read_timeout must be more than 0, not -1"):
        SourceOptions(read_timeout=-1)


def test_export_skips_and_names_what_was_deleted_or_damaged_by_hand_and_exports_the_rest(demo_dir, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(demo_dir / "dataset", dataset)
    records = [json.loads(line) for line in (dataset / "datapoints.jsonl").read_text().splitlines()]
    (dataset / records[0]["image"]).unlink()  # an image deleted by hand
    with open(dataset / "datapoints.jsonl", "a") as f:
        f.write(json.dumps({"id": "no-image-key", "batch": "b"}) + "\n")  # a record missing a key
        f.write('{"id": "half a rec\n')  # a line edited into garbage
    result = run_cli("export", str(dataset), "--format", "coco", "--out", str(tmp_path / "coco"))
    assert result.returncode == 0, result.stderr
    assert f"exported {len(records) - 1} images" in result.stdout
    assert "skipped 3 records that cannot be exported" in result.stderr
    assert f"{records[0]['id']}: its image {records[0]['image']} is missing" in result.stderr
    assert "no-image-key: no 'image' key" in result.stderr
    assert f"line {len(records) + 2}: not a complete JSON record" in result.stderr
    coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert len(coco["images"]) == len(records) - 1


def test_a_pytorch_model_is_one_sentence_saying_how_to_export_it(clip_path, tmp_path, capsys):
    """It was ONNX Runtime's INVALID_PROTOBUF."""
    weights = tmp_path / "yolo26n.pt"
    weights.write_bytes(b"PK\x03\x04 torch weights")
    assert main(["run", str(clip_path), "--model", str(weights), "--no-progress"]) == 2
    assert capsys.readouterr().err == (f"framesift: {weights} is a PyTorch model, and framesift runs ONNX files: "
                                       f"export one with `yolo export model={weights} format=onnx` (framesift builds "
                                       "TensorRT engines itself with --device tensorrt)\n")


def alias_bomb(levels: int) -> str:
    """`levels` lists of nine aliases of the list before: 9**levels strings once expanded, a few hundred bytes
    written."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\ntags: *a{levels - 1}\n"


HOSTILE_YAML = [
    ("an alias bomb", alias_bomb(10), "(top level): its aliases repeat 8,"),  # 9-level: run took 55 s and 780 MB
    ("a circular alias", "tags: &a [*a]\n", ": an alias leads into the value that holds it (a circular alias)"),
    ("a key that is a number", "1: x\n", ": a key must be text, not the int 1 (quote it)"),
    ("a binary value", "tags: !!binary aGVsbG8=\n", ": a !!binary value is not JSON data"),
    ("a set", "tags: !!set {a, b}\n", ": a !!set value is not JSON data"),
    ("a date", "tags: !!timestamp 2024-01-01\n", ": a !!timestamp value is not JSON data"),
]


@pytest.mark.parametrize(("case", "text", "message"), HOSTILE_YAML, ids=[case for case, _, _ in HOSTILE_YAML])
def test_yaml_that_validate_refuses_every_reader_refuses_alike(clip_path, tmp_path, case, text, message):
    """`run` hashed the parsed document before validating it: the bomb took it 55 s and 780 MB (one level more,
    nine times both), the circular alias and a number as a key were a ValueError and a TypeError, exit 1. Every
    reader now gets the one answer of `validate`, as quickly (the subprocesses' bounds are generous)."""
    workflow = {"version": "1.0", "inputs": [{"type": "InferenceImage", "name": "image"}],
                "steps": [{"type": "ObjectDetectionModel", "name": "det", "image": "$inputs.image",
                           "model_id": "stub"}]}
    (tmp_path / "al.yaml").write_text("enabled: false\n" + text)
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump(workflow) + text)
    run = ["run", str(clip_path), "--model", "stub", "--no-progress"]
    answers = {}
    for name, command in (("al.yaml", ["validate", "al.yaml"]), ("al.yaml", [*run, "--al-config", "al.yaml"]),
                          ("al.yaml", ["config", "set", "ds", "al.yaml", "--store", "store.json"]),
                          ("wf.yaml", ["validate", "wf.yaml"]),
                          ("wf.yaml", ["run", str(clip_path), "--workflow", "wf.yaml", "--no-progress"])):
        result = subprocess.run([sys.executable, "-m", "framesift.cli", *command], capture_output=True, text=True,
                                cwd=tmp_path, timeout=60)
        assert result.returncode == 2 and message in result.stderr, (command, result.stderr)
        answers.setdefault(name, set()).add(result.stderr)
    assert all(len(said) == 1 for said in answers.values()), answers  # word for word what validate said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["al.yaml", "wf.yaml"]  # nothing written


def test_an_unquoted_date_is_text_as_in_json_and_yaml_1_2(clip_path, tmp_path):
    """A date was a `datetime.date` that validate accepted as a tag and run could not hash (TypeError, exit 1)."""
    (tmp_path / "al.yaml").write_text((CONFIGS / "stub_bootstrap.yaml").read_text().replace("0.01", "1.0")
                                      + "tags: [2024-01-01]\n")
    assert run_cli("validate", "al.yaml", cwd=tmp_path).stdout == "valid (1 strategies)\n"
    result = run_cli("run", str(clip_path), "--model", "stub", "--al-config", "al.yaml", "--max-frames", "2",
                     "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["tags"] for line in (tmp_path / "framesift-data" / "datapoints.jsonl").open()] == \
        [["2024-01-01"], ["2024-01-01"]]
