"""Writes the options of `framesift run` into docs/run.md from their declarations (framesift/run_options.py): the
synopsis, a table per group (the command line's spelling, the `RunOptions` field, the default, the meaning) and the
examples, between the page's two `options` markers; the rest of the page is written by hand. Run it after changing
an option; `--check` writes nothing and exits 1 when the page is stale (tests/test_run_options.py runs it).

    python scripts/run_reference.py [--check] [--page docs/run.md]
"""

from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path

from framesift.run_options import EXAMPLES, GROUPS, OPTIONS, Option, shown

PAGE = Path(__file__).resolve().parents[1] / "docs" / "run.md"
BEGIN = "<!-- options: written by scripts/run_reference.py from framesift/run_options.py; edit those, not this -->"
END = "<!-- end of the options -->"


def render() -> str:
    """The generated part of the page, markers included."""
    positional = next(declared for declared in OPTIONS if declared.positional)
    lines = [BEGIN, "", "```text", f"framesift run {positional.metavar} [{positional.metavar} ...] [options]", "```"]
    for group, about in GROUPS.items():
        lines += ["", f"### {group.capitalize()}", "", f"{about[0].upper()}{about[1:]}.", "",
                  "| option | `RunOptions` | default | meaning |", "|---|---|---|---|"]
        lines += [_row(declared) for declared in OPTIONS if declared.group == group]
    lines += ["", "### Examples", "", "```bash"]
    for command, what in EXAMPLES:
        lines += [f"# {what}", command]
    return "\n".join([*lines, "```", "", END])


def _row(declared: Option) -> str:
    """One option's line of its group's table."""
    default = _shown(declared.default)
    if declared.api_default != declared.default:
        default += f" (`RunOptions`: {_shown(declared.api_default)})"
    cells = (_spellings(declared), f"`{declared.name}`", default, declared.meaning())
    return "| " + " | ".join(_cell(text) for text in cells) + " |"


def _spellings(declared: Option) -> str:
    """How the command line writes it: `--flag VALUE` (each spelling), `--switch`, or the positional `NAME ...`."""
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


def updated(page: str) -> str:
    """`page` with its generated part rendered again."""
    if BEGIN not in page or END not in page:
        raise SystemExit(f"{PAGE}: the markers of the generated part are missing ({BEGIN} ... {END})")
    before, rest = page.split(BEGIN, 1)
    return before + render() + rest.split(END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when the page is stale")
    parser.add_argument("--page", type=Path, default=PAGE)
    args = parser.parse_args(argv)
    page = args.page.read_text(encoding="utf-8")
    if updated(page) == page:
        return 0
    if args.check:
        print(f"{args.page} is stale: run python scripts/run_reference.py", file=sys.stderr)
        return 1
    args.page.write_text(updated(page), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
