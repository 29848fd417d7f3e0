"""What every remote target shares: datapoints are registered into a durable outbox, and a sender thread hands
each entry to the target's `deliver(entry, outbox)` over one HTTP session (SPEC §8)."""

from __future__ import annotations

import os
from typing import Any

from framesift.collectors.targets.datapoint import Datapoint
from framesift.collectors.targets.outbox import Entry, Outbox, OutboxSender
from framesift.defaults import OUTBOX_MAX_BYTES
from framesift.resources import Service
from framesift.stats import OutboxStats


class RemoteTarget(Service):
    """The base of `RoboflowTarget` and `LabelStudioTarget`. Made, it sends nothing: `start()` starts the sender (the
    collector that owns the target calls it; so does `with`); what is registered before waits in the outbox.

    `close(timeout)` delivers what is pending for up to `timeout` seconds, stops the sender and releases the
    outbox; it may be called again (nothing happens then).
    """

    def __init__(self, name: str, outbox: Outbox | str | os.PathLike[str], outbox_max_bytes: int = OUTBOX_MAX_BYTES):
        import requests

        self.name = name
        self.outbox = outbox if isinstance(outbox, Outbox) else Outbox(outbox, outbox_max_bytes)
        self.http = requests.Session()
        self.sender = OutboxSender(self.outbox, self.deliver)
        self._closed = False

    def start(self) -> None:
        """Start the outbox's sender (idempotent; nothing after `close()`)."""
        if not self._closed:
            self.sender.start_once()

    def batch_count(self, batch: str) -> int:
        return 0  # the remote batch's size is not known here; the limiter counts what this fleet sent

    def register(self, datapoint: Datapoint) -> dict[str, Any]:
        """Add the datapoint to the outbox; raises `WorkerFailed` when the sender has died (nothing would deliver
        it), `OutboxFull` when the outbox is at its bound."""
        self.check()
        self.outbox.add(datapoint)
        return {"id": datapoint.id, "batch": datapoint.batch, "queued": True}

    def check(self) -> None:
        """Raise `WorkerFailed` when the outbox's sender has died (nothing would deliver what is registered)."""
        self.sender.check()

    def stats(self) -> OutboxStats:
        return self.sender.stats()

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is pending for up to `timeout` seconds, then stop; the rest stays for the next run."""
        if self._closed:
            return
        self._closed = True
        try:
            self.sender.stop(timeout)
        finally:
            self.http.close()
            self.outbox.close()

    def deliver(self, entry: Entry, outbox: Outbox) -> None:
        """Send one entry, on the sender's thread; raise `RetryableError` or `PermanentError` when it fails."""
        raise NotImplementedError
