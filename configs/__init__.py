"""Example active-learning configurations, shipped with the package as `framesift.configs`."""

from importlib.resources import as_file, files
from pathlib import Path


def path(name: str) -> Path:
    """The path of a bundled configuration, for example `path("demo.yaml")`."""
    with as_file(files(__name__) / name) as resolved:
        return Path(resolved)
