"""Filter names → filter classes.

Built-in filters are imported on first use (an agent pays nothing for filters it does not
configure). Code registers its own with :func:`register_filter`; installed packages declare
theirs as entry points of the group ``motanmesh.filters``, each naming a :class:`Filter`
subclass, so ``pip install`` of a plugin is enough::

    [project.entry-points."motanmesh.filters"]
    myFilter = "my_package.filters:MyFilter"
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Final

from motanmesh.filters.base import Filter

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["ENTRY_POINT_GROUP", "filter_class", "filter_names", "register_filter"]

log = logging.getLogger("motanmesh.filters")

ENTRY_POINT_GROUP: Final = "motanmesh.filters"

#: built-in filters: name → "module:Class", imported when first named
BUILTIN_FILTERS: dict[str, str] = {
    "accessLog": "motanmesh.filters.access_log:AccessLogFilter",
    "clusterAccessLog": "motanmesh.filters.access_log:ClusterAccessLogFilter",
    "metrics": "motanmesh.filters.metrics:MetricsFilter",
    "clusterMetrics": "motanmesh.filters.metrics:ClusterMetricsFilter",
    "rateLimit": "motanmesh.filters.rate_limit:RateLimitFilter",
    "circuitBreaker": "motanmesh.filters.circuit_breaker:CircuitBreakerFilter",
    "clusterCircuitBreaker": "motanmesh.filters.circuit_breaker:ClusterCircuitBreakerFilter",
    "trace": "motanmesh.filters.trace:TraceFilter",
    "failfast": "motanmesh.filters.failfast:FailfastFilter",
    "auth": "motanmesh.filters.auth:AuthFilter",
}

_classes: dict[str, type[Filter]] = {}
_entry_points: dict[str, EntryPoint] | None = None
_failed: set[str] = set()


def register_filter(cls: type[Filter], name: str = "") -> None:
    """Make ``cls`` available as ``name`` (default: ``cls.name``)."""
    key = name or cls.name
    if not key:
        raise ValueError(f"{cls.__qualname__} has no name")
    if not (isinstance(cls, type) and issubclass(cls, Filter)):
        raise TypeError(f"{cls!r} is not a Filter subclass")
    _classes[key] = cls


def _plugins() -> dict[str, EntryPoint]:
    global _entry_points
    if _entry_points is None:
        from importlib.metadata import entry_points  # noqa: PLC0415 (only when a name is unknown)

        _entry_points = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return _entry_points


def _load(name: str, spec: str) -> type[Filter] | None:
    module_name, _, attr = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except Exception as e:
        log.error("filter %s cannot be loaded from %s: %s", name, spec, e)
        return None
    if not (isinstance(cls, type) and issubclass(cls, Filter)):
        log.error("filter %s: %s is not a Filter subclass", name, spec)
        return None
    return cls


def filter_class(name: str) -> type[Filter] | None:
    """The class registered as ``name``, a built-in, or an installed plugin; ``None`` when
    there is none (or it fails to load: logged once)."""
    cls = _classes.get(name)
    if cls is not None or name in _failed:
        return cls
    spec = BUILTIN_FILTERS.get(name)
    if spec is None:
        ep = _plugins().get(name)
        if ep is not None:
            spec = ep.value
    if spec is not None:
        cls = _load(name, spec)
    if cls is None:
        _failed.add(name)
        return None
    _classes[name] = cls
    return cls


def filter_names() -> list[str]:
    """Every name that can be configured: registered, built-in and installed."""
    return sorted({*_classes, *BUILTIN_FILTERS, *_plugins()})
