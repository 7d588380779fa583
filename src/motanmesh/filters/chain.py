"""Which filters a refer or service gets, and chains built from them.

Names are the union, in this order, of the URL's ``filter`` list, the agent's
``defaultFilter`` minus the URL's ``disableDefaultFilter``, its ``globalFilter`` minus
``disableGlobalFilter``, and the comma list in the environment variable ``MESH_FILTERS``.
Unknown names are warned about once each and skipped, as the Go agent does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from motanmesh.filters.base import Call, Filter, FilterContext, Handler
from motanmesh.filters.registry import filter_class
from motanmesh.url import URL

__all__ = ["MESH_FILTERS_ENV", "FilterError", "FilterSet", "build_chain", "resolve_filters"]

log = logging.getLogger("motanmesh.filters")

MESH_FILTERS_ENV: Final = "MESH_FILTERS"

_warned: set[str] = set()


class FilterError(Exception):
    """A filter raised instead of handing the call on or ending it."""


@dataclass
class FilterSet:
    """The filters of one refer or service, by kind, outermost first."""

    cluster: list[Filter] = field(default_factory=list)
    endpoint: list[Filter] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.cluster or self.endpoint)

    def close(self) -> None:
        for f in [*self.cluster, *self.endpoint]:
            try:
                f.close()
            except Exception:
                log.exception("closing filter %s failed", f.name)

    def info(self) -> list[dict[str, Any]]:
        return [f.info() for f in [*self.cluster, *self.endpoint]]


def _names(items: Iterable[str]) -> list[str]:
    return [n.strip() for n in items if n.strip()]


def configured_names(url: URL, context: FilterContext) -> list[str]:
    """The filter names that apply to ``url``, each once, in configuration order."""
    disabled_default = set(url.get_list("disableDefaultFilter"))
    disabled_global = set(url.get_list("disableGlobalFilter"))
    names = [
        *_names(url.filters),
        *(n for n in _names(context.default_filter) if n not in disabled_default),
        *(n for n in _names(context.global_filter) if n not in disabled_global),
        *_names(os.environ.get(MESH_FILTERS_ENV, "").split(",")),
    ]
    return list(dict.fromkeys(names))


def resolve_filters(url: URL, context: FilterContext) -> FilterSet:
    """Build the filters of ``url`` (a refer or a service); empty when it has none."""
    found = FilterSet()
    for name in configured_names(url, context):
        cls = filter_class(name)
        if cls is None:
            if name not in _warned:
                _warned.add(name)
                log.warning("unknown filter %r skipped", name)
            continue
        try:
            instance = cls(url, context)
        except Exception as e:
            log.error("filter %s for %s cannot be built: %s", name, url.path, e)
            continue
        (found.cluster if cls.kind == "cluster" else found.endpoint).append(instance)
    found.cluster.sort(key=_index)
    found.endpoint.sort(key=_index)
    return found


def _index(f: Filter) -> int:
    return f.index


def build_chain(filters: Sequence[Filter], terminal: Handler) -> Handler:
    """One handler that runs ``filters`` (outermost first) and then ``terminal``. A filter
    that raises ends its call with a :class:`FilterError` instead of losing it."""
    handler = terminal
    for f in reversed(filters):
        handler = _link(f, handler)
    return handler


def _link(f: Filter, proceed: Handler) -> Handler:
    invoke = f.invoke
    name = f.name

    def handler(call: Call) -> None:
        try:
            invoke(call, proceed)
        except Exception as e:
            if not call.done():
                log.exception("filter %s failed on a call to %s", name, call.service)
                call.complete(None, FilterError(f"filter {name} failed: {e}"))

    return handler
