"""The ``metrics`` (endpoint, index 2) and ``clusterMetrics`` (cluster, index 5) filters.

Per call they count, under (role, application, group, service, method) — group is the
request's ``M_g`` (on the client side the group the application asked for), with the
suffix ``.cluster`` for ``clusterMetrics`` — the call, biz and other errors, slow calls
(over 200 ms), the Go latency buckets and the latency, into the agent's
:class:`~motanmesh.telemetry.store.MetricStore`. With the switcher ``metricsReqApp`` on,
client-side calls are also counted under the caller's ``M_s`` when it differs from the
application, as the Go agent does.

Cheap: the request body is never decoded; the series of a (group, service, method) is
resolved once and kept in a dict.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Final

from motanmesh.filters.base import (
    ROLE_SERVER,
    Call,
    Filter,
    FilterContext,
    FilterKind,
    Handler,
    error_kind,
)
from motanmesh.telemetry.store import METRICS_SERVICE, CallStats, MetricStore
from motanmesh.url import URL
from motanmesh.wire.frame import M_GROUP, M_METHOD, M_PATH, M_SOURCE, Frame

__all__ = ["CLUSTER_SUFFIX", "REQ_APP_SWITCHER", "ClusterMetricsFilter", "MetricsFilter"]

REQ_APP_SWITCHER: Final = "metricsReqApp"
CLUSTER_SUFFIX: Final = ".cluster"


class MetricsFilter(Filter):
    """Counts and times every call of one refer (each endpoint attempt) or service."""

    name = "metrics"
    kind: ClassVar[FilterKind] = "endpoint"
    index = 2
    group_suffix: str = ""

    def __init__(self, url: URL, context: FilterContext) -> None:
        super().__init__(url, context)
        self.store: MetricStore = context.get_service(METRICS_SERVICE, MetricStore)
        self.application = url.application or context.application
        self._default_group = url.group
        _watch_req_app(self.store, context)
        #: (group, service, method) → series, and with the caller's application
        self._series: dict[tuple[str, str, str], CallStats] = {}
        self._req_series: dict[tuple[str, str, str, str], CallStats] = {}
        self._done = self._complete

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        call.on_complete(self._done)
        proceed(call)

    def _complete(self, call: Call, response: Frame | None, exc: BaseException | None) -> None:
        self.record(
            call.role, call.request.metadata, response, exc, time.perf_counter() - call.start
        )

    def record(
        self,
        role: str,
        metadata: dict[str, str],
        response: Frame | None,
        exc: BaseException | None,
        seconds: float,
    ) -> None:
        """Count one call of ``role`` (request ``metadata``) that took ``seconds`` and ended
        with ``response`` or ``exc`` (the chain's callback, and the direct path of
        :mod:`motanmesh.filters.direct`)."""
        key = (
            metadata.get(M_GROUP) or self._default_group,
            metadata.get(M_PATH, ""),
            metadata.get(M_METHOD, ""),
        )
        stats = self._series.get(key)
        if stats is None:
            stats = self.store.stats(
                role, self.application, key[0], self.group_suffix, key[1], key[2]
            )
            if len(self._series) < self.store.max_series:
                self._series[key] = stats
        # a plain success is the common case: no need to look for M_e
        error = None if response is not None and not response.status else error_kind(response, exc)
        stats.record(seconds, error)
        if self.store.req_app and role != ROLE_SERVER:
            caller = metadata.get(M_SOURCE, "")
            if caller != self.application:
                self._by_caller(role, caller, key).record(seconds, error)

    def _by_caller(self, role: str, caller: str, key: tuple[str, str, str]) -> CallStats:
        full = (caller, *key)
        stats = self._req_series.get(full)
        if stats is None:
            stats = self.store.stats(role, caller, key[0], self.group_suffix, key[1], key[2])
            if len(self._req_series) < self.store.max_series:
                self._req_series[full] = stats
        return stats

    def info(self) -> dict[str, Any]:
        return {**super().info(), "series": len(self._series) + len(self._req_series)}


def _watch_req_app(store: MetricStore, context: FilterContext) -> None:
    """Keep ``store.req_app`` equal to the switcher (registered, off, when missing)."""
    if store.req_app_watched:
        return
    switchers = context.switchers
    if not switchers.is_registered(REQ_APP_SWITCHER):
        switchers.register(REQ_APP_SWITCHER, False)
    store.req_app = switchers.is_open(REQ_APP_SWITCHER)
    store.req_app_watched = True

    def changed(name: str, value: bool) -> None:
        store.req_app = value

    switchers.watch(REQ_APP_SWITCHER, changed)


class ClusterMetricsFilter(MetricsFilter):
    """:class:`MetricsFilter` around the whole HA call (retries included), group suffix
    ``.cluster``."""

    name = "clusterMetrics"
    kind = "cluster"
    index = 5
    group_suffix = CLUSTER_SUFFIX
