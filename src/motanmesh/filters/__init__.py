"""Filters around calls: the chain model, the registry of names, and the built-in filters.

See :mod:`motanmesh.filters.base` for the interface and ``docs/filters.md`` for the
configuration.
"""

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

__all__ = [
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
    "error_kind",
    "filter_class",
    "register_filter",
    "resolve_filters",
]
