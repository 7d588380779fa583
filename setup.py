"""Builds the wire codec's hot modules as C extensions with mypyc.

The modules stay plain typed Python: without a C compiler, or with ``MOTANMESH_PURE_PYTHON=1``
in the environment, they install and run interpreted, with the same behaviour. The list of
compiled modules is ``motanmesh.wire.COMPILED_MODULES``; ``motanmesh.wire.compiled_modules()``
tells at run time which of them are compiled.
"""

from __future__ import annotations

import os
from pathlib import Path

from mypyc.build import mypycify
from setuptools import Extension, setup

#: keep in step with motanmesh.wire.COMPILED_MODULES
COMPILED = ["frame", "decoder", "passthrough"]


def extensions() -> list[Extension]:
    if os.environ.get("MOTANMESH_PURE_PYTHON", "").lower() in ("1", "true", "yes"):
        # an editable install imports from src/: drop extensions left by an earlier build
        for name in COMPILED:
            for leftover in Path("src/motanmesh/wire").glob(f"{name}.*.so"):
                leftover.unlink()
        return []
    exts = mypycify([f"src/motanmesh/wire/{name}.py" for name in COMPILED], opt_level="3")
    for ext in exts:
        ext.optional = True  # no C compiler: install the interpreted modules instead
    return exts


setup(ext_modules=extensions())
