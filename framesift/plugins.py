"""Plug-ins from other packages: the modules named by a package's entry points in one of framesift's groups
(`framesift.strategies`, `framesift.workflow_steps`, `framesift.targets`) are imported, and register what they
add as they are imported (docs/plugins/)."""

from __future__ import annotations

import importlib.metadata
import threading
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


class PluginGroup:
    """One registry's plug-ins: `load()` imports, once per process, what the registry holds built in (`first`) and
    the modules its entry point `group` names. A plug-in asking the registry while it loads gets what is known so
    far; a plug-in that fails to load is tried again at the next `load()`."""

    def __init__(self, group: str, what: str, refused: Callable[[str], InputError],
                 first: Callable[[], None] | None = None):
        self.group, self.what, self._refused, self._first = group, what, refused, first
        self._lock = threading.RLock()  # re-entrant: a module loaded may register, or ask, as it is imported
        self._loaded = False

    def load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            try:
                if self._first is not None:
                    self._first()
                load_entry_points(self.group, self.what, self._refused)
            except BaseException:
                self._loaded = False
                raise
