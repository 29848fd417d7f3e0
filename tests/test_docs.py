"""The documentation's examples run: every ```python block of README.md and docs/*.md is executed by Python, every
```bash block by bash (`set -euo pipefail`: each command must succeed), and every `framesift ...` command of a
bash block is also parsed by the CLI's own parser (so a renamed or removed option fails even in a block that
cannot run here). The configuration reference and its JSON Schema, and the workflow steps' reference, are generated
and checked fresh, and the schema agrees with the configuration's own validation.

A block runs in a folder of its own, prepared with what the docs name: `configs/` (the project's), `yolov8n.onnx`
(a detector built by tests/model_builders.py), `sample.mp4` (the demo's video, short), `framesift-demo/` (that
video), `recordings/` (two short recordings), `dataset/` and `summary.json` (a dataset collected from the video by
the demo model, and its run's summary), `my.yaml` (the bundled `realistic` configuration) and the empty outbox
`framesift-outbox/roboflow-my-dataset`; `framesift` on the PATH, `HOME` a folder of the block's own. What the test
machine lacks is substituted, the only changes made to the code: a camera (`rtsp://...`) becomes `sample.mp4`, a
Redis URL (`redis://...`) a redis-server started by the test, `--metrics-port 9108` a free port, the archive
`/mnt/nas` the folder `recordings`. A block that truly cannot run here is marked in the Markdown, on the line right
before its fence, with `<!-- docs-test: skip (needs X) -->`: it is reported as skipped, with that reason."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import jsonschema
import pytest
import yaml

from framesift import Outbox, parse_config
from framesift.cli import build_parser
from framesift.demo import write_demo_video
from framesift.errors import ConfigError
from framesift.workflows.step import step_kinds
from tests.model_builders import build_model
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]  # docs/plugins/ too
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
SKIP = re.compile(r"^<!-- docs-test: skip \((.+)\) -->$")
BLOCK_TIMEOUT_S = 300.0  # a block's decoding, inference and collection on a loaded 2-core machine, generously
SHELLS = ("bash", "sh", "shell")
CAMERA = re.compile(r"rtsps?://[^\s\"']+")
REDIS = re.compile(r"redis://[^\s\"']+")
METRICS_PORT = re.compile(r"--metrics-port 9108\b")
ARCHIVE = ("/mnt/nas", "recordings")
GENERATOR = ROOT / "scripts" / "docs_reference.py"
STEPS_GENERATOR = ROOT / "scripts" / "steps_reference.py"
STEPS_REFERENCE = ROOT / "docs" / "workflow-steps-reference.md"
SCHEMA = ROOT / "docs" / "schema" / "active-learning-config.schema.json"


@dataclass(frozen=True)
class Block:
    """One fenced block of a Markdown page."""

    path: Path
    line: int  # of the opening fence, counted from 1
    language: str
    code: str
    skip: str | None  # the reason given by a `docs-test: skip` marker

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def read_blocks(path: Path) -> list[Block]:
    """Every fenced block of `path`, dedented as far as its fence is indented."""
    lines = path.read_text().splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
        marker = SKIP.match(lines[index - 1].strip()) if index else None
        code = textwrap.dedent("\n".join(lines[index + 1:end])) + "\n"
        blocks.append(Block(path, index + 1, opening.group(2), code, marker.group(1) if marker else None))
        index = end + 1
    return blocks


BLOCKS = [block for path in DOCS for block in read_blocks(path)]
PYTHON = [block for block in BLOCKS if block.language == "python"]
SHELL_BLOCKS = [block for block in BLOCKS if block.language in SHELLS]


def commands(block: Block) -> list[list[str]]:
    """The `framesift ...` commands of a shell block as argument lists: continuation lines joined, comments,
    redirections (`> FILE`) and leading environment assignments (`NAME=value framesift ...`) left out, commands
    joined by `|`, `&&`, `;` told apart."""
    found = []
    for line in block.code.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        words = iter([*lexer, ";"])
        for word in words:
            if word in ("<", ">", ">>"):
                next(words)  # the redirection's file
            elif word.strip("|&;()"):
                command.append(word)
            else:
                while command and re.match(r"^[A-Za-z_]\w*=", command[0]):
                    command = command[1:]
                if command[:1] == ["framesift"]:
                    found.append(command[1:])
                command = []
    return found


SHELL = [(block, argv) for block in SHELL_BLOCKS for argv in commands(block)]


@pytest.fixture(scope="session")
def materials(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the docs' examples name, made once: a detector, a short video, two recordings, and a dataset collected
    from the video by the demo model (with its run's summary)."""
    folder = tmp_path_factory.mktemp("docs-materials")
    build_model(folder / "yolov8n.onnx")
    write_demo_video(folder / "sample.mp4", frames=30, width=320, height=240)
    for day in ("day1", "day2"):
        write_demo_video(folder / "recordings" / day / "cam1.mp4", frames=20, width=320, height=240)
    collect = subprocess.run(
        [framesift(), "run", "sample.mp4", "--model", "demo", "--al-config", str(ROOT / "configs" / "demo.yaml"),
         "--target", "dataset", "--summary", "summary.json", "--seed", "0", "--no-progress"],
        cwd=folder, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    assert collect.returncode == 0, collect.stderr[-4000:]
    assert (folder / "dataset" / "datapoints.jsonl").read_text().strip(), "the demo model collected nothing"
    return folder


def framesift() -> str:
    """The `framesift` command of the Python running the tests."""
    return str(Path(sys.executable).parent / "framesift")


def prepare(folder: Path, materials: Path) -> dict[str, str]:
    """A block's folder, holding what the docs name; the environment the block runs in."""
    (folder / "configs").symlink_to(ROOT / "configs")
    for name in ("yolov8n.onnx", "sample.mp4", "recordings"):
        (folder / name).symlink_to(materials / name)
    (folder / "framesift-demo").mkdir()
    (folder / "framesift-demo" / "sample.mp4").symlink_to(materials / "sample.mp4")
    shutil.copytree(materials / "dataset", folder / "dataset")  # a copy: the examples add to it
    shutil.copy(materials / "summary.json", folder / "summary.json")
    shutil.copy(ROOT / "configs" / "realistic.yaml", folder / "my.yaml")
    Outbox(folder / "framesift-outbox" / "roboflow-my-dataset").close()
    (folder / "home").mkdir()
    return {**os.environ, "HOME": str(folder / "home"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def substituted(code: str, request: pytest.FixtureRequest) -> str:
    """The block's code with what the test machine lacks put in: the module docstring lists each change."""
    code = CAMERA.sub("sample.mp4", code).replace(*ARCHIVE)
    code = METRICS_PORT.sub(f"--metrics-port {free_port()}", code)
    if REDIS.search(code):
        code = REDIS.sub(request.getfixturevalue("redis_server").url, code)
    return code


def run_block(block: Block, command: list[str], suffix: str, tmp_path: Path, materials: Path,
              request: pytest.FixtureRequest) -> None:
    """Run the block's code, substituted, as a file in a folder prepared for it; it must exit 0."""
    if block.skip:
        pytest.skip(f"{block.name}: {block.skip}")
    environment = prepare(tmp_path, materials)
    script = tmp_path / f"example{suffix}"
    script.write_text(substituted(block.code, request))
    result = subprocess.run([*command, str(script)], cwd=tmp_path, env=environment, capture_output=True, text=True,
                            timeout=BLOCK_TIMEOUT_S)
    assert result.returncode == 0, \
        f"the example at {block.name} failed (exit {result.returncode}):\n{script.read_text()}\n{result.stderr[-4000:]}"


@pytest.mark.parametrize("block", PYTHON, ids=lambda block: block.name)
def test_every_python_example_of_the_docs_runs(block: Block, tmp_path: Path, materials: Path,
                                               request: pytest.FixtureRequest) -> None:
    run_block(block, [sys.executable], ".py", tmp_path, materials, request)


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda block: block.name)
def test_every_shell_example_of_the_docs_runs(block: Block, tmp_path: Path, materials: Path,
                                              request: pytest.FixtureRequest) -> None:
    run_block(block, ["bash", "-euo", "pipefail"], ".sh", tmp_path, materials, request)


@pytest.mark.parametrize(("block", "argv"), SHELL, ids=[f"{block.name}:{' '.join(argv[:1])}" for block, argv in SHELL])
def test_every_framesift_command_of_the_docs_parses(block: Block, argv: list[str],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    try:
        build_parser().parse_args(argv)
    except SystemExit as ended:  # --help and --version exit 0 once printed; a refused command exits 2
        command = f"framesift {shlex.join(argv)}"
        assert ended.code == 0, f"{block.name}: `{command}` does not parse: {capsys.readouterr().err}"


def test_the_docs_hold_examples_and_every_skip_marker_comes_right_before_a_block() -> None:
    assert PYTHON and SHELL and any(not block.skip for block in SHELL_BLOCKS)  # the readers above found examples
    for path in DOCS:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines[:-1], start=1):
            if line.strip().startswith("<!--") and "docs-test" in line:
                assert SKIP.match(line.strip()) and FENCE.match(lines[number]), \
                    f"{path.name}:{number}: a docs-test marker must read `<!-- docs-test: skip (needs X) -->` and " \
                    "come on the line right before a block's fence"


def test_the_configuration_reference_and_its_schema_are_generated_fresh() -> None:
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_generator_finds_a_stale_reference(tmp_path: Path) -> None:
    """--check compares what is there with what it would write: a copy of the project whose reference lost a line
    is stale."""
    for name in ("scripts", "docs"):
        shutil.copytree(ROOT / name, tmp_path / name)
    reference = tmp_path / "docs" / "configuration-reference.md"
    reference.write_text(reference.read_text().replace("| `memory` |", "| `memories` |"))
    result = subprocess.run([sys.executable, str(tmp_path / "scripts" / GENERATOR.name), "--check"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "configuration-reference.md is stale" in result.stderr, result.stderr


def test_the_workflow_steps_reference_is_generated_fresh_from_the_registry() -> None:
    result = subprocess.run([sys.executable, str(STEPS_GENERATOR), "--check"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    page = STEPS_REFERENCE.read_text()
    headed = re.findall(r"^## (\w+)$", page, re.MULTILINE)
    also = [name for line in page.splitlines() if line.startswith("Also named ")
            for name in re.findall(r"`(\w+)`", line)]
    shown = {*headed, *also}
    built_in = {name for kind in step_kinds() if kind.__module__.startswith("framesift.")  # not a plug-in that
                for name in get_args(kind.model_fields["type"].annotation)}  # another test registered
    assert built_in <= shown, "a registered step type is missing from the reference"


def test_the_steps_generator_finds_a_stale_reference_and_writes_it_fresh(tmp_path: Path) -> None:
    """--check compares the page with what it would write: a copy that lost a field's line is stale, and the
    generator writes it back as it was."""
    page = STEPS_REFERENCE.read_text()
    stale = tmp_path / "workflow-steps-reference.md"
    stale.write_text("\n".join(line for line in page.splitlines() if not line.startswith("| `padding` |")) + "\n")
    checked = subprocess.run([sys.executable, str(STEPS_GENERATOR), "--check", "--page", str(stale)], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 1 and "is stale" in checked.stderr, checked.stderr
    assert subprocess.run([sys.executable, str(STEPS_GENERATOR), "--page", str(stale)], cwd=ROOT,
                          capture_output=True, timeout=120).returncode == 0
    assert stale.read_text() == page


def test_a_step_field_without_a_meaning_stops_the_steps_generator(tmp_path: Path) -> None:
    forgotten = ("import sys; sys.path.insert(0, 'scripts'); import steps_reference as generator; "
                 f"del generator.MEANINGS['CropStep.padding']; generator.main(['--page', {str(tmp_path / 'p.md')!r}])")
    result = subprocess.run([sys.executable, "-c", forgotten], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "CropStep.padding has no meaning" in result.stderr, result.stderr
    assert not (tmp_path / "p.md").exists()


def config_examples() -> list[tuple[str, object]]:
    """Every active-learning configuration the project shows: the bundled ones, and the JSON and YAML blocks of the
    docs that hold a whole one (an `enabled` key)."""
    found = [(path.name, yaml.safe_load(path.read_text())) for path in sorted((ROOT / "configs").iterdir())
             if path.suffix in (".json", ".yaml") and not path.name.startswith("workflow")]
    for block in BLOCKS:
        if block.language in ("json", "yaml"):
            data = yaml.safe_load(block.code)
            if isinstance(data, dict) and "enabled" in data:
                found.append((block.name, data))
    return found


@pytest.fixture(scope="module")
def schema_validator() -> Callable[[object], list[str]]:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    return lambda data: [error.message for error in validator.iter_errors(data)]


@pytest.mark.parametrize(("name", "data"), config_examples(), ids=[name for name, _ in config_examples()])
def test_every_configuration_shown_is_valid_for_framesift_and_for_the_schema(
        name: str, data: object, schema_validator: Callable[[object], list[str]]) -> None:
    parse_config(data, name)
    assert schema_validator(data) == []


@pytest.mark.parametrize("data", [
    {"enabled": True, "persist_predictions": True, "sampling_strategies": [
        {"name": "a", "type": "random", "traffic_percentage": 0.1, "probabilty": 0.5}],
     "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "daily"}},
    {"enabled": True},
    {"enabled": True, "persist_predictions": False, "sampling_strategies": [],
     "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "daily"}},
    {"enabled": False, "near_duplicates": {"max_distance": 65}},
    {"enabled": False, "sampling_strategies": [{"name": "u", "type": "uncertainty", "probability": 1.0}]},
    {"enabled": False, "sampling_strategies": [{"name": "x", "type": "no_such_type", "probability": 1.0}]},
    {"enabled": False, "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "hourly"}},
    {"enabled": False, "$schema": "active-learning-config.schema.json"},
], ids=["misspelt field", "enabled without strategies", "enabled with no strategy", "out of bounds",
        "uncertainty without a rule", "unknown strategy type", "unknown interval", "a $schema key"])
def test_what_framesift_refuses_the_schema_refuses(data: dict[str, object],
                                                   schema_validator: Callable[[object], list[str]]) -> None:
    with pytest.raises(ConfigError):
        parse_config(data)
    assert schema_validator(data), "the schema accepts a configuration framesift refuses"
