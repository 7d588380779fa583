"""Builds the hot modules of the wire codec and of the filter chain as C extensions with mypyc.

The modules stay plain typed Python: without a C compiler, or with ``MOTANMESH_PURE_PYTHON=1``
in the environment, they install and run interpreted, with the same behaviour. The lists of
compiled modules are ``motanmesh.wire.COMPILED_MODULES`` and
``motanmesh.filters.COMPILED_MODULES``; ``compiled_modules()`` of each package tells at run
time which of them are compiled.
"""

from __future__ import annotations

import os
from pathlib import Path

from mypyc.build import mypycify
from setuptools import Extension, setup

#: keep in step with motanmesh.wire.COMPILED_MODULES
COMPILED = ["frame", "decoder", "passthrough"]
#: paths under src/motanmesh/, without ".py"; keep in step with motanmesh.filters.COMPILED_MODULES
COMPILED_CALL_PATH = [
    "filters/base",
    "filters/chain",
    "filters/metrics",
    "filters/access_log",
    "filters/access_log_writer",
    "filters/server",
    "filters/direct",
    "telemetry/store",
    "graph",
]


def extensions() -> list[Extension]:
    if os.environ.get("MOTANMESH_PURE_PYTHON", "").lower() in ("1", "true", "yes"):
        # an editable install imports from src/: drop extensions left by an earlier build
        for path in [f"wire/{name}" for name in COMPILED] + COMPILED_CALL_PATH:
            folder, _, name = f"src/motanmesh/{path}".rpartition("/")
            for leftover in Path(folder).glob(f"{name}.*.so"):
                leftover.unlink()
        return []
    sources = [f"src/motanmesh/wire/{name}.py" for name in COMPILED]
    sources += [f"src/motanmesh/{path}.py" for path in COMPILED_CALL_PATH]
    exts = mypycify(sources, opt_level="3")
    for ext in exts:
        ext.optional = True  # no C compiler: install the interpreted modules instead
    return exts


setup(ext_modules=extensions())
