"""Stopping on signals: SIGINT (Ctrl-C), SIGTERM and SIGHUP all ask for an orderly stop; a second one exits at
once (code 130).

The command line installs the handlers first thing, so a signal during start-up (while the model loads, say) ends
the run like one during the stream: nothing started is left half done, the summary is written, the exit code is 0.

Example:
    >>> with StopSignals() as stop:       # doctest: +SKIP
    ...     run(options, stop=stop.event)
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from framesift.resources import Resource

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_AT_ONCE = 130


class StopSignals(Resource):
    """Installs the handlers (only possible on the main thread; elsewhere it does nothing) until `close()`;
    `event` is set by the first signal."""

    def __init__(self, event: threading.Event | None = None):
        self.event = event or threading.Event()
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.event.is_set():
            os._exit(EXIT_AT_ONCE)  # a second signal: at once
        self.event.set()
        log.warning("%s received: stopping (a second signal exits at once)", signal.Signals(signum).name)

    def close(self) -> None:
        """Put the previous handlers back; idempotent."""
        previous, self._previous = self._previous, {}
        for sig, handler in previous.items():
            signal.signal(sig, handler)
