"""The local dataset target (SPEC §7): a folder of batches and one append-only `datapoints.jsonl`.

```
DIR/
  datapoints.jsonl
  <batch>/images/<id>.jpg
  <batch>/predictions/<id>.json
```

Durability: each file is written to a hidden temporary name, flushed and fsynced, then renamed into place, and its
folder fsynced; the record is appended (and fsynced) only after its files exist. A process killed (or a power cut)
at any instant leaves every record pointing at complete files; a torn last line (one that is not a complete JSON
object) is cut off when the dataset is next opened, and a complete last record that merely lacks its newline (an
editor saved the file) gets one.

A dataset folder moved or deleted while a run writes to it (`mv`, `rm -rf`) is noticed before the next datapoint
(one `stat` per datapoint, on the collector's thread): the layout is made again at the same path, with a warning,
and collection goes on there, so every image written has its record beside it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from framesift.collectors.datapoint import Datapoint, NotOurs
from framesift.errors import TargetError
from framesift.paths import inside
from framesift.resources import Resource

log = logging.getLogger(__name__)

RECORDS = "datapoints.jsonl"
BUDGETS_LOCK = "budgets.lock"  # held by the one process that spends the dataset's budgets without Redis


class LocalDataset(Resource):
    """A dataset folder opened for appending datapoints; opening it repairs what a killed run left (a torn last
    record, temporary files).

    Example: `LocalDataset("./framesift-data")`; `.records()` reads it back. To read a folder that a run is writing
    to, use `read_records(folder)`, which changes nothing. Raises `TargetError` when the folder cannot be written.

    `exclusive` (a run without Redis: this process alone spends the dataset's budgets) first takes the folder's
    `budgets.lock`, before anything in it is touched; held by another process, `TargetError` names its pid. Two
    datasets of one folder in one process share it. `admissions` says when each strategy's datapoints were admitted
    (seconds since the epoch, sorted), for budgets that go on across runs. `shared` (a folder several processes of
    a fleet write, `--redis`): a torn last record and temporary files are left alone, not repaired (another
    process may be writing them).
    """

    def __init__(self, root: str | os.PathLike[str], *, exclusive: bool = False, shared: bool = False):
        self.root = Path(root)
        self.name = self.root.resolve().name
        self._records_path = self.root / RECORDS
        self._records = -1
        self._exclusive = False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if exclusive:
                _hold_budgets(self.root)
                self._exclusive = True
            if not shared:  # a folder shared by a fleet may be being written by another process
                repair_records(self._records_path)
                _remove_temporaries(self.root)
            self._batch_counts: Counter[Any] = Counter()
            self.admissions: dict[str, list[float]] = {}  # strategy -> when its datapoints were admitted (sorted)
            for record in read_records(self.root):
                self._batch_counts[record.get("batch")] += 1
                _note_admission(record, self.admissions)
            for times in self.admissions.values():
                times.sort()
            self._open_records()
        except OSError as error:
            self.close()
            raise TargetError(f"cannot write the dataset folder {self.root}: {error.strerror or error}") from None

    def batch_count(self, batch: str) -> int:
        """How many datapoints the batch held when the dataset was opened."""
        return self._batch_counts.get(batch, 0)

    def records(self) -> Iterator[dict[str, Any]]:
        """The records registered so far (see `read_records`)."""
        return read_records(self.root)

    def check(self) -> None:
        """A local dataset runs no thread: nothing can have died."""

    def stats(self) -> None:
        """A local dataset has no outbox: nothing to report beyond the collector's counters."""
        return None

    def register(self, datapoint: Datapoint) -> dict[str, Any]:
        """Write the image and prediction files, then append the record. Returns the record.

        When any step fails (a full disk), nothing of the datapoint is left behind and the error is raised.
        """
        image = Path(datapoint.batch, "images", f"{datapoint.id}.jpg")
        prediction = None
        if datapoint.prediction is not None:
            prediction = Path(datapoint.batch, "predictions", f"{datapoint.id}.json")
        record = datapoint.record(image.as_posix(), None if prediction is None else prediction.as_posix())
        self._follow_the_folder()
        written: list[Path] = []
        try:
            write_atomically(self.root / image, datapoint.jpeg)
            written.append(self.root / image)
            if prediction is not None:
                write_atomically(self.root / prediction, json.dumps(datapoint.prediction).encode())
                written.append(self.root / prediction)
            for path in written:  # the files' names are durable before the record that points at them
                fsync_directory(path.parent)
            if datapoint.still_ours is not None and not datapoint.still_ours():
                raise NotOurs(f"frame {datapoint.frame_id} of {datapoint.source}")
            self._append(json.dumps(record).encode() + b"\n")
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return record

    def close(self, timeout: float = 0.0) -> None:
        """Close the records file (every datapoint is already on disk: nothing to wait for); idempotent."""
        if self._records >= 0:
            os.close(self._records)
            self._records = -1
        if self._exclusive:
            self._exclusive = False
            _release_budgets(self.root)

    def _open_records(self) -> None:
        self._records = os.open(self._records_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _follow_the_folder(self) -> None:
        """Make the layout again when the records file we append to is no longer the one at its path (the folder
        or the file was moved or deleted while we ran): records must go where the images go."""
        try:
            here = os.stat(self._records_path)
        except FileNotFoundError:
            here = None
        ours = os.fstat(self._records)
        if here is not None and (here.st_dev, here.st_ino) == (ours.st_dev, ours.st_ino):
            return
        log.warning("the dataset %s was moved or deleted while framesift wrote to it (%s); collection goes on in "
                    "a new %s there", self.root, "its records file is gone" if here is None else
                    "its records file was replaced", RECORDS)
        os.close(self._records)
        self._records = -1
        self.root.mkdir(parents=True, exist_ok=True)
        self._open_records()

    def _append(self, line: bytes) -> None:
        append_durably(self._records, line, self._records_path)


def read_records(root: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records of a dataset folder (safe while a run appends to it), skipping any line that is not a complete
    JSON object."""
    path = Path(root) / RECORDS
    if not path.exists():
        return
    with open(path, "rb") as lines:
        for line in lines:
            record = _record(line)
            if record is not None:
                yield record


class UnusableRecord(Exception):
    """A records line left out, and why; `name` is its record's id when it has one."""

    def __init__(self, name: str | None, reason: str):
        super().__init__(reason)
        self.name = name


def record_with_image(root: str | os.PathLike[str], line: bytes) -> dict[str, Any]:
    """One records line as a record whose image is in the dataset, and whose prediction (when it names one) is
    inside the dataset folder too; raises `UnusableRecord` saying why not. A path that leaves the folder (absolute,
    `..`, a link pointing out) is never followed: a record edited by hand cannot make an export or a report read
    files from elsewhere."""
    try:
        record: Any = json.loads(line)
    except ValueError:
        raise UnusableRecord(None, "not a complete JSON record") from None
    if not isinstance(record, dict):
        raise UnusableRecord(None, "not a JSON object")
    name = str(record["id"]) if "id" in record else None
    if not isinstance(record.get("image"), str):
        raise UnusableRecord(name, "no 'image' key")
    for key in ("image", "prediction"):
        if isinstance(record.get(key), str) and record[key] and not inside(root, record[key]):
            raise UnusableRecord(name, f"its {key} {record[key]} is outside the dataset folder")
    if not (Path(root) / record["image"]).is_file():
        raise UnusableRecord(name, f"its image {record['image']} is missing")
    return record


_held: dict[Path, tuple[BinaryIO, int]] = {}  # folder -> its budgets lock, and how many datasets hold it here
_held_guard = threading.Lock()


def _hold_budgets(root: Path) -> None:
    """Take (or share, within this process) the budgets lock of a dataset folder; `TargetError` naming the holder."""
    def refused(holder: str) -> TargetError:
        return TargetError(f"another framesift process (pid {holder}) writes the dataset {root} without --redis: "
                           "each would spend the whole budget of every limit; let it finish, or give both --redis "
                           "redis://host:port/db to share the budgets")

    folder = root.resolve()
    with _held_guard:
        lock, holders = _held.get(folder) or (exclusive_lock(folder / BUDGETS_LOCK, refused), 0)
        _held[folder] = (lock, holders + 1)


def _release_budgets(root: Path) -> None:
    folder = root.resolve()
    with _held_guard:
        lock, holders = _held.pop(folder)
        if holders > 1:
            _held[folder] = (lock, holders - 1)
        else:
            lock.close()


def _note_admission(record: dict[str, Any], admissions: dict[str, list[float]]) -> None:
    """Add when a record's datapoint was admitted by the budgets (`admitted_at`, else `captured_at`) under its
    strategy; a record without a readable time (edited by hand) is left out."""
    strategy, when = record.get("strategy"), record.get("admitted_at", record.get("captured_at"))
    if not isinstance(strategy, str) or not isinstance(when, str):
        return
    try:
        moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        return
    if moment.tzinfo is not None:
        admissions.setdefault(strategy, []).append(moment.timestamp())


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def repair_records(path: Path) -> None:
    """Mend the end of a records file a killed run or an editor left: a last line that is a complete record but
    lacks its newline gets one; a torn last line (not a complete JSON object) is cut off."""
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
        if _record(f.read()) is not None:
            f.write(b"\n")
            log.warning("added the missing newline after the last record of %s", path)
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


def _remove_temporaries(root: Path) -> None:
    """Delete the hidden temporary files a killed run can leave behind."""
    for leftover in root.glob("*/*/.*.tmp"):
        leftover.unlink(missing_ok=True)
