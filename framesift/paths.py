"""Names and paths that come from configurations, workflows and records, kept inside their folders.

A dataset name (a workflow collector's `target_dataset`, a Roboflow dataset) becomes a folder under `--target`, or
a part of a URL's path: `dataset_name_refusal` is the one rule that says whether it can, used wherever a name is
checked (at `validate` and when a run resolves its parameters). A record's `image` or `prediction` is a path
relative to its dataset folder: `inside` says whether it stays there once every link is followed.

Example:
    >>> dataset_name_refusal("people") is None, dataset_name_refusal("..")
    (True, "'..' is no dataset name: it names no folder of its own (a dataset name is one folder's name)")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from framesift.documents import quoted
from framesift.errors import TargetError

NAME_MAX_BYTES = 255  # the longest name of one folder on Linux, macOS and Windows file systems


def check_dataset_name(name: Any, where: str) -> str:
    """`name` when it is a dataset name, else `TargetError` saying why (`where`: what gave it)."""
    refused = dataset_name_refusal(name)
    if refused is not None:
        raise TargetError(f"{where}: {refused}")
    return str(name)


def dataset_name_refusal(name: Any) -> str | None:
    """Why `name` is no dataset name — one folder directly inside another: text, not empty, not `.` or `..`,
    without a path separator (`/` or `\\`) or a control character (NUL included), at most 255 bytes in UTF-8 —
    as the end of a sentence that names its field; None when it is one."""
    if not isinstance(name, str):
        problem = f"is {type(name).__name__}, not a text"
    elif name in ("", ".", ".."):
        problem = "names no folder of its own" if name else "is empty"
    elif "/" in name or "\\" in name:
        problem = "holds a path separator (/ or \\)"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "holds a control character"
    elif len(name.encode("utf-8", "surrogatepass")) > NAME_MAX_BYTES:
        problem = f"is longer than a folder's name can be ({NAME_MAX_BYTES} bytes)"
    else:
        return None
    return f"{quoted(name)} is no dataset name: it {problem} (a dataset name is one folder's name)"


def inside(root: str | os.PathLike[str], relative: str) -> bool:
    """Whether `root/relative` names something inside the folder `root` (not `root` itself) once every link is
    followed: not absolute, no `..` out of it, no link pointing elsewhere, no NUL."""
    if "\0" in relative or os.path.isabs(relative):
        return False
    folder = Path(os.path.realpath(root))
    path = Path(os.path.realpath(folder / relative))
    return path != folder and path.is_relative_to(folder)
