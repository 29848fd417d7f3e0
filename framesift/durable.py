"""Files that survive a crash or a power cut: atomic writes, durable appends of JSON lines, and exclusive locks.

Every wing that writes a file it must not lose half of (a dataset, an outbox, a replay log, a configuration cache, a
report) writes it through here.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger(__name__)


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def fsync_directory(folder: Path) -> None:
    """Make the renames and new names in `folder` durable (a power cut cannot undo them)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_durably(descriptor: int, line: bytes, path: Path) -> None:
    """Append one line (of the file `path` open at `descriptor`) with one write, fsynced; a failed append is cut
    off, never left half written (the next line would otherwise be glued to its remains)."""
    end = os.lseek(descriptor, 0, os.SEEK_END)
    try:
        if os.write(descriptor, line) != len(line):
            raise OSError(errno.ENOSPC, f"{path}: the line was written only in part")
        os.fsync(descriptor)
    except BaseException:
        os.ftruncate(descriptor, end)
        raise


def json_object(line: bytes) -> dict[str, Any] | None:
    """One line as a JSON object, or None when it is not a complete one."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def repair_json_lines(path: Path) -> None:
    """Mend the end of a JSON-lines file (a dataset's records) that a killed run or an editor left: a last line
    that is a complete JSON object but lacks its newline gets one; a torn last line is cut off."""
    if not path.exists():
        return
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        start = _end_of_last_line(f, size)
        f.seek(start)
        if json_object(f.read()) is not None:
            f.write(b"\n")
            log.warning("added the missing newline after the last line of %s", path)
        else:
            f.truncate(start)
            log.warning("cut a torn last line (%d bytes) off %s", size - start, path)


def _end_of_last_line(f: Any, size: int, chunk: int = 65536) -> int:
    position = size
    while position > 0:
        start = max(0, position - chunk)
        f.seek(start)
        newline = f.read(position - start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


def exclusive_lock(path: Path, refused: Callable[[str], Exception]) -> BinaryIO:
    """Take the exclusive lock of the file `path` and note our pid in it; raise `refused(the holder's pid)` when
    another process holds it. The lock lives as long as the returned file: it is released by closing it, by the
    garbage collector, or when the process ends, however it ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(path, "a+b", buffering=0)  # held open: the lock lasts as long as this file
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = (lock.read(20) or b"").decode(errors="replace").strip() or "unknown"
        lock.close()
        raise refused(holder) from None
    try:
        lock.truncate(0)
        lock.write(str(os.getpid()).encode())
    except OSError:
        pass  # a full disk: the lock holds all the same, only the next one's message lacks our pid
    return lock
