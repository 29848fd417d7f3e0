"""Every error framesift raises on purpose, under one base class.

Each one also derives from the built-in exception a Python caller would expect (a configuration error is a
`ValueError`, a busy outbox a `RuntimeError`), and carries the exit code the command line ends with:

```
FramesiftError                    exit 1: something failed while running
├── InputError (ValueError)       exit 2: bad input from the user — an option, a file, a URL, a model
│   ├── ConfigError               an invalid active-learning configuration, every problem by field path
│   │   └── DocumentSyntaxError   a JSON or YAML file that does not parse: where, in one line
│   ├── ModelError                a model that cannot be used
│   ├── SourceError               a video source that cannot be used at all
│   ├── TargetError               a target that cannot be opened (a bad name, no API key, a folder not writable)
│   ├── LimitStoreError           a limit store that cannot be used (a bad Redis URL, a refused password)
│   └── OutboxInUse               another process delivers this outbox
├── OutboxFull (RuntimeError)     an outbox at its size bound refused a datapoint
├── DeliveryError                 a remote target did not take an outbox entry
│   ├── RetryableError            ... for now (network, 408, 429, 5xx)
│   └── PermanentError            ... for good (the entry goes to dead/)
├── WorkerFailed (RuntimeError)   a worker thread died of an unexpected exception: the run ends
├── CollectionFailed (RuntimeError) the stream ran, but datapoints could not be written
└── NeverConnected (RuntimeError) exit 3: a `--duration` run in which a live source never connected
```

Example:
    >>> from framesift.errors import ConfigError, FramesiftError
    >>> error = ConfigError(["enabled: required"])
    >>> isinstance(error, FramesiftError) and isinstance(error, ValueError), error.exit_code
    (True, 2)
"""

from __future__ import annotations

from collections.abc import Mapping


class FramesiftError(Exception):
    """The base of every error framesift raises on purpose; `exit_code` is the command line's."""

    exit_code = 1


class InputError(FramesiftError, ValueError):
    """Bad input from the user: a wrong option, file, configuration, model or URL."""

    exit_code = 2


def require_positive(values: Mapping[str, float | None]) -> None:
    """Raise `InputError` naming the first option whose value (when given) is not more than 0 (NaN included)."""
    for name, value in values.items():
        if value is not None and not value > 0:
            raise InputError(f"{name} must be more than 0, not {value}")


class ConfigError(InputError):
    """An invalid configuration; `problems` holds one line per problem, each starting with its field path."""

    def __init__(self, problems: list[str], source: str = "configuration"):
        self.problems = problems
        super().__init__(f"invalid {source}:\n" + "\n".join(f"  {p}" for p in problems))


class DocumentSyntaxError(ConfigError):
    """A document that is not JSON or YAML, said as `file.yaml line 6, column 4: what is wrong` (one line)."""

    def __init__(self, source: str, line: int, column: int, problem: str):
        self.problems = [f"line {line}, column {column}: {problem}"]
        InputError.__init__(self, f"{source} line {line}, column {column}: {problem}")


class ModelError(InputError):
    """A model that cannot be used: not ONNX, an unknown layout, a device that does not load."""


class SourceError(InputError):
    """A source that cannot be used at all (a missing or unreadable file)."""


class TargetError(InputError):
    """A target that cannot be opened: a bad name, a missing API key, a folder that cannot be written."""


class LimitStoreError(InputError):
    """A limit store that cannot be used: a malformed Redis URL, or credentials Redis refuses."""


class OutboxInUse(InputError):
    """Another process delivers this outbox; each run needs its own (`--outbox`)."""


class OutboxFull(FramesiftError, RuntimeError):
    """Pending and dead entries hold the outbox's bound already; the datapoint is refused (and counted)."""


class DeliveryError(FramesiftError):
    """A remote target did not take an outbox entry."""


class RetryableError(DeliveryError):
    """Delivery failed for now (network, 408, 429, 5xx); `retry_after` seconds when the target said so."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """The target refused the entry for good (a 4xx other than 408 and 429, or an entry that cannot be read);
    it goes to `dead/`."""


class WorkerFailed(FramesiftError, RuntimeError):
    """A worker thread (a source, the inference, the collector, a sink...) died of an unexpected exception."""


class CollectionFailed(FramesiftError, RuntimeError):
    """The stream ran, but datapoints could not be written (a full disk)."""


class NeverConnected(FramesiftError, RuntimeError):
    """A run bounded by `--duration` in which a live source never connected (a wrong URL, a camera off): the
    command line says so and ends with exit code 3, so that a script can tell."""

    exit_code = 3
