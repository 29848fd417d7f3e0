"""Archives of recordings as one source: a folder or a glob of video files, replayed in time order, resumable.

`framesift run 'recordings/**/*.mp4'` (or a folder) replays every recording it matches one after another, oldest
first (by each recording's start, `framesift.stream.recordings`), as one source; each real file once, whichever
links name it (`video_files`). What was replayed is written to a `ReplayLog` in the target, once the datapoints of
those frames are written (`Checkpoint`): a recording replayed to its end is skipped when the same command runs
again, and one interrupted halfway goes on with its first frame neither inferred nor passed over unsampled (after
a crash: after its last frame in the target's records, when that is later), so no frame is sampled twice. A file
given alone is replayed as an archive of one recording (`SourceReader`), by the same rule."""

from __future__ import annotations

import fnmatch
import glob
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from stat import S_ISREG
from typing import Protocol

from framesift.dataset.records import read_records
from framesift.durable import append_durably
from framesift.errors import SourceError
from framesift.stream.recordings import recording_start

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".flv",
                            ".mpg", ".mpeg", ".h264", ".h265", ".hevc", ".3gp"})


@dataclass(frozen=True)
class Recording:
    """One file of an archive (or one file given alone): where it is, when it began, what identifies this version
    of it, the file it is (device and inode: the same one after it grew), and its frames when its container says
    (None: a `.ts`, a `.mkv`)."""

    path: str
    start: datetime
    size: int
    mtime_ns: int
    identity: tuple[int, int] = (0, 0)
    frames: int | None = None

    @property
    def key(self) -> str:
        return f"{os.path.abspath(self.path)}\0{self.size}\0{self.mtime_ns}"


def archive_root(pattern: str) -> str:
    """The folder an archive's recordings are named from: the folder given, or a glob's part before its first
    wildcard (a file given alone: its folder)."""
    if Path(pattern).is_dir():
        return pattern
    parts = pattern.split(os.sep)
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts) - 1)
    return os.sep.join(parts[:fixed]) or (os.sep if pattern.startswith(os.sep) else ".")


def recording_identity(recording: Recording, root: str) -> str:
    """What a recording is known by wherever its archive is mounted (a fleet's log, its draws): its path relative
    to the archive's folder `root` (`archive_root`), and its size."""
    return f"{os.path.relpath(os.path.abspath(recording.path), os.path.abspath(root))}\0{recording.size}"


def list_recordings(pattern: str) -> list[Recording]:
    """The video files of a folder (recursively) or a glob (`**` spans folders), oldest recording first, each file
    once (`video_files`). Raises `SourceError` when nothing matches."""
    recordings = [r for r in map(read_recording, video_files(pattern)) if r is not None]
    if not recordings:
        raise SourceError(f"no video files found in {pattern}")
    return sorted(recordings, key=lambda r: (r.start, r.path))


def read_recording(path: str) -> Recording | None:
    """The recording in the file `path`; None (with a warning) when it holds no video or cannot be read."""
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                log.warning("%s holds no video stream; it is left out", path)
                return None
            start = recording_start(container, path)
            frames = container.streams.video[0].frames or None
    except av.error.FFmpegError as error:
        log.warning("%s cannot be read (%s); it is left out", path, error.strerror or error)
        return None
    stat = os.stat(path)
    return Recording(path, start, stat.st_size, stat.st_mtime_ns, (stat.st_dev, stat.st_ino), frames)


def count_frames(path: str) -> int | None:
    """The frames of a file's video stream, counted from its packets (nothing decoded); None when it cannot be
    read."""
    import av

    try:
        with av.open(path) as container:
            return sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)
    except (av.error.FFmpegError, OSError):
        return None


def video_files(pattern: str) -> list[str]:
    """The files of a folder with a video suffix (at any depth), or the files a glob matches, each real file once
    (known by its device and inode) whichever names reach it: under a name without a link when it has one (a camera
    recorder's `latest -> day2` adds nothing), else under the first. Links to folders are followed, but a folder is
    entered once: a link to `..` does not loop."""
    if Path(pattern).is_dir():
        found = [os.path.join(folder, name) for folder in _folders(pattern, hidden=True)
                 for name in sorted(os.listdir(folder)) if Path(name).suffix.lower() in VIDEO_SUFFIXES]
    else:
        found = list(_glob(pattern))
    by_identity: dict[tuple[int, int], str] = {}
    for path in sorted(found, key=lambda p: (os.path.realpath(p) != os.path.abspath(p), p)):
        try:
            stat = os.stat(path)
        except OSError:  # a dangling link, a file removed meanwhile
            continue
        if S_ISREG(stat.st_mode):
            by_identity.setdefault((stat.st_dev, stat.st_ino), path)
    return list(by_identity.values())


def _glob(pattern: str) -> Iterator[str]:
    """What `glob.glob(pattern, recursive=True)` finds (hidden names only for a part starting with a dot), but with
    each folder a `**` spans entered once (`_folders`): glob follows a link to `..` until the system refuses."""
    parts = pattern.split(os.sep)
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    root = os.sep.join(parts[:fixed]) or (os.sep if pattern.startswith(os.sep) else "")
    yield from _matches(root, parts[fixed:])


def _matches(path: str, parts: list[str]) -> Iterator[str]:
    """The paths under the folder `path` ("": the working folder) matching the pattern's `parts`."""
    part, rest = parts[0], parts[1:]
    if part == "**":
        for folder in _folders(path, hidden=False):
            yield from _matches(folder, rest or ["*"])
        return
    try:
        names = sorted(os.listdir(path or "."))
    except OSError:  # not a folder, or unreadable
        return
    for name in fnmatch.filter(names, part) if glob.has_magic(part) else [part] if part in names else []:
        if name.startswith(".") and not part.startswith("."):
            continue
        child = os.path.join(path, name)
        if not rest:
            yield child
        elif os.path.isdir(child):
            yield from _matches(child, rest)


def _folders(root: str, hidden: bool) -> list[str]:
    """`root` ("": the working folder) and every folder below it, each entered once (by device and inode): first
    those reached without a link, then those only a link reaches, and so on; `hidden` ones (a dot first) too."""
    entered: set[tuple[int, int]] = set()
    found: list[str] = []
    tops = [root]
    while tops:
        links = []
        for top in tops:
            for folder, subfolders, _ in os.walk(top or "."):
                if not top:  # the working folder: named as glob names it, without "./"
                    folder = "" if folder == "." else folder.removeprefix("./")
                try:
                    stat = os.stat(folder or ".")
                except OSError:
                    subfolders.clear()
                    continue
                if (stat.st_dev, stat.st_ino) in entered:
                    subfolders.clear()
                    continue
                entered.add((stat.st_dev, stat.st_ino))
                found.append(folder)
                subfolders[:] = sorted(d for d in subfolders if hidden or not d.startswith("."))
                links += [os.path.join(folder, d) for d in subfolders if os.path.islink(os.path.join(folder, d))]
        tops = links
    return found


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
