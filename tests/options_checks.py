"""Checks shared by the tests of each command whose options are declared once (`framesift.options`): the parser and
the options dataclass agree field for field, `--help` is grouped and its examples parse, the reference page is
written from the declarations."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from framesift.cli import build_parser, parsed
from framesift.options import Command

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "scripts" / "run_reference.py"


def every_flag_arrives(command: Command, required: list[str], special: dict[str, Any]) -> Any:
    """The options of a command line giving every flag a value other than its default (`special`'s, else one of its
    kind); asserts that the parser's destinations are the fields (but the Python API's alone) and that each value
    given reaches its field. A flag whose destination was renamed would be dropped without a word."""
    fields = {f.name for f in dataclasses.fields(command.options)} - \
        {each.name for each in command.declared if each.python_only}
    defaults = build_parser().parse_args([command.name, *required])
    assert set(vars(defaults)) - {"command", "verbose", "version"} == fields
    argv, expected = [command.name, *required], {}
    for declared in (each for each in command.declared if not each.positional and not each.python_only):
        value = special.get(declared.name) or {bool: True, int: 7, float: 0.5, str: f"{declared.name}-given"}[
            declared.kind]
        argv += [declared.flags[0]] if declared.kind is bool else [declared.flags[0], str(value)]
        expected[declared.name] = [value] if declared.many else value
    options = parsed(command.options, build_parser().parse_args(argv))
    assert {name: getattr(options, name) for name in expected} == expected
    assert set(expected) | {each.name for each in command.declared if each.positional} == fields
    return options


def help_is_grouped(command: Command) -> str:
    """`framesift <command> --help`, asserted grouped (each group's heading in order, each option under its own
    with its meaning and default) and ending with examples that parse into valid options."""
    out = subprocess.run([sys.executable, "-m", "framesift.cli", command.name, "--help"], capture_output=True,
                         text=True, check=True, env={**os.environ, "COLUMNS": "200"}).stdout
    headings = [out.index(f"\n{group}:\n  {about}\n") for group, about in command.groups.items()]
    assert headings == sorted(headings)
    ends = dict(zip(command.groups, [*headings[1:], out.index("\nexamples:\n")], strict=True))
    for declared in (each for each in command.declared if not each.python_only):
        spelling = declared.metavar if declared.positional else declared.flags[0]
        where = out.index(f"  {spelling}", headings[list(command.groups).index(declared.group)])
        assert where < ends[declared.group], f"{spelling} is not under {declared.group}"
        entry = out[where:where + 1 + re.search(r"\n(?:  \S|\n)", out[where + 1:]).start()]  # to the next entry
        assert " ".join(entry.split()).endswith(declared.described()), declared.name
    examples = out[out.index("\nexamples:\n"):]
    for example, what in command.examples:
        assert f"  {example}\n      {what}\n" in examples
        parsed(command.options, build_parser().parse_args(shlex.split(example)[1:]))  # a valid options dataclass
    return out


def reference_is_checked(page: Path, stale: Path, changed: tuple[str, str]) -> None:
    """The reference `page` is fresh, and `--check` fails on its copy `stale` with one line changed (`changed`: the
    text and what replaces it), which the generator then writes back as it was."""
    checked = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert checked.returncode == 0, checked.stderr + " (run python scripts/run_reference.py)"
    text = page.read_text()
    assert changed[0] in text
    stale.write_text(text.replace(*changed))
    result = subprocess.run([sys.executable, str(GENERATOR), "--check", "--page", str(stale)], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 1 and "is stale" in result.stderr
    assert subprocess.run([sys.executable, str(GENERATOR), "--page", str(stale)], cwd=ROOT).returncode == 0
    assert stale.read_text() == text
