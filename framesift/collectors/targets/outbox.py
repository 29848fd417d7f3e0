"""A durable on-disk outbox and the thread that delivers it (SPEC §8).

An accepted datapoint for a remote target is first written here — `pending/<seq>-<id>.jpg`, then
`pending/<seq>-<id>.json`, each written, fsynced and renamed, the JSON last, the folder fsynced, so a JSON file
means a complete entry that survives a power cut — and only then sent. The sender delivers in order, retries with
exponential backoff (capped, with jitter, honouring `Retry-After`) and removes an entry only after the target
confirmed it. A permanent refusal moves the entry to `dead/` with its reason: never retried forever, never
silently deleted. A restart resumes what is pending. The outbox has a size bound, dead letters included (a revoked
key must not fill the disk over months): when full, new datapoints are refused (`OutboxFull`) and counted.

One process at a time delivers an outbox: opening it takes an exclusive lock (`.lock`, holding the pid), and a
second run pointed at the same folder is refused with `OutboxInUse`. `describe()` reads an outbox without the
lock, so it is safe while a run delivers it.

Moving an entry between `pending/` and `dead/` links the image first, writes the JSON, then removes the old JSON
and image; whatever instant a crash interrupts it, the next open finds either the old place intact, or both (the
pending entry is kept: it is delivered again, idempotently), never neither.

Example:
    >>> outbox = Outbox("outbox", max_bytes=1 << 30)                             # doctest: +SKIP
    >>> sender = OutboxSender(outbox, deliver=my_target.deliver); sender.start()  # doctest: +SKIP
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

from framesift.collectors.datapoint import Datapoint
from framesift.collectors.targets.local import fsync_directory, write_atomically

log = logging.getLogger(__name__)

_ENTRY = re.compile(r"^(\d{12})-(.+)\.json$")


class OutboxFull(Exception):
    """Pending and dead entries hold `max_bytes` already; the datapoint is refused (and counted by the collector)."""


class OutboxInUse(RuntimeError):
    """Another process delivers this outbox; each run needs its own (`--outbox`)."""


class RetryableError(Exception):
    """Delivery failed for now (network, 408, 429, 5xx); `retry_after` seconds when the target said so."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """The target refused the datapoint for good (a 4xx other than 408 and 429); it goes to `dead/`."""


class Entry:
    """One pending datapoint: its metadata (the JSON) and its image."""

    def __init__(self, path: Path):
        self.path = path
        self.meta: dict[str, Any] = json.loads(path.read_text())

    @property
    def image_path(self) -> Path:
        return self.path.with_suffix(".jpg")

    @property
    def id(self) -> str:
        return self.meta["id"]

    def jpeg(self) -> bytes:
        try:
            return self.image_path.read_bytes()
        except FileNotFoundError:  # removed by hand: nothing to send, ever
            raise PermanentError(f"the image {self.image_path.name} is missing from the outbox") from None


class Outbox:
    """The folder `root` with `pending/` and `dead/`; thread-safe, locked to one process (`OutboxInUse`).

    The pending entries are listed once, when the outbox is opened, and then kept in order in memory, so delivering
    a long backlog costs no directory scans. `close()` releases the lock.
    """

    def __init__(self, root: str | os.PathLike[str], max_bytes: int = 1 << 30):
        self.root = Path(root)
        self.pending_dir, self.dead_dir = self.root / "pending", self.root / "dead"
        for folder in (self.pending_dir, self.dead_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(self.root)
        _recover(self.pending_dir, self.dead_dir)
        self.max_bytes = max_bytes
        self._cond = threading.Condition()
        self._pending: deque[Path] = deque(_entries(self.pending_dir))
        self._bytes = sum(_size(p) for p in self._pending)
        dead = _entries(self.dead_dir)
        self._dead_count, self._dead_bytes = len(dead), sum(_size(p) for p in dead)
        self._next_seq = max((_seq(p) for p in (*self._pending, *dead)), default=0) + 1
        self.refused = 0

    def add(self, datapoint: Datapoint) -> None:
        """Write a datapoint durably, or raise `OutboxFull`."""
        meta = {k: v for k, v in asdict(datapoint).items() if k != "jpeg"}
        meta["captured_at"] = datapoint.captured_at.isoformat()
        meta["queued_at"] = time.time()
        body = json.dumps(meta).encode()
        size = len(body) + len(datapoint.jpeg)
        with self._cond:
            if self._bytes + self._dead_bytes + size > self.max_bytes:
                self.refused += 1
                raise OutboxFull(f"the outbox {self.root} is full ({self._bytes} bytes pending, {self._dead_bytes} "
                                 f"dead, of {self.max_bytes})")
            stem = f"{self._next_seq:012d}-{datapoint.id}"
            self._next_seq += 1
            self._bytes += size
        try:
            write_atomically(self.pending_dir / f"{stem}.jpg", datapoint.jpeg)
            write_atomically(self.pending_dir / f"{stem}.json", body)
            fsync_directory(self.pending_dir)
        except BaseException:
            with self._cond:
                self._bytes -= size
            (self.pending_dir / f"{stem}.json").unlink(missing_ok=True)
            (self.pending_dir / f"{stem}.jpg").unlink(missing_ok=True)
            raise
        with self._cond:
            self._pending.append(self.pending_dir / f"{stem}.json")
            self._cond.notify_all()

    def oldest(self, timeout: float = 0.0) -> Entry | None:
        """The first pending entry, waiting up to `timeout` seconds for one."""
        with self._cond:
            if not self._pending and timeout > 0:
                self._cond.wait(timeout)
            head = self._pending[0] if self._pending else None
        return None if head is None else Entry(head)

    def update(self, entry: Entry) -> None:
        """Persist a change of the entry's metadata (for example the id the target gave the image)."""
        before = _size(entry.path)
        write_atomically(entry.path, json.dumps(entry.meta).encode())
        with self._cond:
            self._bytes += _size(entry.path) - before

    def remove(self, entry: Entry) -> None:
        """The target confirmed the entry: delete it (JSON first, so a crash never leaves half an entry)."""
        size = _size(entry.path)
        entry.path.unlink(missing_ok=True)
        entry.image_path.unlink(missing_ok=True)
        with self._cond:
            self._pending.remove(entry.path)  # the head, in practice: O(1)
            self._bytes -= size

    def kill(self, entry: Entry, reason: str) -> None:
        """Move an entry the target refused for good to `dead/`, with the reason in its JSON."""
        size = _size(entry.path)
        meta = {**entry.meta, "dead_reason": reason, "dead_at": time.time()}
        dead = _move(entry.path, self.dead_dir, meta)
        with self._cond:
            self._pending.remove(entry.path)
            self._bytes -= size
            self._dead_count += 1
            self._dead_bytes += _size(dead)

    def retry_dead(self) -> int:
        """Move every dead entry back to pending (after the cause was fixed); returns how many."""
        moved = 0
        for path in _entries(self.dead_dir):
            dead_size = _size(path)
            meta = json.loads(path.read_text())
            meta.pop("dead_reason", None)
            meta.pop("dead_at", None)
            pending = _move(path, self.pending_dir, meta)
            with self._cond:
                self._dead_count -= 1
                self._dead_bytes -= dead_size
                self._bytes += _size(pending)
                self._pending.append(pending)
                self._cond.notify_all()
            moved += 1
        with self._cond:
            self._pending = deque(sorted(self._pending))  # the oldest first, as they were collected
        return moved

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def stats(self) -> dict[str, Any]:
        """The counters of `describe()`, from memory (no directory scan), plus `refused_full`."""
        while True:
            with self._cond:
                pending, head = len(self._pending), (self._pending[0] if self._pending else None)
            oldest = None if head is None else _read(head)
            if head is None or oldest is not None:  # else delivered while we looked: the next one is the oldest
                break
        with self._cond:
            return {"pending": pending, "pending_bytes": self._bytes, "dead": self._dead_count,
                    "dead_bytes": self._dead_bytes, "refused_full": self.refused,
                    "oldest_pending_age_s": None if oldest is None else time.time() - oldest["queued_at"]}

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Release the lock (another process may open the outbox then)."""
        self._lock.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe(root: str | os.PathLike[str]) -> dict[str, Any]:
    """What an outbox folder holds, read without its lock (safe while a run delivers it): the pending entries'
    count, bytes and oldest age, and the dead letters (their metadata, with `dead_reason`)."""
    pending, dead = _entries(Path(root) / "pending"), _entries(Path(root) / "dead")
    oldest = _read(pending[0]) if pending else None
    letters = [meta for meta in map(_read, dead) if meta is not None]
    return {"pending": len(pending), "pending_bytes": sum(map(_size, pending)),
            "oldest_pending_age_s": None if oldest is None else time.time() - oldest["queued_at"],
            "dead": len(letters), "dead_bytes": sum(map(_size, dead)), "dead_letters": letters}


def _read(json_path: Path) -> dict[str, Any] | None:
    """An entry's metadata, or None when it is gone (delivered or moved while we looked)."""
    try:
        return json.loads(json_path.read_text())
    except FileNotFoundError:
        return None


def _lock(root: Path) -> BinaryIO:
    """Take the outbox's exclusive lock and note our pid in it. The lock lives as long as the returned file: it is
    released by `close()`, by the garbage collector, or when the process ends, however it ends."""
    lock = open(root / ".lock", "a+b")  # held open: the lock lasts as long as this file
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read(20).decode(errors="replace").strip() or "unknown"
        lock.close()
        raise OutboxInUse(f"the outbox {root} is in use by another framesift process (pid {holder}); give each "
                          f"run its own --outbox") from None
    lock.truncate(0)
    lock.write(str(os.getpid()).encode())
    lock.flush()
    return lock


def _recover(pending_dir: Path, dead_dir: Path) -> None:
    """Finish what a crash interrupted: delete temporaries and images without a JSON; an entry both pending and
    dead (a move between them was cut short) stays pending."""
    for folder in (pending_dir, dead_dir):
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
    for dead in dead_dir.glob("*.json"):
        if (pending_dir / dead.name).exists():
            dead.unlink()
    for folder in (pending_dir, dead_dir):
        for orphan in folder.glob("*.jpg"):
            if not orphan.with_suffix(".json").exists():
                orphan.unlink(missing_ok=True)


def _move(json_path: Path, folder: Path, meta: dict[str, Any]) -> Path:
    """Move an entry to `folder` with new metadata: link the image, write the JSON (fsynced with its folder),
    then delete the old JSON and image. Returns the new JSON's path."""
    target = folder / json_path.name
    image = json_path.with_suffix(".jpg")
    if image.exists():
        link = folder / f".{image.name}.tmp"
        link.unlink(missing_ok=True)
        os.link(image, link)
        os.replace(link, target.with_suffix(".jpg"))
    write_atomically(target, json.dumps(meta).encode())
    fsync_directory(folder)
    json_path.unlink(missing_ok=True)
    image.unlink(missing_ok=True)
    return target


def _entries(folder: Path) -> list[Path]:
    """The entries' JSON files of a folder, oldest first."""
    return sorted(p for p in folder.glob("*.json") if _ENTRY.match(p.name))


def _seq(json_path: Path) -> int:
    return int(json_path.name[:12])


class OutboxSender(threading.Thread):
    """Delivers the outbox in order with `deliver(entry)`, which raises `RetryableError` or `PermanentError`."""

    def __init__(self, outbox: Outbox, deliver: Callable[[Entry, Outbox], None], *, backoff_initial: float = 0.5,
                 backoff_max: float = 60.0):
        super().__init__(name="framesift-outbox-sender", daemon=True)
        self.outbox, self._deliver = outbox, deliver
        self._initial, self._max = backoff_initial, backoff_max
        self._stop_event = threading.Event()
        self.delivered = self.retried = 0
        self.last_error: str | None = None
        self._backing_off = False  # the last delivery failed: waiting at close would not help

    def run(self) -> None:
        delay = self._initial
        while not self._stop_event.is_set():
            entry = None
            try:
                entry = self.outbox.oldest(timeout=0.5)
                if entry is None:
                    continue
                self._send(entry)
            except Exception as error:  # RetryableError, a failing outbox (a full disk), anything: later, again
                self.last_error = str(error)
                self.retried += 1
                wait = getattr(error, "retry_after", None) or delay * random.uniform(0.8, 1.2)
                log.warning("%s failed (%s); retrying in %.1f s",
                            "reading the outbox" if entry is None else f"delivery of {entry.id}", error, wait)
                self._backing_off = True
                self._stop_event.wait(wait)
                delay = min(delay * 2, self._max)
            else:
                self._backing_off = False
                delay = self._initial

    def _send(self, entry: Entry) -> None:
        """Deliver one entry and remove it, or move it to `dead/` when the target refuses it for good."""
        try:
            self._deliver(entry, self.outbox)
        except PermanentError as error:
            self.last_error = str(error)
            log.error("the target refused datapoint %s for good (%s); it is kept in %s", entry.id, error,
                      self.outbox.dead_dir)
            self.outbox.kill(entry, str(error))
            return
        self.outbox.remove(entry)
        self.delivered += 1

    def stop(self, timeout: float = 10.0) -> None:
        """Keep delivering for up to `timeout` seconds while entries are pending and delivery succeeds, then stop
        (after the delivery in progress, if it ends in time); what is left stays pending for the next start."""
        deadline = time.monotonic() + timeout
        while self.is_alive() and self.outbox.pending and not self._backing_off and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop_event.set()
        self.outbox.wake()
        if self.ident is not None:  # started
            self.join(max(deadline - time.monotonic(), 1.0))

    def stats(self) -> dict[str, Any]:
        return {"delivered": self.delivered, "retried": self.retried, "last_error": self.last_error,
                **self.outbox.stats()}


def _size(json_path: Path) -> int:
    total = 0
    for path in (json_path, json_path.with_suffix(".jpg")):
        try:
            total += path.stat().st_size
        except FileNotFoundError:
            pass
    return total
