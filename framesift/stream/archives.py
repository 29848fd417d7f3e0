"""Archives of recordings as one source: a folder or a glob of video files, replayed in time order, resumable.

`framesift run 'recordings/**/*.mp4'` (or a folder) replays every recording it matches one after another, oldest
first (by each recording's start, `framesift.stream.recordings`), as one source; each real file once, whichever
links name it (`video_files`). What was replayed of them is kept by `framesift.stream.replay`: a recording
replayed to its end is skipped when the same command runs again, one interrupted halfway goes on where it stopped.
This module finds the recordings and says what each is (`Recording`, `recording_identity`)."""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from stat import S_ISREG

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
