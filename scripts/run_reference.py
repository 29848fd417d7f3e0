"""Writes the options of `framesift run` into docs/run.md and those of `framesift serve` into docs/serve-options.md
from their declarations (framesift/run_options.py, framesift/serve_options.py): the synopsis, a table per group (the
command line's spelling, the options dataclass's field, the default, the meaning) and the examples, between the
page's two `options` markers (the first names the declarations it is written from); the rest of the page is written
by hand. Run it after changing an option; `--check` writes nothing and exits 1 when a page is stale
(tests/test_run_options.py and tests/test_serve_options.py run it). `--page` names one page to write or check.

    python scripts/run_reference.py [--check] [--page docs/run.md]
"""

from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path

from framesift.options import Command, Option, shown
from framesift.run_options import RUN
from framesift.serve_options import SERVE

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = {DOCS / "run.md": RUN, DOCS / "serve-options.md": SERVE}
END = "<!-- end of the options -->"


def begin(command: Command) -> str:
    """The marker opening a command's generated part: it names the declarations it is written from."""
    source = command.options.__module__.replace(".", "/")
    return f"<!-- options: written by scripts/run_reference.py from {source}.py; edit those, not this -->"


def render(command: Command) -> str:
    """The generated part of a command's page, markers included."""
    positional = [f"{each.metavar} [{each.metavar} ...] " for each in command.declared if each.positional]
    lines = [begin(command), "", "```text", f"framesift {command.name} {''.join(positional)}[options]", "```"]
    for group, about in command.groups.items():
        lines += ["", f"### {group.capitalize()}", "", f"{about[0].upper()}{about[1:]}.", "",
                  f"| option | `{command.options.__name__}` | default | meaning |", "|---|---|---|---|"]
        lines += [_row(command, each) for each in command.declared if each.group == group]
    lines += ["", "### Examples", ""]
    if command.examples_skip:
        lines.append(f"<!-- docs-test: skip ({command.examples_skip}) -->")
    lines.append("```bash")
    for example, what in command.examples:
        lines += [f"# {what}", example]
    return "\n".join([*lines, "```", "", END])


def _row(command: Command, declared: Option) -> str:
    """One option's line of its group's table."""
    default = _shown(declared.default)
    if declared.api_default != declared.default:
        default += f" (`{command.options.__name__}`: {_shown(declared.api_default)})"
    cells = (_spellings(declared), f"`{declared.name}`", default, declared.meaning())
    return "| " + " | ".join(_cell(text) for text in cells) + " |"


def _spellings(declared: Option) -> str:
    """How the command line writes it: `--flag VALUE` (each spelling), `--switch`, the positional `NAME ...`, or
    nothing for an option of the Python API alone."""
    if declared.python_only:
        return "(Python only)"
    if declared.positional:
        return f"`{declared.metavar} ...`"
    value = f" {declared.metavar or declared.name.upper()}"
    if declared.choices:
        value = f" {{{','.join(declared.choices)}}}"
    return ", ".join(f"`{flag}{'' if declared.kind is bool else value}`" for flag in declared.flags)


def _shown(value: object) -> str:
    text = shown(value)
    return f"`{text}`" if text else ("off" if value is False else "")


def _cell(text: str) -> str:
    """Text as a table cell: outside code spans, `|` escaped and `<...>` shown (HTML escaped). Inside one, a `|`
    cannot be written for both renderers (GitHub wants it escaped, Python-Markdown shows the backslash)."""
    parts = text.split("`")
    if any("|" in part for part in parts[1::2]):
        raise SystemExit(f"a code span of the options' table holds a '|': {text}")
    return "`".join(part if index % 2 else html.escape(part, quote=False).replace("|", "\\|")
                    for index, part in enumerate(parts))


def updated(path: Path, page: str) -> str:
    """`page` with its generated part rendered again, as the declarations its first marker names say."""
    command = next((command for command in PAGES.values() if begin(command) in page), None)
    if command is None or END not in page:
        raise SystemExit(f"{path}: the markers of the generated part are missing (one of "
                         f"{' '.join(begin(each) for each in PAGES.values())}, then {END})")
    before, rest = page.split(begin(command), 1)
    return before + render(command) + rest.split(END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a page is stale")
    parser.add_argument("--page", type=Path, help="this page only (default: docs/run.md and docs/serve-options.md)")
    args = parser.parse_args(argv)
    stale = 0
    for path in [args.page] if args.page else list(PAGES):
        page = path.read_text(encoding="utf-8")
        if updated(path, page) == page:
            continue
        if args.check:
            print(f"{path} is stale: run python scripts/run_reference.py", file=sys.stderr)
            stale = 1
        else:
            path.write_text(updated(path, page), encoding="utf-8")
    return stale


if __name__ == "__main__":
    sys.exit(main())
