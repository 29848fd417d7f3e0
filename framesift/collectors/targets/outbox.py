"""A durable on-disk outbox and the thread that delivers it (SPEC §8).

An accepted datapoint for a remote target is first written here — `pending/<seq>-<id>.jpg`, then
`pending/<seq>-<id>.json`, each written, fsynced and renamed, the JSON last, the folder fsynced, so a JSON file
means a complete entry that survives a power cut — and only then sent. The sender delivers in order, retries with
exponential backoff (capped, with jitter, honouring `Retry-After`) and removes an entry only after the target
confirmed it. A permanent refusal moves the entry to `dead/` with its reason: never retried forever, never
silently deleted. A restart resumes what is pending. The outbox has a size bound, dead letters included (a revoked
key must not fill the disk over months): when full, new datapoints are refused (`OutboxFull`) and counted.

The outbox never wedges on one entry. An entry whose JSON cannot be read (a crash of an older version, a hand
edit, a bad sector) goes to `dead/` with the reason, once — when the outbox is opened, or when the sender reaches
it — and the entries behind it go on; so does one whose delivery fails in a way no retry can mend (its metadata
has the wrong shape). An entry whose files were removed by hand while running is forgotten with a warning and
counted (`vanished`). Statistics come from memory, never from reading an entry.

One process at a time delivers an outbox: opening it takes an exclusive lock (`.lock`, holding the pid), and a
second run pointed at the same folder is refused with `OutboxInUse`. `describe()` reads an outbox without the
lock, so it is safe while a run delivers it.

Moving an entry between `pending/` and `dead/` links the image first, writes the JSON, then removes the old JSON
and image; whatever instant a crash interrupts it, the next open finds either the old place intact, or both (the
pending entry is kept: it is delivered again, idempotently), never neither.

Example:
    >>> outbox = Outbox("outbox", max_bytes=256 << 20)                            # doctest: +SKIP
    >>> sender = OutboxSender(outbox, deliver=my_target.deliver); sender.start()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from framesift.collectors.targets.datapoint import Datapoint
from framesift.defaults import OUTBOX_MAX_BYTES
from framesift.durable import exclusive_lock, fsync_directory, write_atomically
from framesift.errors import OutboxFull, OutboxInUse, PermanentError, RetryableError
from framesift.resources import Resource
from framesift.stats import OutboxStats
from framesift.workers import Worker

log = logging.getLogger(__name__)

_ENTRY = re.compile(r"^(\d{12})-(.+)\.json$")
# What an entry's JSON holds: the datapoint without its image, and when it was queued.
ENTRY_KEYS = frozenset({f.name for f in dataclasses.fields(Datapoint)} - {"jpeg"} | {"queued_at"})
DAMAGED_KEPT = 65536  # the characters of a damaged JSON kept in its dead letter


class Damaged(PermanentError):
    """An entry whose JSON cannot be read, or lacks what delivery needs; it goes to `dead/`."""


class Entry:
    """One pending datapoint: its metadata (the JSON) and its image. Raises `FileNotFoundError` when the JSON is
    gone and `Damaged` when it cannot be read."""

    def __init__(self, path: Path):
        self.path = path
        self.meta: dict[str, Any] = read_meta(path)

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


@dataclass(order=True)
class _Queued:
    path: Path  # the entry's JSON
    queued_at: float
    size: int  # bytes of its JSON and image


class Outbox(Resource):
    """The folder `root` with `pending/` and `dead/`; thread-safe, locked to one process (`OutboxInUse`).

    The pending entries are read once, when the outbox is opened (damaged ones go to `dead/` then), and kept in
    order in memory with their age, so delivering a long backlog costs no directory scans and `stats()` no reads.
    `close()` releases the lock.
    """

    def __init__(self, root: str | os.PathLike[str], max_bytes: int = OUTBOX_MAX_BYTES):
        self.root = Path(root)
        self.pending_dir, self.dead_dir = self.root / "pending", self.root / "dead"
        for folder in (self.pending_dir, self.dead_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(self.root)
        _recover(self.pending_dir, self.dead_dir)
        self.max_bytes = max_bytes
        self._cond = threading.Condition()
        dead = _entries(self.dead_dir)
        self._dead_count, self._dead_bytes = len(dead), sum(_size(p) for p in dead)
        self._pending: deque[_Queued] = deque()
        self._bytes = 0
        self.refused = self.vanished = 0
        for path in _entries(self.pending_dir):
            try:
                meta = read_meta(path)
            except FileNotFoundError:
                continue
            except Damaged as error:
                self._bury(path, error)
                continue
            self._pending.append(_Queued(path, meta["queued_at"], _size(path)))
            self._bytes += self._pending[-1].size
        self._next_seq = max((_seq(p) for p in (*(q.path for q in self._pending), *_entries(self.dead_dir))),
                             default=0) + 1

    def add(self, datapoint: Datapoint) -> None:
        """Write a datapoint durably, or raise `OutboxFull`."""
        meta = {k: v for k, v in dataclasses.asdict(datapoint).items() if k != "jpeg"}
        meta["captured_at"] = datapoint.captured_at.isoformat()
        meta["queued_at"] = queued_at = time.time()
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
            self._pending.append(_Queued(self.pending_dir / f"{stem}.json", queued_at, size))
            self._cond.notify_all()

    def oldest(self, timeout: float = 0.0) -> Entry | None:
        """The first pending entry, waiting up to `timeout` seconds for one. An entry whose JSON was removed by hand
        is forgotten (counted as `vanished`), one that cannot be read goes to `dead/`; the next one is returned."""
        with self._cond:
            if not self._pending and timeout > 0:
                self._cond.wait(timeout)
        while True:
            with self._cond:
                if not self._pending:
                    return None
                head = self._pending[0].path
            try:
                return Entry(head)
            except FileNotFoundError:
                self._forget(head)
            except Damaged as error:
                self._bury(head, error)

    def _forget(self, path: Path) -> None:
        """The entry's JSON was removed by hand while we ran: it cannot be delivered; say so, count it."""
        log.warning("the outbox entry %s was removed from %s while framesift ran; it is not delivered",
                    path.stem, self.pending_dir)
        path.with_suffix(".jpg").unlink(missing_ok=True)
        with self._cond:
            self._drop(path)
            self.vanished += 1

    def _bury(self, path: Path, error: Exception) -> None:
        """Move an entry whose JSON cannot be read to `dead/`, keeping what it held."""
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        reason = f"its metadata cannot be read ({error})"
        log.error("the outbox entry %s is damaged: %s; it goes to %s", path.stem, reason, self.dead_dir)
        meta = {"id": path.stem.partition("-")[2], "damaged_metadata": text[:DAMAGED_KEPT]}
        self._move_to_dead(path, meta, reason)

    def _find(self, path: Path) -> _Queued | None:
        """The queued entry of that JSON (with `_cond` held); the head, in practice: O(1)."""
        return next((queued for queued in self._pending if queued.path == path), None)

    def _drop(self, path: Path) -> None:
        """Take an entry out of the in-memory queue and its bytes out of the count (with `_cond` held)."""
        queued = self._find(path)
        if queued is not None:
            self._pending.remove(queued)
            self._bytes -= queued.size

    def update(self, entry: Entry) -> None:
        """Persist a change of the entry's metadata (for example the id the target gave the image)."""
        write_atomically(entry.path, json.dumps(entry.meta).encode())
        with self._cond:
            queued = self._find(entry.path)
            if queued is not None:
                size = _size(entry.path)
                self._bytes += size - queued.size
                queued.size = size

    def remove(self, entry: Entry) -> None:
        """The target confirmed the entry: delete it (JSON first, so a crash never leaves half an entry)."""
        with self._cond:
            self._drop(entry.path)
        entry.path.unlink(missing_ok=True)
        entry.image_path.unlink(missing_ok=True)

    def kill(self, entry: Entry, reason: str) -> None:
        """Move an entry the target refused for good to `dead/`, with the reason in its JSON."""
        self._move_to_dead(entry.path, entry.meta, reason)

    def _move_to_dead(self, path: Path, meta: dict[str, Any], reason: str) -> None:
        dead = _move(path, self.dead_dir, {**meta, "dead_reason": reason, "dead_at": time.time()})
        with self._cond:
            self._drop(path)
            self._dead_count += 1
            self._dead_bytes += _size(dead)

    def retry_dead(self) -> int:
        """Move every dead entry back to pending (after the cause was fixed), except damaged ones, which no retry
        can deliver; returns how many moved."""
        moved = 0
        for path in _entries(self.dead_dir):
            try:
                meta = read_meta(path)
            except (Damaged, FileNotFoundError):
                continue
            dead_size = _size(path)
            meta.pop("dead_reason", None)
            meta.pop("dead_at", None)
            pending = _move(path, self.pending_dir, meta)
            with self._cond:
                self._dead_count -= 1
                self._dead_bytes -= dead_size
                self._pending.append(_Queued(pending, meta["queued_at"], _size(pending)))
                self._bytes += self._pending[-1].size
                self._cond.notify_all()
            moved += 1
        with self._cond:
            self._pending = deque(sorted(self._pending))  # the oldest first, as they were collected
        return moved

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def stats(self) -> OutboxStats:
        """Counts, bytes and the oldest entry's age, from memory (no disk access: safe to scrape at any rate)."""
        with self._cond:
            oldest = time.time() - self._pending[0].queued_at if self._pending else None
            return OutboxStats(pending=len(self._pending), pending_bytes=self._bytes, dead=self._dead_count,
                               dead_bytes=self._dead_bytes, oldest_pending_age_s=oldest, refused_full=self.refused,
                               vanished=self.vanished, outbox=str(self.root))

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Release the lock (another process may open the outbox then); idempotent."""
        self._lock.close()


def describe(root: str | os.PathLike[str]) -> dict[str, Any]:
    """What an outbox folder holds, read without its lock (safe while a run delivers it): the pending entries'
    count, bytes and oldest age, the dead letters (their metadata, with `dead_reason`), and the names of pending
    entries that cannot be read (`damaged`; the next run moves them to `dead/`)."""
    pending, dead = _entries(Path(root) / "pending"), _entries(Path(root) / "dead")
    readable = {path: _read(path) for path in pending}
    ages = [meta["queued_at"] for meta in readable.values() if meta is not None]
    letters = [_read_letter(path) for path in dead]
    return {"pending": len(pending), "pending_bytes": sum(map(_size, pending)),
            "oldest_pending_age_s": time.time() - min(ages) if ages else None,
            "damaged": [path.name for path, meta in readable.items() if meta is None and path.exists()],
            "dead": len(letters), "dead_bytes": sum(map(_size, dead)), "dead_letters": letters}


def read_meta(json_path: Path) -> dict[str, Any]:
    """An entry's metadata; `FileNotFoundError` when it is gone, `Damaged` when it cannot be read (the JSON is cut
    or edited) or lacks a key (a dead letter of a damaged entry keeps only what could be saved)."""
    try:
        meta = json.loads(json_path.read_bytes())
    except ValueError as error:  # JSON and UTF-8 errors
        raise Damaged(f"{type(error).__name__}: {error}") from None
    if not isinstance(meta, dict):
        raise Damaged(f"a JSON {type(meta).__name__}, not an object")
    missing = sorted(ENTRY_KEYS - meta.keys())
    if missing:
        raise Damaged(f"without {', '.join(missing)}")
    return meta


def _read(json_path: Path) -> dict[str, Any] | None:
    """An entry's metadata, or None when it is gone (delivered or moved while we looked) or cannot be read."""
    try:
        return read_meta(json_path)
    except (Damaged, FileNotFoundError):
        return None


def _read_letter(json_path: Path) -> dict[str, Any]:
    """A dead letter's JSON as it is (one of a damaged entry keeps only its id and the damaged text)."""
    known = {"id": json_path.stem.partition("-")[2]}
    try:
        letter = json.loads(json_path.read_bytes())
    except (OSError, ValueError) as error:
        return {**known, "dead_reason": f"its dead letter cannot be read ({type(error).__name__})"}
    if not isinstance(letter, dict):
        return {**known, "dead_reason": "its dead letter is not a JSON object"}
    return {**known, **letter}


def _lock(root: Path) -> BinaryIO:
    """Take the outbox's exclusive lock (`exclusive_lock`)."""
    return exclusive_lock(root / ".lock", lambda holder: OutboxInUse(
        f"the outbox {root} is in use by another framesift process (pid {holder}); give each run its own --outbox"))


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


class OutboxSender(Worker):
    """Delivers the outbox in order with `deliver(entry)`, which raises `RetryableError` or `PermanentError`.

    A network or disk error (`RetryableError`, `OSError`) is retried with backoff; `PermanentError` moves the entry
    to `dead/`; any other exception means that this entry cannot be delivered as it is (its metadata has the wrong
    shape): it goes to `dead/` with the error, so that one entry never stops the ones behind it.
    """

    def __init__(self, outbox: Outbox, deliver: Callable[[Entry, Outbox], None], *, backoff_initial: float = 0.5,
                 backoff_max: float = 60.0, on_failure: Callable[[Worker], None] | None = None):
        super().__init__("outbox sender", on_failure=on_failure)
        self.outbox, self._deliver = outbox, deliver
        self._initial, self._max = backoff_initial, backoff_max
        self._stop_event = threading.Event()
        self.delivered = self.retried = 0
        self.last_error: str | None = None
        self._backing_off = False  # the last delivery failed: waiting at close would not help

    def work(self) -> None:
        delay = self._initial
        while not self._stop_event.is_set():
            entry = None
            try:
                entry = self.outbox.oldest(timeout=0.5)
                if entry is None:
                    continue
                self._send(entry)
            except (RetryableError, OSError) as error:  # the network, the target, a failing disk: later, again
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
        except (RetryableError, OSError):
            raise
        except Exception as error:  # PermanentError, or an entry that no retry can deliver as it is
            reason = str(error) if isinstance(error, PermanentError) else f"{type(error).__name__}: {error}"
            self.last_error = reason
            log.error("datapoint %s cannot be delivered (%s); it is kept in %s", entry.id, reason,
                      self.outbox.dead_dir)
            self.outbox.kill(entry, reason)
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

    def stats(self) -> OutboxStats:
        return dataclasses.replace(self.outbox.stats(), delivered=self.delivered, retried=self.retried,
                                   last_error=self.last_error)


def _size(json_path: Path) -> int:
    total = 0
    for path in (json_path, json_path.with_suffix(".jpg")):
        try:
            total += path.stat().st_size
        except FileNotFoundError:
            pass
    return total
