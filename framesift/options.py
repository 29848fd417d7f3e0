"""A command's options, each declared once: a field of its options dataclass (`RunOptions`, `ServeOptions`) made by
`option`, carrying its type (the annotation), its default (named in `framesift.defaults`), its help and its group.

Everything else derives from the declarations (`declared`): the command line's parser (`framesift.cli`, whose
destinations are the fields' names), the refusals the command line and the Python API share (`refuse_invalid`),
what a workflow is built with (`for_workflow`) and the reference pages (`scripts/run_reference.py`).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from framesift.errors import InputError, require_positive


def option(groups: dict[str, str], help: str, group: str, default: Any = None, *, required: bool = False,
           flags: tuple[str, ...] = (), metavar: str | None = None, choices: tuple[str, ...] | None = None,
           positive: bool = False, workflow: bool = False, secret: bool = False, python_only: bool = False,
           command_line: Any = dataclasses.MISSING) -> Any:
    """A declared field, under one of its command's `groups`. `required`: no default (the command line's positional
    argument); `flags`: other spellings than `--<name>`; `positive`: refused unless above 0; `workflow`: handed to
    `build_workflow` (the keyword of the same name); `secret`: kept out of the repr; `python_only`: no flag (the
    Python API's alone); `command_line`: the default when the command line leaves it out, where it is not the Python
    API's."""
    if group not in groups:
        raise ValueError(f"no group {group!r}: {', '.join(groups)}")
    metadata = {"help": help, "group": group, "flags": flags, "metavar": metavar, "choices": choices,
                "positive": positive, "workflow": workflow, "python_only": python_only, "command_line": command_line}
    if required:
        return dataclasses.field(metadata=metadata, repr=not secret)
    if isinstance(default, list):
        return dataclasses.field(default_factory=list, metadata=metadata, repr=not secret)
    return dataclasses.field(default=default, metadata=metadata, repr=not secret)


@dataclass(frozen=True)
class Command:
    """A command as its `--help` and its reference page show it: what it does, its groups (headings, in order, with
    what each holds), its options dataclass and its examples (command, what it does)."""

    name: str
    about: str
    groups: dict[str, str]
    options: type
    examples: tuple[tuple[str, str], ...]
    examples_skip: str | None = None  # why the reference's examples cannot run in the docs' tests, if they cannot

    @property
    def declared(self) -> tuple[Option, ...]:
        return declared(self.options)


@dataclass(frozen=True)
class Option:
    """One declared option as the command line and the docs show it."""

    name: str  # the field, and the parser's destination
    kind: type  # str, int, float, or bool (a switch)
    many: bool  # a list: repeatable, or (positional) one or more
    positional: bool  # required: the command line's positional argument
    flags: tuple[str, ...]  # `--<name>` first
    default: Any  # when the command line leaves it out
    api_default: Any  # when the Python API leaves it out
    help: str
    group: str
    metavar: str | None
    choices: tuple[str, ...] | None
    positive: bool
    workflow: bool
    python_only: bool

    def meaning(self) -> str:
        """Its help, and what its declaration adds: that it repeats, that it must be above 0."""
        return self.help + ("; repeatable" if self.many and not self.positional else "") + \
            ("; more than 0" if self.positive else "")

    def described(self) -> str:
        """Its meaning, ending with its default when it has one worth saying (the command line's help)."""
        default = shown(self.default)
        return f"{self.meaning()} (default: {default})" if default else self.meaning()


def shown(value: Any) -> str:
    """A default as a reader wants it: none for an unset one (None, off, empty), bytes in GiB or MiB, numbers
    short."""
    if value is None or value is False or value == [] or value is dataclasses.MISSING:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        for unit, shift in (("GiB", 30), ("MiB", 20)):
            if value >= 1 << shift and value % (1 << shift) == 0:
                return f"{value >> shift} {unit}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def declared(options: type) -> tuple[Option, ...]:
    """Each field of the dataclass `options` as an `Option`, in declaration order: its kind and repetition read from
    its annotation."""
    hints = typing.get_type_hints(options)
    found = []
    for field in dataclasses.fields(options):
        meta, hint = field.metadata, hints[field.name]
        many = typing.get_origin(hint) is list
        kind = next(arg for arg in typing.get_args(hint) or (hint,) if arg is not type(None))
        positional = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        api_default = [] if field.default_factory is not dataclasses.MISSING else field.default
        cli_default = api_default if meta["command_line"] is dataclasses.MISSING else meta["command_line"]
        found.append(Option(field.name, kind, many, positional, (f"--{field.name.replace('_', '-')}", *meta["flags"]),
                            cli_default, api_default, meta["help"], meta["group"], meta["metavar"], meta["choices"],
                            meta["positive"], meta["workflow"], meta["python_only"]))
    return tuple(found)


def refuse_invalid(options: Any) -> None:
    """Refuse in one sentence (exit code 2) a value that must be above 0 and is not, or is outside its choices."""
    declarations = declared(type(options))
    require_positive({each.flags[0]: getattr(options, each.name) for each in declarations if each.positive})
    for each in declarations:
        if each.choices and getattr(options, each.name) not in each.choices:
            raise InputError(f"{each.flags[0]} is {' or '.join(each.choices)}, not {getattr(options, each.name)!r}")


def for_workflow(options: Any) -> dict[str, Any]:
    """The keywords `build_workflow` takes from a command's options (those declared `workflow=True`)."""
    return {each.name: getattr(options, each.name) for each in declared(type(options)) if each.workflow}
