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

import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from framesift.collectors.targets.datapoint import Datapoint, NotOurs
from framesift.collectors.targets.schemes import FOLDER, Opening, register_target
from framesift.dataset.records import RECORDS, read_records
from framesift.durable import append_durably, exclusive_lock, fsync_directory, repair_json_lines, write_atomically
from framesift.errors import TargetError
from framesift.resources import Resource

log = logging.getLogger(__name__)

BUDGETS_LOCK = "budgets.lock"  # held by the one process that spends the dataset's budgets without Redis


@register_target(FOLDER, form="<folder>", remote=False)
def open_folder(path: str, opening: Opening) -> LocalDataset:
    """`--target <folder>`: any text that names no other scheme."""
    return LocalDataset(path, exclusive=opening.exclusive, shared=opening.shared)


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
                repair_json_lines(self._records_path)
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


def _remove_temporaries(root: Path) -> None:
    """Delete the hidden temporary files a killed run can leave behind."""
    for leftover in root.glob("*/*/.*.tmp"):
        leftover.unlink(missing_ok=True)
