"""The built-in watchers without a chain: ``metrics`` and ``accessLog`` (and ``clusterMetrics``
and ``clusterAccessLog``) recorded straight from a call's answer.

These filters only watch: they hand every call on and look at its end. When they are all
the filters of one kind of a refer or a service (exactly these classes, not subclasses), a
call needs nothing of the chain: no :class:`~motanmesh.filters.base.Call`, no links, no list
of completion callbacks. The call is then a small reply (:class:`WatchedCall` on the client
side, :class:`WatchedServerCall` around a provider) that the endpoint, the HA strategy or the
provider completes; it records the metrics and queues the access-log entry through the same
methods the filters' completion callbacks use (:meth:`MetricsFilter.record`,
:meth:`AccessLogFilter.queue`), so the metric keys, the counts and the lines are the chain's,
and then hands the answer on. With any other filter in the list, the chain runs as before.

Compiled by mypyc with the rest of the call path (``motanmesh.filters.COMPILED_MODULES``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from time import perf_counter as _now
from typing import Any

from motanmesh.filters.access_log import AccessLogFilter, ClusterAccessLogFilter
from motanmesh.filters.base import ROLE_CLIENT, ROLE_SERVER, Filter, settle
from motanmesh.filters.metrics import ClusterMetricsFilter, MetricsFilter
from motanmesh.filters.server import Encoder
from motanmesh.transport.endpoint import Reply
from motanmesh.wire.frame import M_PATH, Frame

__all__ = ["WatchedCall", "WatchedEntry", "WatchedServerCall", "Watchers", "direct_watchers"]

log = logging.getLogger("motanmesh.filters")


class Watchers:
    """The ``metrics`` and ``accessLog`` filters (either may be missing) of one refer's or
    service's filters of one kind, recorded without a chain."""

    def __init__(self, metrics: MetricsFilter | None, access: AccessLogFilter | None) -> None:
        self.metrics = metrics
        self.access = access

    def logging(self) -> bool:
        """Whether a call starting now is logged (the access log may be switched off)."""
        access = self.access
        return access is not None and access.writer.enabled

    def record(
        self,
        role: str,
        peer: str,
        request: Frame,
        response: Frame | None,
        exc: BaseException | None,
        start: float,
        logged: bool,
    ) -> None:
        """One call started at ``start`` ended with ``response`` (with its body) or ``exc``:
        what the filters' completion callbacks do, innermost first, each failure logged
        alone."""
        now = _now()
        metrics = self.metrics
        if metrics is not None:
            try:
                metrics.record(role, request.metadata, response, exc, now - start)
            except Exception:
                log.exception("a filter failed at the end of a call to %s", _service(request))
        access = self.access
        if logged and access is not None:
            try:
                access.queue(role, peer, request, response, exc, None, int((now - start) * 1000))
            except Exception:
                log.exception("a filter failed at the end of a call to %s", _service(request))


def _service(request: Frame) -> str:
    return request.metadata.get(M_PATH, "")


def direct_watchers(filters: Sequence[Filter]) -> Watchers | None:
    """:class:`Watchers` when ``filters`` (one kind) are only the built-in watchers, at most
    one of each; ``None`` when a chain is needed."""
    if not filters:
        return None
    metrics: MetricsFilter | None = None
    access: AccessLogFilter | None = None
    for f in filters:
        kind = type(f)
        if kind is MetricsFilter or kind is ClusterMetricsFilter:
            if metrics is not None:
                return None
            assert isinstance(f, MetricsFilter)
            metrics = f
        elif kind is AccessLogFilter or kind is ClusterAccessLogFilter:
            if access is not None:
                return None
            assert isinstance(f, AccessLogFilter)
            access = f
        else:
            return None
    return Watchers(metrics, access)


class WatchedCall:
    """The reply of one client call (an attempt on a provider endpoint, ``peer`` its
    address, or a whole refer call, ``peer`` empty) whose filters are only watchers: records
    the call, then hands the answer to ``reply``."""

    def __init__(self, watchers: Watchers, request: Frame, peer: str, reply: Reply) -> None:
        self._watchers = watchers
        self._request = request
        self._peer = peer
        self._reply = reply
        self._start = _now()
        self._logged = watchers.logging()
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, result: Frame, /) -> None:
        self._end(result, None)

    def set_exception(self, exception: BaseException, /) -> None:
        self._end(None, exception)

    def _end(self, response: Frame | None, exc: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        request = self._request
        self._watchers.record(
            ROLE_CLIENT, self._peer, request, response, exc, self._start, self._logged
        )
        try:
            settle(self._reply, response, exc)
        except Exception:  # must not break the read loop that delivered the answer
            log.exception("answering a call to %s failed", _service(request))


class WatchedServerCall:
    """The reply of one call to a server-side provider whose filters are only watchers: the
    provider's answer is encoded (``encode``), recorded, then written with ``respond``."""

    def __init__(
        self,
        watchers: Watchers,
        request: Frame,
        conn: Any,
        respond: Callable[[bytes], None],
        encode: Encoder,
    ) -> None:
        self._watchers = watchers
        self._request = request
        self._peer: str = conn.peer
        self._respond = respond
        self._encode = encode
        self._start = _now()
        self._logged = watchers.logging()
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, result: Frame, /) -> None:
        self.answered(result, None)

    def set_exception(self, exception: BaseException, /) -> None:
        self.answered(None, exception)

    def answered(self, response: Frame | None, exc: BaseException | None) -> None:
        """The provider's response frame (or its failure)."""
        if self._done:
            return
        self._done = True
        request = self._request
        raw = self._encode(request, response, exc)
        self._watchers.record(
            ROLE_SERVER, self._peer, request, response, exc, self._start, self._logged
        )
        try:
            self._respond(raw)
        except Exception:
            log.exception("answering a call to %s failed", _service(request))


class WatchedEntry:
    """What serves a request of a server-side provider that takes a reply (``serve``: its
    ``serve_reply(frame, conn, reply)``) and whose filters are only watchers: the reply is a
    :class:`WatchedServerCall`. Compiled and callable as a provider, so the dispatcher calls
    it (the provider's ``entry``) without a Python frame in between."""

    def __init__(
        self, watchers: Watchers, serve: Callable[[Frame, Any, Reply], None], encode: Encoder
    ) -> None:
        self._watchers = watchers
        self._serve = serve
        self._encode = encode

    def __call__(self, frame: Frame, respond: Callable[[bytes], None], conn: Any) -> None:
        self._serve(
            frame, conn, WatchedServerCall(self._watchers, frame, conn, respond, self._encode)
        )
