"""Worker threads whose death is never silent.

Every thread framesift starts (a source, the inference, the collector, a sink, the outbox sender, the status line)
is a `Worker`. An exception that escapes its work is logged in one line (the traceback at debug level), kept as
`error`, and handed to `on_failure`, so that its owner ends the run loudly (`WorkerFailed`) instead of carrying on
with a dead thread and a process that looks healthy.

Example:
    >>> worker = Worker("example", target=lambda: 1 / 0)
    >>> worker.start(); worker.join()
    >>> str(worker.failure())
    'the example thread failed: ZeroDivisionError: division by zero'
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from framesift.errors import WorkerFailed
from framesift.redaction import redact

log = logging.getLogger(__name__)


class Worker(threading.Thread):
    """A daemon thread running `target` (or a subclass's `work()`); `role` names it in messages ("inference",
    "source cam1"). `on_failure(worker)` is called, on the dying thread, when the work raised."""

    def __init__(self, role: str, target: Callable[[], object] | None = None,
                 on_failure: Callable[[Worker], None] | None = None):
        super().__init__(name=f"framesift-{role.replace(' ', '-')}", daemon=True)
        self.role = role
        self._target_work = target
        self.on_failure = on_failure
        self.error: BaseException | None = None
        self.started = False  # start() was called (a thread that was never started cannot be joined)
        self._start_lock = threading.Lock()

    def start(self) -> None:
        super().start()
        self.started = True

    def start_once(self) -> None:
        """Start the thread unless it was started already (whichever thread asks first starts it)."""
        with self._start_lock:
            if not self.started:
                self.start()

    def work(self) -> None:
        if self._target_work is not None:
            self._target_work()

    def run(self) -> None:
        try:
            self.work()
        except BaseException as error:  # noqa: BLE001 - kept and reported, never lost
            self.error = error
            if not isinstance(error, WorkerFailed):  # one that died of another's failure: said there already
                log.error("%s", self.failure())
                log.debug("the %s thread's traceback", self.role, exc_info=True)
            if self.on_failure is not None:
                self.on_failure(self)

    def failure(self) -> WorkerFailed:
        """The error as one sentence naming this thread; a `WorkerFailed` it died of is passed on as it is."""
        if isinstance(self.error, WorkerFailed):
            return self.error
        error = self.error
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        return WorkerFailed(redact(f"the {self.role} thread failed: {detail}"))

    def check(self) -> None:
        """Raise `WorkerFailed` when this thread has died of an exception (cheap: one attribute read)."""
        if self.error is not None:
            raise self.failure()
