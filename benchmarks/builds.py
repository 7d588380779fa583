"""The interpreted build of motanmesh, beside the installed one, for comparisons in one run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import motanmesh


def interpreted_env(work: Path) -> dict[str, str]:
    """An environment whose ``motanmesh`` is a copy of the installed sources, in ``work``,
    without their compiled extensions."""
    shutil.copytree(Path(motanmesh.__file__).parent, work / "motanmesh")
    for ext in work.rglob("*.so"):
        ext.unlink()
    return {**os.environ, "PYTHONPATH": str(work)}
