"""A target's text (`--target`) and the schemes it names: `TargetSpec.parse` is the one parser of that text, and
each target is one module of this package that registers its scheme with `register_target` — how it opens, and
whether it delivers through an outbox. Adding a target is one new file.

A text `<scheme>:<name>` whose scheme is registered names that target (`roboflow:people`, `labelstudio:Loading
dock`); any other text is a dataset folder (the `folder` scheme: `./framesift-data`, `/data/people`). The schemes
of this package's modules are registered the first time a scheme is looked up; one from outside is registered
when its module is imported (before the run), or, for the command line, through an entry point of the
`framesift.targets` group (`[project.entry-points."framesift.targets"] mine = "my_package.my_target"`).

Example:
    >>> spec = TargetSpec.parse("roboflow:people")
    >>> spec.scheme, spec.name, spec.dataset, spec.remote
    ('roboflow', 'people', 'people', True)
    >>> str(TargetSpec.parse("roboflow:").for_dataset("people")), str(TargetSpec.parse("data").for_dataset("people"))
    ('roboflow:people', 'data/people')
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from framesift.collectors.targets.datapoint import Datapoint
from framesift.dataset.labelstudio_tasks import Labels
from framesift.defaults import OUTBOX, OUTBOX_MAX_BYTES
from framesift.errors import TargetError
from framesift.paths import check_dataset_name
from framesift.plugins import PluginGroup
from framesift.redaction import redact
from framesift.stats import OutboxStats

FOLDER = "folder"  # the scheme of a text that names no registered scheme: a dataset folder
ENTRY_POINTS = "framesift.targets"  # the entry point group of targets from other packages
SCHEME_NAME = re.compile(r"[a-z][a-z0-9+.-]+")  # two characters at least: `C:\data` stays a folder
Key = TypeVar("Key")


class Target(Protocol):
    name: str  # the dataset name that namespaces the limits

    def batch_count(self, batch: str) -> int:
        """How many datapoints the batch held before this process started writing to it."""
        ...

    def register(self, datapoint: Datapoint) -> dict[str, Any]: ...

    def check(self) -> None:
        """Raise `WorkerFailed` when a thread of the target (a remote one's outbox sender) has died."""
        ...

    def stats(self) -> OutboxStats | None:
        """A remote target's outbox; None for a local dataset."""
        ...

    def close(self, timeout: float = 10.0) -> None:
        """Finish (idempotent); a remote target first delivers what is pending for up to `timeout` seconds."""
        ...


@dataclass(frozen=True)
class Opening:
    """What a run opens a target with. `outbox`: a remote target's own outbox folder (`<--outbox>/<scheme>-<name>`);
    `labels`: what the model labels (the task and classes, to set up a labeling project); `exclusive`: this process
    alone spends a local dataset's budgets (a run without Redis); `shared`: other processes write it too (a fleet)."""

    outbox: Path
    api_key: str | None = None
    outbox_max_bytes: int = OUTBOX_MAX_BYTES
    labels: Labels | None = None
    exclusive: bool = False
    shared: bool = False


Opener = Callable[[str, Opening], Target]
AnyOpener = TypeVar("AnyOpener", bound=Opener)  # a function, or a target's class itself


@dataclass(frozen=True)
class TargetScheme:
    """A registered scheme: `opener(name, opening)` opens `<scheme>:<name>`; `form` is how its text reads (in
    messages); `remote`: delivered through an outbox (with a workflow, `<scheme>:` alone sends each dataset to its
    own); `configuration_key`: a configuration's `target_dataset_api_key` is its key (Roboflow's format says so)."""

    name: str
    opener: Opener
    form: str
    remote: bool
    configuration_key: bool


_SCHEMES: dict[str, TargetScheme] = {}
_registering = threading.Lock()


def _import_built_in() -> None:
    """Import every module of this package: each built-in target registers its scheme as it is imported."""
    package = __name__.rpartition(".")[0]
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{module.name}")


_PLUGINS = PluginGroup(ENTRY_POINTS, "target", TargetError, first=_import_built_in)


def register_target(scheme: str, *, form: str | None = None, remote: bool = True,
                    configuration_key: bool = False) -> Callable[[AnyOpener], AnyOpener]:
    """A decorator registering `opener(name, opening) -> Target` (a function, or the target's class) as what opens
    `--target <scheme>:<name>`; see `TargetScheme` for the rest. A scheme is lowercase (letters, digits, `+`, `.`,
    `-`), two characters at least."""
    if not SCHEME_NAME.fullmatch(scheme):
        raise ValueError(f"a target scheme is a lowercase letter then letters, digits, +, . or - (two characters at "
                         f"least), not {scheme!r}")

    def register(opener: AnyOpener) -> AnyOpener:
        with _registering:
            known = _SCHEMES.get(scheme)
            if known is not None and known.opener is not opener:
                raise ValueError(f"the target scheme {scheme!r} is registered already, by {known.opener.__module__}")
            _SCHEMES[scheme] = TargetScheme(scheme, opener, form or f"{scheme}:<name>", remote, configuration_key)
        return opener

    return register


def target_schemes() -> dict[str, TargetScheme]:
    """Every registered scheme by name: this package's modules' and the `framesift.targets` entry points' are
    loaded the first time."""
    _PLUGINS.load()
    return _SCHEMES


def remote_forms() -> str:
    """The remote schemes as a run of workflows gives them: `labelstudio: or roboflow:`."""
    return _either([f"{name}:" for name, scheme in sorted(target_schemes().items()) if scheme.remote])


def _either(words: list[str]) -> str:
    """`a, b or c`."""
    return " or ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


@dataclass(frozen=True)
class TargetSpec:
    """A target's text, parsed: `scheme` (`folder` for a dataset folder) and `name` (after `<scheme>:`, or the
    folder's path). `str()` shows it without secrets."""

    scheme: str
    name: str

    def __post_init__(self) -> None:
        if self.scheme not in target_schemes():
            raise TargetError(f"there is no target scheme {self.scheme!r} (there are: "
                              f"{', '.join(sorted(target_schemes()))})")

    @classmethod
    def parse(cls, text: str) -> TargetSpec:
        """`<scheme>:<name>` for a registered scheme (the name may be empty: `roboflow:`, a workflow's), else a
        folder's path; `TargetError` for an empty text."""
        if not text:
            forms = [scheme.form for name, scheme in sorted(target_schemes().items()) if name != FOLDER]
            raise TargetError(f"the target is empty: give {_either(['a folder', *forms])}")
        scheme, colon, name = text.partition(":")
        if colon and scheme != FOLDER and scheme in target_schemes():
            return cls(scheme, name)
        return cls(FOLDER, text)

    @property
    def kind(self) -> TargetScheme:
        return target_schemes()[self.scheme]

    @property
    def remote(self) -> bool:
        return self.kind.remote

    @property
    def text(self) -> str:
        """As given: `roboflow:people`, `datasets/people`."""
        return self.name if self.scheme == FOLDER else f"{self.scheme}:{self.name}"

    @property
    def dataset(self) -> str:
        """The dataset it names (its limits and its configuration are keyed by it): the name after the scheme, or
        the folder's base name."""
        return Path(self.name).resolve().name if self.scheme == FOLDER else self.name

    def __str__(self) -> str:
        return redact(self.text)

    def outbox(self, root: str | os.PathLike[str]) -> Path:
        """A remote target's outbox folder: `root/<scheme>-<name>`, the name reduced to characters safe in a folder
        name."""
        return Path(root) / f"{self.scheme}-{re.sub(r'[^A-Za-z0-9._-]+', '_', self.name)}"

    def for_dataset(self, dataset: str) -> TargetSpec:
        """Where a collector of `dataset` registers, this being the `--target` of a run of workflows (or of
        `serve`): a folder of datasets holds one folder per dataset; a remote scheme alone (`roboflow:`, or
        `roboflow`) sends each dataset to its own. `TargetError` for a remote target that names one dataset, or a
        `dataset` that is no dataset name."""
        check_dataset_name(dataset, "target dataset")
        if self.remote:
            if self.name:
                raise TargetError(f"with a workflow, --target is a folder of datasets, {self.scheme}: or "
                                  f"{self.scheme} (each collector's target_dataset names its dataset), not "
                                  f"{self.text!r}")
            return TargetSpec(self.scheme, dataset)
        bare = target_schemes().get(self.name)
        if bare is not None and bare.remote:
            return TargetSpec(self.name, dataset)
        return TargetSpec(FOLDER, str(Path(self.name) / dataset))

    def configured_key(self, key: Key | None) -> Key | None:
        """A configuration's `target_dataset_api_key` when it is this target's key (Roboflow's), else None."""
        return key if self.kind.configuration_key else None

    def open(self, *, api_key: str | None = None, outbox: str | os.PathLike[str] = OUTBOX,
             outbox_max_bytes: int = OUTBOX_MAX_BYTES, labels: Labels | None = None, exclusive: bool = False,
             shared: bool = False) -> Target:
        """The target, opened (see `Opening`); `outbox` is the folder of remote targets' outboxes."""
        return self.kind.opener(self.name, Opening(self.outbox(outbox), api_key, outbox_max_bytes, labels, exclusive,
                                                   shared))
