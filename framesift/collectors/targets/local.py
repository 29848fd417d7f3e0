"""The local dataset target (SPEC §7): a folder of batches and one append-only `datapoints.jsonl`.

```
DIR/
  datapoints.jsonl
  <batch>/images/<id>.jpg
  <batch>/predictions/<id>.json
```

Durability: each file is written to a hidden temporary name, flushed and fsynced, then renamed into place, and its
folder fsynced; the record is appended (and fsynced) only after its files exist. A process killed (or a power cut)
at any instant leaves every record pointing at complete files; a torn last line is cut off when the dataset is next
opened.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from framesift.collectors.datapoint import Datapoint

log = logging.getLogger(__name__)

RECORDS = "datapoints.jsonl"


class LocalDataset:
    """A dataset folder that datapoints are appended to. Example: `LocalDataset("./framesift-data")`."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.name = self.root.resolve().name
        self._records_path = self.root / RECORDS
        repaired = repair_records(self._records_path)
        if repaired:
            log.warning("cut a torn last line (%d bytes) off %s", repaired, self._records_path)
        _remove_temporaries(self.root)
        self._batch_counts = Counter(r.get("batch") for r in read_records(self.root))
        self._records = os.open(self._records_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def batch_count(self, batch: str) -> int:
        """How many datapoints the batch held when the dataset was opened."""
        return self._batch_counts.get(batch, 0)

    def register(self, datapoint: Datapoint) -> dict[str, Any]:
        """Write the image and prediction files, then append the record. Returns the record.

        When any step fails (a full disk), nothing of the datapoint is left behind and the error is raised.
        """
        image = Path(datapoint.batch, "images", f"{datapoint.id}.jpg")
        prediction = None
        if datapoint.prediction is not None:
            prediction = Path(datapoint.batch, "predictions", f"{datapoint.id}.json")
        record = datapoint.record(image.as_posix(), None if prediction is None else prediction.as_posix())
        written: list[Path] = []
        try:
            write_atomically(self.root / image, datapoint.jpeg)
            written.append(self.root / image)
            if prediction is not None:
                write_atomically(self.root / prediction, json.dumps(datapoint.prediction).encode())
                written.append(self.root / prediction)
            for path in written:  # the files' names are durable before the record that points at them
                fsync_directory(path.parent)
            self._append(json.dumps(record).encode() + b"\n")
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return record

    def close(self, timeout: float = 0.0) -> None:
        """Close the records file (every datapoint is already on disk: nothing to wait for)."""
        os.close(self._records)

    def _append(self, line: bytes) -> None:
        """Append one record with one write, fsynced; a failed append is cut off, never left half written (the
        next record would otherwise be glued to its remains)."""
        end = os.lseek(self._records, 0, os.SEEK_END)
        try:
            if os.write(self._records, line) != len(line):
                raise OSError(errno.ENOSPC, f"{self._records_path}: the record was written only in part")
            os.fsync(self._records)
        except BaseException:
            os.ftruncate(self._records, end)
            raise


def read_records(root: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records of a dataset folder, skipping any line that is not a complete JSON object."""
    path = Path(root) / RECORDS
    if not path.exists():
        return
    with open(path, "rb") as lines:
        for line in lines:
            if not line.endswith(b"\n"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def repair_records(path: Path) -> int:
    """Cut a torn last line (one with no newline) off the records file; returns the bytes removed."""
    if not path.exists():
        return 0
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        keep = _end_of_last_line(f, size)
        f.truncate(keep)
        return size - keep


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
