"""The one shape of everything that owns a thread, a file, a lock or a socket: a context manager whose `close()`
may be called any number of times. One that runs threads (`Service`) starts none when it is made: `start()` (which
may be called any number of times) starts them, and entering it (`with`) calls `start()`.

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
_S = TypeVar("_S", bound="Service")


class Resource:
    """A context manager that calls `close()` on exit. Subclasses make `close()` idempotent."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Service(Resource):
    """A resource whose threads run from `start()` on (idempotent), never from its constructor; `with` starts it.
    Closing one that never started closes what it holds."""

    def start(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        self.start()
        return self
