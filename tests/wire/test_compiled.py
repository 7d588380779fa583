"""The mypyc build of the hot wire and filter modules: what is compiled is what ``setup.py``
lists, a compiled module is never older than its source, and a test session asked to run one
build (``MOTANMESH_EXPECT_CODEC=compiled`` or ``interpreted``) really runs it."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import motanmesh.wire
from motanmesh.filters import COMPILED_MODULES as FILTER_MODULES
from motanmesh.filters import compiled_modules as compiled_filter_modules
from motanmesh.wire import COMPILED_MODULES, compiled_modules

ROOT = Path(__file__).resolve().parents[2]
#: where the imported package lives (the sources, or a copy without extensions)
SRC = Path(motanmesh.wire.__file__ or "").parents[2]


def _setup_list(name: str) -> object:
    tree = ast.parse((ROOT / "setup.py").read_text())
    listed = next(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    )
    return ast.literal_eval(listed)


def test_setup_compiles_the_listed_modules() -> None:
    assert _setup_list("COMPILED") == list(COMPILED_MODULES)
    paths = _setup_list("COMPILED_CALL_PATH")
    assert isinstance(paths, list)
    assert ["motanmesh." + p.replace("/", ".") for p in paths] == list(FILTER_MODULES)


def test_compiled_modules_are_not_older_than_their_source() -> None:
    names = [f"motanmesh.wire.{name}" for name in compiled_modules()]
    for name in names + compiled_filter_modules():
        binary = Path(sys.modules[name].__file__ or "")
        source = SRC.joinpath(*name.split(".")).with_suffix(".py")
        assert binary.stat().st_mtime >= source.stat().st_mtime, (
            f"{binary.name} is older than {source.name}: rebuild with scripts/setup"
        )


def test_the_expected_build_runs() -> None:
    found = compiled_modules()
    filters = compiled_filter_modules()
    expected = os.environ.get("MOTANMESH_EXPECT_CODEC", "")
    if expected == "compiled":
        assert found == list(COMPILED_MODULES)
        assert filters == list(FILTER_MODULES)
    elif expected == "interpreted":
        assert found == []
        assert filters == []
    else:  # either build, but never a mix of the two
        assert (found, filters) in (([], []), (list(COMPILED_MODULES), list(FILTER_MODULES)))
