"""The mypyc build of the hot wire modules: what is compiled is what ``setup.py`` lists, a
compiled module is never older than its source, and a test session asked to run one build
(``MOTANMESH_EXPECT_CODEC=compiled`` or ``interpreted``) really runs it."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import motanmesh.wire
from motanmesh.wire import COMPILED_MODULES, compiled_modules

ROOT = Path(__file__).resolve().parents[2]


def test_setup_compiles_the_listed_modules() -> None:
    tree = ast.parse((ROOT / "setup.py").read_text())
    listed = next(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets)
    )
    assert ast.literal_eval(listed) == list(COMPILED_MODULES)


def test_compiled_modules_are_not_older_than_their_source() -> None:
    package = Path(motanmesh.wire.__file__).parent
    for name in compiled_modules():
        binary = Path(sys.modules[f"motanmesh.wire.{name}"].__file__ or "")
        source = package / f"{name}.py"
        assert binary.stat().st_mtime >= source.stat().st_mtime, (
            f"{binary.name} is older than {source.name}: rebuild with scripts/setup"
        )


def test_the_expected_build_runs() -> None:
    found = compiled_modules()
    expected = os.environ.get("MOTANMESH_EXPECT_CODEC", "")
    if expected == "compiled":
        assert found == list(COMPILED_MODULES)
    elif expected == "interpreted":
        assert found == []
    else:  # either build, but never a mix of the two
        assert found in ([], list(COMPILED_MODULES))
