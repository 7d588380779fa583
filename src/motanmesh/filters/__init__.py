"""Filters around calls: the chain model, the registry of names, and the built-in filters.

See :mod:`motanmesh.filters.base` for the interface and ``docs/filters.md`` for the
configuration.

The modules of the call path (:data:`COMPILED_MODULES`: the filter chain, the built-in
``metrics`` and ``accessLog`` filters and their path without a chain, and the dependency
graph) are compiled to C extensions
by mypyc when the package is installed with a C compiler at hand (``setup.py``), as the wire
codec's are; otherwise they run interpreted, with the same behaviour. :class:`Filter` and
:class:`Call` stay subclassable in Python.
"""

import importlib
from typing import Final

from motanmesh.filters.base import (
    ERROR_BIZ,
    ERROR_OTHER,
    ROLE_CLIENT,
    ROLE_SERVER,
    Call,
    Completion,
    Filter,
    FilterContext,
    FilterKind,
    Finish,
    Handler,
    error_kind,
)
from motanmesh.filters.chain import FilterError, FilterSet, build_chain, resolve_filters
from motanmesh.filters.registry import ENTRY_POINT_GROUP, filter_class, register_filter

#: the modules of the call path ``setup.py`` compiles with mypyc (besides the wire codec's)
COMPILED_MODULES: Final = (
    "motanmesh.filters.base",
    "motanmesh.filters.chain",
    "motanmesh.filters.metrics",
    "motanmesh.filters.access_log",
    "motanmesh.filters.access_log_writer",
    "motanmesh.filters.server",
    "motanmesh.filters.direct",
    "motanmesh.telemetry.store",
    "motanmesh.graph",
)


def compiled_modules() -> list[str]:
    """Which of :data:`COMPILED_MODULES` run as compiled extensions in this process."""
    out = []
    for name in COMPILED_MODULES:
        module = importlib.import_module(name)
        path = getattr(module, "__file__", "") or ""
        if not path.endswith((".py", ".pyc")):
            out.append(name)
    return out


__all__ = [
    "COMPILED_MODULES",
    "ENTRY_POINT_GROUP",
    "ERROR_BIZ",
    "ERROR_OTHER",
    "ROLE_CLIENT",
    "ROLE_SERVER",
    "Call",
    "Completion",
    "Filter",
    "FilterContext",
    "FilterError",
    "FilterKind",
    "FilterSet",
    "Finish",
    "Handler",
    "build_chain",
    "compiled_modules",
    "error_kind",
    "filter_class",
    "register_filter",
    "resolve_filters",
]
