"""The one shape of everything that owns a thread, a file, a lock or a socket: a context manager whose `close()`
may be called any number of times.

Example:
    >>> class Handle(Resource):
    ...     def close(self) -> None:
    ...         print("closed")
    >>> with Handle():
    ...     pass
    closed
"""

from __future__ import annotations

from typing import TypeVar

_R = TypeVar("_R", bound="Resource")


class Resource:
    """A context manager that calls `close()` on exit. Subclasses make `close()` idempotent."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
