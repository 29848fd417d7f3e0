"""The documentation's examples run: every ```python block of README.md and docs/*.md is executed, and every
`framesift ...` command of a ```bash block is parsed by the CLI's own parser (running them would need cameras,
fleets and labeling servers; parsing catches a renamed or removed option).

A Python block runs in a fresh Python, in a folder of its own prepared with what the docs name: `configs/` (the
project's), `yolov8n.onnx` (a detector built by tests/model_builders.py) and `sample.mp4` (the demo's video). What
the test machine lacks is substituted, the only changes made to the code: the camera `rtsp://cam-1/stream` becomes
`sample.mp4`, the fleet's Redis `redis://edge-redis:6379/0` a redis-server started by the test. A
block that truly cannot run here is marked in the Markdown, on the line right before its fence, with
`<!-- docs-test: skip (needs X) -->`: it is reported as skipped, with that reason."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from framesift.cli import build_parser
from framesift.demo import write_demo_video
from tests.model_builders import build_model

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]  # docs/plugins/ too
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
SKIP = re.compile(r"^<!-- docs-test: skip \((.+)\) -->$")
BLOCK_TIMEOUT_S = 300.0  # a block's decoding, inference and collection on a loaded 2-core machine, generously
CAMERA_IN_DOCS, REDIS_IN_DOCS = "rtsp://cam-1/stream", "redis://edge-redis:6379/0"


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


SHELL = [(block, argv) for block in BLOCKS if block.language in ("bash", "sh", "shell") for argv in commands(block)]


def prepare(folder: Path) -> None:
    """What the docs' Python examples name, in the folder they run in."""
    (folder / "configs").symlink_to(ROOT / "configs")
    build_model(folder / "yolov8n.onnx")
    write_demo_video(folder / "sample.mp4", frames=30, width=320, height=240)


@pytest.mark.parametrize("block", PYTHON, ids=lambda block: block.name)
def test_every_python_example_of_the_docs_runs(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if block.skip:
        pytest.skip(f"{block.name}: {block.skip}")
    code = block.code.replace(CAMERA_IN_DOCS, "sample.mp4")  # a camera: the demo's video, in the block's folder
    if REDIS_IN_DOCS in code:  # the fleet's Redis: a redis-server of the test's own
        code = code.replace(REDIS_IN_DOCS, request.getfixturevalue("redis_server").url)
    prepare(tmp_path)
    script = tmp_path / "example.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=BLOCK_TIMEOUT_S)
    assert result.returncode == 0, f"the example at {block.name} failed:\n{result.stderr[-4000:]}"


@pytest.mark.parametrize(("block", "argv"), SHELL, ids=[f"{block.name}:{' '.join(argv[:1])}" for block, argv in SHELL])
def test_every_framesift_command_of_the_docs_parses(block: Block, argv: list[str],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    try:
        build_parser().parse_args(argv)
    except SystemExit as ended:  # --help and --version exit 0 once printed; a refused command exits 2
        command = f"framesift {shlex.join(argv)}"
        assert ended.code == 0, f"{block.name}: `{command}` does not parse: {capsys.readouterr().err}"


def test_the_docs_hold_examples_and_every_skip_marker_comes_right_before_a_block() -> None:
    assert PYTHON and SHELL  # the readers above found the examples
    for path in DOCS:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines[:-1], start=1):
            if "docs-test:" in line:
                assert SKIP.match(line.strip()) and FENCE.match(lines[number]), \
                    f"{path.name}:{number}: a docs-test marker must read `<!-- docs-test: skip (needs X) -->` and " \
                    "come on the line right before a block's fence"
