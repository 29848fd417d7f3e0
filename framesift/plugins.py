"""Plug-ins from other packages: the modules named by a package's entry points in one of framesift's groups
(`framesift.strategies`, `framesift.workflow_steps`, `framesift.targets`) are imported, and register what they
add as they are imported (docs/plugins/)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable

from framesift.errors import InputError


def load_entry_points(group: str, what: str, refused: Callable[[str], InputError]) -> None:
    """Import every module the entry points of `group` name; one that cannot be imported raises `refused(one
    sentence naming the {what} plug-in)`: a plug-in missing is not a type unknown."""
    for entry in importlib.metadata.entry_points(group=group):
        try:
            entry.load()
        except Exception as error:  # another package's code: said in one sentence, whatever it raised
            raise refused(f"the {what} plug-in {entry.name} ({entry.value}) cannot be loaded: "
                          f"{type(error).__name__}: {error}") from None
