"""The library API: one flat, typed namespace that matches what type checkers read, and stays light to import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import framesift

PACKAGE = Path(framesift.__file__).parent


def test_every_public_name_imports_and_is_what_type_checkers_see():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    [block] = [node for node in tree.body if isinstance(node, ast.If)]  # `if TYPE_CHECKING:`
    typed = {alias.name: node.module for node in block.body for alias in node.names}
    assert {name: framesift._MODULE_OF[name] for name in framesift.__all__} == typed
    for name in framesift.__all__:
        assert getattr(framesift, name) is getattr(sys.modules[framesift._MODULE_OF[name]], name), name
    assert callable(framesift.run) and framesift.run.__module__ == "framesift.runner"  # the function, not a module
    assert (PACKAGE / "py.typed").is_file()


def test_errors_derive_from_one_base_and_the_builtin_a_caller_expects():
    for name in ("ConfigError", "ModelError", "SourceError", "TargetError", "LimitStoreError", "OutboxInUse"):
        error = getattr(framesift, name)
        assert issubclass(error, framesift.InputError) and issubclass(error, ValueError), name
        assert error.exit_code == 2
    for name in ("WorkerFailed", "CollectionFailed", "OutboxFull"):
        error = getattr(framesift, name)
        assert issubclass(error, framesift.FramesiftError) and issubclass(error, RuntimeError), name
        assert error.exit_code == 1


def test_importing_framesift_imports_nothing_heavy():
    code = ("import sys, framesift; framesift.ActiveLearningConfig; "
            "print(sorted(m for m in ('onnxruntime', 'av', 'cv2', 'supervision', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
