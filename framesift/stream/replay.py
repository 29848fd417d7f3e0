"""An archive's replay bookkeeping: what was replayed of each recording (`ReplayLog`, or a fleet's log in Redis),
and, for one source replaying an archive, which recording comes next, how far each was read, and what the log may
say once the datapoints of the frames read are written (`ArchiveReplay`).

What was replayed is written to a `ReplayLog` in the target, once the datapoints of those frames are written
(`Checkpoint`): a recording replayed to its end is skipped when the same command runs again, and one interrupted
halfway goes on with its first frame neither inferred nor passed over unsampled (after a crash: after its last
frame in the target's records, when that is later), so no frame is sampled twice. A file given alone is replayed
as an archive of one recording (`framesift.stream.sources.SourceReader`), by the same rule. The reader reads;
this module keeps the books.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from framesift.dataset.records import read_records
from framesift.durable import append_durably
from framesift.stream.archives import Recording, count_frames, recording_identity

log = logging.getLogger(__name__)

CHECKPOINT_S = 1.0  # seconds between an archive's replay-log entries while a recording is replayed


class ReplayLog:
    """What was replayed of each recording, as JSON lines appended to one file (`replayed.jsonl` in the target):
    `{"file", "key", "frames", "finished", "size", "identity"}`, the last line of a recording telling; a
    recording's first line is written when its replay begins, the others once the datapoints of its frames are
    written (`Checkpoint`). A line that cannot be read (a hand-edited file) is left out with a warning: its
    recording is replayed again; so is a line claiming more frames than its file holds.

    After a crash (no orderly stop) the log may say less than was replayed: a recording begun and not finished then
    goes on after the last of its frames in the dataset's records beside the log (a local target's), when that is
    later, so no frame collected before the crash is collected again. A file that only grew since (the same
    device and inode, larger: a recording still being written) goes on after its frames replayed before.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._done: dict[str, tuple[int, bool]] = {}
        self._files: dict[str, tuple[tuple[int, int], int, int]] = {}  # file -> its last (identity, size, frames)
        self._failing = False  # the last write failed (warned once until one succeeds)
        self._checked: set[tuple[str, int]] = set()  # (recording, frames claimed) found to be right
        self._collected: dict[str, int] = {}  # the last frame of each recording in the records beside the log
        if self.path.exists():
            self._read()
            self._collected = last_frames(self.path.parent)

    def _read(self) -> None:
        for number, line in enumerate(self.path.read_text(errors="replace").splitlines(), 1):
            try:
                entry = json.loads(line)
                frames, finished = entry["frames"], entry["finished"]
                if type(frames) is not int or frames < 0 or not isinstance(finished, bool):
                    raise ValueError(line)
                self._done[str(entry["key"])] = (frames, finished)
            except (ValueError, KeyError, TypeError):
                log.warning("%s line %d is not a replay entry; it is left out", self.path, number)
                continue
            identity, size = entry.get("identity"), entry.get("size")
            if isinstance(identity, list) and len(identity) == 2 and all(type(n) is int for n in identity) \
                    and type(size) is int:
                self._files[str(entry.get("file"))] = ((identity[0], identity[1]), size, frames)

    def frames_done(self, recording: Recording) -> int | None:
        """Frames of `recording` already replayed, or None when it was replayed to its end. An entry claiming more
        frames than the file holds is warned about and forgotten (`_overclaims`): the records then tell."""
        after_records = self._collected.get(recording.path, -1) + 1
        if recording.key in self._done:
            frames, finished = self._done[recording.key]
            if self._overclaims(recording, frames, finished):
                self._done[recording.key] = (0, False)
                return after_records
            return None if finished else max(frames, after_records)
        file = os.path.abspath(recording.path)
        last = self._files.get(file)
        if last is None or last[0] != recording.identity or not last[1] < recording.size:
            return 0
        if self._overclaims(recording, last[2], False):
            del self._files[file]
            return after_records
        return max(last[2], after_records)  # it only grew: it goes on after what was replayed of it

    def _overclaims(self, recording: Recording, frames: int, finished: bool) -> bool:
        """Whether an entry claims more than the frames the file holds (warned). The container's count, or without
        one a frame a byte, bounds it at no cost; the packets are counted when the claim passes that bound, and
        for an unfinished entry of a file whose container does not say (a `.ts`: it is read next anyway)."""
        cheap = recording.frames is not None or finished or frames == 0
        if (recording.key, frames) in self._checked or (cheap and frames <= (recording.frames or recording.size)):
            return False
        holds = count_frames(recording.path)
        if holds is None or frames <= holds:
            self._checked.add((recording.key, frames))
            return False
        log.warning("%s says %d frames of %s were replayed, but it holds %d: the entry is wrong and left out",
                    self.path, frames, recording.path, holds)
        return True

    def record(self, recording: Recording, frames: int, finished: bool) -> None:
        """Say (durably) that the first `frames` frames of `recording` were replayed, or all of them; an entry
        saying less than the last one (written by another collector's thread a moment later) is left out."""
        entry = {"file": os.path.abspath(recording.path), "key": recording.key, "frames": frames,
                 "finished": finished, "size": recording.size, "identity": list(recording.identity)}
        with self._lock:
            last = self._done.get(recording.key)
            if last is not None and (last[1] or (not finished and frames <= last[0])):
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    append_durably(descriptor, (json.dumps(entry) + "\n").encode(), self.path)
                finally:
                    os.close(descriptor)
            except OSError as error:  # a full disk: the replay goes on, the log says less than was replayed
                if not self._failing:
                    log.warning("cannot write %s (%s): the same command would replay %s again from where the log "
                                "last said", self.path, error.strerror or error, recording.path)
                self._failing = True
                return
            self._failing = False
            self._done[recording.key] = (frames, finished)


ReplayEntry = tuple[Recording, int, bool]  # a recording, its frames replayed, whether all of them


class Replayed(Protocol):
    """A replay log: a file (`ReplayLog`) or a fleet's in Redis (`framesift.stream.fleet.FleetLog`)."""

    def frames_done(self, recording: Recording) -> int | None: ...

    def record(self, recording: Recording, frames: int, finished: bool) -> None: ...


@dataclass(frozen=True)
class Checkpoint:
    """Replay-log entries that hold once a frame's datapoints are written (`Frame.checkpoint`): called then."""

    log: Replayed
    entries: tuple[ReplayEntry, ...]

    def __call__(self) -> None:
        for recording, frames, finished in self.entries:
            self.log.record(recording, frames, finished)


def last_frames(folder: Path) -> dict[str, int]:
    """The last frame id collected from each source, in the records of a dataset folder (none: {})."""
    last: dict[str, int] = {}
    for record in read_records(folder):
        source, frame = record.get("source"), record.get("frame_id")
        if isinstance(source, str) and type(frame) is int:
            last[source] = max(frame, last.get(source, frame))
    return last


class Fleet(Replayed, Protocol):
    """A fleet's replay log (`framesift.stream.fleet.FleetLog`): recordings are claimed one at a time, under a
    lease this box may lose."""

    lease_s: float

    def known(self, recordings: list[Recording], root: str) -> None: ...

    def claim(self, recording: Recording) -> str: ...

    def fail(self, recording: Recording, reason: str) -> None: ...

    def holds(self, recording: Recording) -> bool: ...


class ArchiveReplay:
    """The books of one source replaying an archive (or a file whose replay is logged) made of `every` recording,
    named from its folder `root`: the recordings left to replay (those the log says were replayed to their end
    are skipped; a `fleet` shares them instead), the frames read of each, and the log entries that hold once the
    datapoints of the frames before are written. `defer` hands on a checkpoint that no frame carries."""

    def __init__(self, source: str, every: list[Recording], root: str, replay_log: str | None = None,
                 fleet: Fleet | None = None, defer: Callable[[Checkpoint], None] | None = None):
        self._root, self._fleet, self._defer = root, fleet, defer
        self._log: Replayed | None = fleet
        self._identities: dict[str, str] = {}  # a recording's path -> its identity (`recording_identity`)
        self._frames_read: dict[str, int] = {}  # frames decoded of each recording (skipped ones included)
        self._read_through: set[str] = set()  # ... and those read to their end
        self._unconfirmed: list[ReplayEntry] = []  # replay-log entries for the next frame's checkpoint
        self._next_checkpoint = 0.0  # monotonic time from which a frame carries its recording's progress
        self._first_refused: tuple[str, int] | None = None  # a frame the slots refused at the stop
        if fleet is not None:  # each recording is claimed when its turn comes (`turns`)
            fleet.known(every, root)
            self.recordings = every
            return
        if replay_log is not None:
            self._log = ReplayLog(replay_log)
        replayed = self._log
        self.recordings = [r for r in every if replayed is None or replayed.frames_done(r) is not None]
        if len(self.recordings) < len(every):
            log.info("source %s: %d of %d recordings were replayed already (%s); they are skipped", source,
                     len(every) - len(self.recordings), len(every), replay_log)

    def frames_left(self) -> list[tuple[str, int]]:
        """(file, frames already replayed) of each recording left to replay."""
        if self._fleet is not None:  # the fleet shares them: what this box will read is not known
            return [(r.path, 0) for r in self.recordings]
        return [(r.path, (self._log.frames_done(r) or 0) if self._log else 0) for r in self.recordings]

    def turns(self, stopping: Callable[[], bool], wait: Callable[[float], object]) -> Iterator[Recording]:
        """The recordings to replay, in turn, until `stopping()`: a fleet's each once claimed (those held by
        other boxes tried again, after a `wait(seconds)`); none once Redis cannot be reached."""
        fleet = self._fleet
        if fleet is None:
            for recording in self.recordings:
                if stopping():
                    return
                yield recording
            return
        left = list(self.recordings)
        while left and not stopping():
            claimed = False
            for recording in list(left):
                if stopping():
                    return
                state = fleet.claim(recording)
                if state == "unreachable":
                    return
                if state != "held":
                    left.remove(recording)
                if state in ("claimed", "taken"):
                    claimed = True
                    yield recording
            if left and not claimed:  # every one left is held by another box: wait for its end or its lease's
                if self._unconfirmed and self._defer is not None:  # say what this box finished: the others wait
                    entries, self._unconfirmed = self._unconfirmed, []
                    self._defer(Checkpoint(fleet, tuple(entries)))
                wait(min(0.25, fleet.lease_s / 3))

    def begin(self, recording: Recording) -> int:
        """The frames of `recording` replayed before (to skip), its replay noted as begun (after a crash, the
        records say how far it went)."""
        if self._log is None:
            return 0
        skip = self._log.frames_done(recording) or 0
        self._log.record(recording, skip, finished=False)
        return skip

    def read(self, recording: Recording, frames: int) -> None:
        """The first `frames` frames of `recording` were decoded (or passed over)."""
        self._frames_read[recording.path] = frames

    def read_through(self, recording: Recording) -> None:
        """`recording` was read to its end: the next frame's checkpoint says so."""
        self._read_through.add(recording.path)
        self._unconfirmed.append((recording, self._frames_read[recording.path], True))

    def fail(self, recording: Recording, reason: str) -> None:
        """`recording` cannot be replayed (a fleet marks it failed for every box)."""
        if self._fleet is not None:
            self._fleet.fail(recording, reason)

    def lost(self, recording: Recording) -> bool:
        """Whether this box lost its lease on `recording` (another box of the fleet replays it now)."""
        return self._fleet is not None and not self._fleet.holds(recording)

    def known_as(self, recording: Recording, index: int) -> str:
        """What the frame `index` of `recording` is known by, wherever the archive is mounted: what its draws are
        seeded with."""
        identity = self._identities.get(recording.path)
        if identity is None:
            identity = self._identities[recording.path] = recording_identity(recording, self._root)
        return f"{identity}\0{index}"

    def still_ours(self, recording: Recording) -> Callable[[], bool] | None:
        """A fleet's: whether this box still holds `recording` (asked before a frame's datapoint is written)."""
        return None if self._fleet is None else functools.partial(self._fleet.holds, recording)

    def checkpoint(self, recording: Recording, index: int) -> Checkpoint | None:
        """What the replay log may say once this frame (`index` in `recording`) is collected: every frame up to it
        was, and the recordings read through before it were (`Pipeline` writes it when the collectors have written
        the frame's datapoints). Every `CHECKPOINT_S`, and after a recording's end."""
        now = time.monotonic()
        if self._log is None or not (self._unconfirmed or now >= self._next_checkpoint):
            return None
        self._next_checkpoint = now + CHECKPOINT_S
        entries, self._unconfirmed = [*self._unconfirmed, (recording, index + 1, False)], []
        return Checkpoint(self._log, tuple(entries))

    def replaced(self, checkpoint: object) -> None:
        """A waiting frame was replaced by a newer one before the model took it: its checkpoint goes with the
        next frame."""
        if isinstance(checkpoint, Checkpoint):
            self._unconfirmed[:0] = checkpoint.entries

    def refused(self, recording: Recording, index: int) -> None:
        """The frame `index` of `recording` was decoded as the pipeline stopped, and never inferred."""
        if self._first_refused is None:
            self._first_refused = (recording.path, index)

    def confirm(self, first_left: tuple[str, int] | None) -> None:
        """Write what was replayed once the reading has ended and the datapoints of its frames were written, given
        the first frame left waiting for the model when the pipeline stopped (recording, index there), if any:
        every frame before that one, or before the first the slots refused, was inferred or passed over unsampled;
        without either, everything read was."""
        if self._log is None:
            return
        left = first_left or self._first_refused
        for recording in self.recordings:
            if recording.path not in self._frames_read:
                continue  # not read (the stop came first, or another box of the fleet replays it)
            if left is not None and recording.path == left[0]:
                self._log.record(recording, left[1], finished=False)
                return
            self._log.record(recording, self._frames_read[recording.path], recording.path in self._read_through)
