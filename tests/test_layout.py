"""The package's shape (issue 25): its import graph has no cycle, and each wing imports only the wings below it.

A frame's way reads from the folders: `stream/` decodes, `workflows/` runs models, `collectors/` samples
(`sampling/`), decides budgets (`budgets/`), registers and delivers (`targets/`), `pipeline/` wires them, and
`observe/` shows a run. The bottom modules (`framesift/*.py`) are what every wing shares. Every import counts:
at the top of a module, inside a function, or for type checkers only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "framesift"

BOTTOM = frozenset({"errors", "version", "redaction", "resources", "workers", "signals", "stats", "predictions",
                    "annotations", "documents", "paths", "durable", "redis_url", "http_answers", "frames", "plugins",
                    "configs", "defaults", "options"})
COLLECTING = frozenset({"collectors.config", "collectors.sampling", "collectors.budgets", "collectors.targets",
                        "collectors"})
# each wing and the wings it may import besides the bottom (and itself): a wing not named here is refused
BELOW: dict[str, frozenset[str]] = {
    "dataset": frozenset(),
    "models": frozenset(),
    "stream": frozenset({"dataset"}),
    "collectors.config": frozenset({"collectors.sampling"}),  # a configuration's strategies are the registered ones
    "collectors.sampling": frozenset(),
    "collectors.budgets": frozenset(),
    "collectors.targets": frozenset({"dataset"}),
    "collectors": COLLECTING | {"dataset"},
    "workflows": COLLECTING | {"dataset", "models"},
    "pipeline": COLLECTING | {"dataset", "models", "stream", "workflows"},
    "observe": COLLECTING | {"dataset", "models", "stream", "workflows", "pipeline"},
    "report": COLLECTING | {"dataset"},
    "serve": COLLECTING | {"dataset", "models", "workflows", "observe", "serve_options"},
    "run_options": frozenset({"models"}),
    "serve_options": frozenset({"models", "run_options"}),  # run's help of --models
    "runner": COLLECTING | {"dataset", "models", "stream", "workflows", "pipeline", "observe", "run_options"},
    "demo": frozenset({"runner", "report"}),
    "cli": COLLECTING | {"dataset", "models", "stream", "workflows", "pipeline", "observe", "report", "serve",
                         "run_options", "serve_options", "runner", "demo"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(path: Path) -> set[str]:
    """The framesift modules (or packages) a module imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "framesift":
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "framesift")
    return found


GRAPH = {name: imported(path) - {name} for name, path in MODULES.items()}


def wing(module: str) -> str:
    """`framesift.collectors.sampling.strategies` -> `collectors.sampling`; `framesift.frames` -> `frames`."""
    parts = module.split(".")[1:]
    if not parts:
        return "framesift"
    if parts[0] == "collectors" and len(parts) > 2 and parts[1] in ("config", "sampling", "budgets", "targets"):
        return f"collectors.{parts[1]}"
    return parts[0]


def test_the_import_graph_has_no_cycle() -> None:
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(module):] + (module,)))
        if module in done:
            return
        for target in sorted(GRAPH.get(module, ())):
            visit(target, path + (module,))
        done.add(module)

    for module in sorted(GRAPH):
        visit(module, ())


def test_every_wing_imports_only_what_is_below_it() -> None:
    upward = []
    for module, targets in sorted(GRAPH.items()):
        source = wing(module)
        if source == "framesift":
            continue  # the public facade: it names everything, imported on first use
        allowed = (frozenset() if source in BOTTOM else BELOW[source]) | BOTTOM | {source}
        upward += [f"{module} imports {target}" for target in sorted(targets) if wing(target) not in allowed]
    assert not upward, "arrows that point up:\n" + "\n".join(upward)


def test_every_wing_has_a_place() -> None:
    assert {wing(module) for module in MODULES} - {"framesift"} <= BOTTOM | set(BELOW)


def test_the_checks_see_an_arrow_up() -> None:
    """The rules refuse what they exist to refuse: workflows reading the stream's sources, the stream a target."""
    assert wing("framesift.stream.sources") not in BELOW["workflows"] | BOTTOM
    assert "framesift.collectors.targets" not in {t for t in GRAPH["framesift.stream.archives"]}
    assert wing("framesift.collectors.targets.local") not in BELOW["stream"] | BOTTOM


def test_the_local_target_serves_only_the_collectors() -> None:
    """The durable-file helpers are `framesift.durable`; a dataset folder's reading is `framesift.dataset`."""
    users = {module for module, targets in GRAPH.items() if "framesift.collectors.targets.local" in targets}
    assert users and all(wing(user) in COLLECTING | {"framesift"} for user in users), users


def test_the_wheel_lists_every_package() -> None:
    """pyproject.toml names each package the wheel holds: a new folder left out would be missing once installed."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(folder.relative_to(PACKAGE.parent).parts) for folder in PACKAGE.rglob("*")
               if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py"))}
    assert folders <= listed, f"missing from pyproject.toml's packages: {sorted(folders - listed)}"
