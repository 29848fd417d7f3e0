"""Example active-learning configurations, shipped with the package as `framesift.configs`: usable by name after
`pip install` (`--al-config realistic`, `framesift config example realistic > my.yaml`).

Example:
    >>> "realistic" in names() and named("realistic").name
    'realistic.yaml'
"""

from importlib.resources import as_file, files
from pathlib import Path

SUFFIXES = (".yaml", ".json")


def path(name: str) -> Path:
    """The path of a bundled configuration, for example `path("demo.yaml")`."""
    with as_file(files(__name__) / name) as resolved:
        return Path(resolved)


def names() -> list[str]:
    """The bundled configurations' names (their file names without the suffix), sorted."""
    return sorted(item.name.rsplit(".", 1)[0] for item in files(__name__).iterdir()
                  if item.name.endswith(SUFFIXES))


def named(name: str) -> Path | None:
    """The bundled configuration called `name` (`realistic`, or `realistic.yaml`), or None when there is none."""
    for suffix in ("", *SUFFIXES):
        item = files(__name__) / f"{name}{suffix}"
        if "/" not in name and item.name.endswith(SUFFIXES) and item.is_file():
            return path(item.name)
    return None
