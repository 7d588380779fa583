"""``accessLog`` (endpoint, index 1) and ``clusterAccessLog`` (cluster, index 1): one
access-log line per call, as the Go agent writes it.

The fields (``filterName|role|requestID|service|method|desc|remoteAddress|reqSize|resSize|
bizTime|totalTime|success|responseCode|exception|upstreamCode``) come from the request's
metadata and the response's header and metadata; no body is decoded. ``role`` is
``server-agent`` around a provider and ``client-agent`` around a provider endpoint or a
cluster; ``remoteAddress`` is the caller's ``host`` metadata (server side), the provider's
address (client endpoint) or empty (cluster). Times are whole milliseconds.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from time import perf_counter as _now
from typing import Any, ClassVar, Final

from motanmesh.filters.access_log_writer import (
    ACCESS_LOG_SERVICE,
    DEFAULT_BUFFER_SIZE,
    AccessEntry,
    AccessLogWriter,
    RawAccess,
)
from motanmesh.filters.base import (
    ROLE_SERVER,
    Call,
    Filter,
    FilterContext,
    FilterKind,
    Handler,
)
from motanmesh.transport.errors import TransportError
from motanmesh.url import URL
from motanmesh.wire.frame import (
    HEAD,
    M_EXCEPTION,
    M_METHOD,
    M_METHOD_DESC,
    M_PATH,
    M_PROCESS_TIME,
    Frame,
    exception_json,
    parse_exception,
)

__all__ = ["AccessLogFilter", "ClusterAccessLogFilter", "access_log_writer"]

CLIENT_ROLE: Final = "client-agent"
SERVER_ROLE: Final = "server-agent"
HOST_KEY: Final = "host"
UPSTREAM_CODE: Final = "upstreamCode"
_TRUE: Final = frozenset({"1", "t", "T", "true", "TRUE", "True"})


def access_log_writer(context: FilterContext) -> AccessLogWriter:
    """The agent's access-log writer, made from the ``motan-agent`` keys on first use
    (``log_dir``, ``log_structured``, ``log_buffer_size``, ``rotate_per_hour``)."""

    def make() -> AccessLogWriter:
        params = context.params
        size = params.get("log_buffer_size", "")
        return AccessLogWriter(
            context.log_dir,
            structured=params.get("log_structured", "") in _TRUE,
            buffer_size=int(size) if size.isdigit() and int(size) > 0 else DEFAULT_BUFFER_SIZE,
            rotate_per_hour=params.get("rotate_per_hour", "true") in _TRUE,
        )

    return context.get_service(ACCESS_LOG_SERVICE, make)


def _raw_body_size(raw: bytes) -> int:
    """The body size of an encoded response (server side: filters see it without body)."""
    try:
        return len(raw) - HEAD.size - int(HEAD.unpack_from(raw, 0)[5]) - 4
    except struct.error:
        return 0


def _transport_exception(exc: BaseException) -> tuple[int, str, int]:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TransportError):
        return 400, "channel call error: " + text, 1
    return 500, "cluster call error: " + text, 1


def _outcome(exception_value: str, failure: tuple[int, str, int] | None) -> tuple[str, str]:
    """``(responseCode, exception)`` of an answer's ``M_e`` (``""``: none, or not an
    exception status), or of the failure of a call without answer."""
    if exception_value:
        e = parse_exception(exception_value)
        return str(e.errcode), exception_json(e.errcode, e.errmsg, e.errtype)
    if failure is not None:
        errcode, errmsg, errtype = failure
        return str(errcode), exception_json(errcode, errmsg, errtype)
    return "200", ""


def _biz_time(pt: str) -> int:
    """``bizTime`` from the answer's ``M_pt`` (0 when missing or not a number)."""
    return (int(pt) if pt.isdigit() else 0) if pt else 0


class AccessLogFilter(Filter):
    """One access-log line per call on a provider endpoint or around a provider.

    The request path takes only what the line needs and cannot read later (the times, the
    sizes, the metadata values, the outcome) into a tuple of strings and numbers for the
    writer (:data:`~motanmesh.filters.access_log_writer.RawAccess`); the writer thread turns
    it into the line's fields (:meth:`entry`) and formats them."""

    name = "accessLog"
    kind: ClassVar[FilterKind] = "endpoint"
    index = 1
    #: around a whole client call (``clusterAccessLog``): role client, no remote address
    around_cluster: ClassVar[bool] = False

    def __init__(self, url: URL, context: FilterContext) -> None:
        super().__init__(url, context)
        self.writer = access_log_writer(context)
        self._add: Callable[[RawAccess], None] = self.writer.add_raw
        self._maker = self.writer.register(self)
        self._watch = self._done
        #: the line's first fields, made once
        self._client_head = f"{self.name}|{CLIENT_ROLE}|"
        self._server_head = f"{self.name}|{SERVER_ROLE}|"

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        if self.writer.enabled:
            call.on_complete(self._watch)
        proceed(call)

    def _done(self, call: Call, response: Frame | None, exc: BaseException | None) -> None:
        self.queue(
            call.role,
            call.peer,
            call.request,
            response,
            exc,
            call.raw_response,
            int((_now() - call.start) * 1000),
        )

    def queue(
        self,
        role: str,
        peer: str,
        request: Frame,
        response: Frame | None,
        exc: BaseException | None,
        raw_response: bytes | None,
        total: int,
    ) -> None:
        """Queue the entry of one call of ``role`` with ``peer`` that took ``total`` ms and
        ended with ``response`` (server side: written as ``raw_response``) or ``exc`` (the
        chain's callback, and the direct path of :mod:`motanmesh.filters.direct`)."""
        failure = None
        res_size = 0
        pt = upstream = exception_value = ""
        if response is None:
            # the error's text now: an exception (and its traceback) is not kept
            failure = _transport_exception(exc or RuntimeError("no response"))
        else:
            rmeta = response.metadata
            status = response.status
            if rmeta:
                pt = rmeta.get(M_PROCESS_TIME, "")
                upstream = rmeta.get(UPSTREAM_CODE, "")
                if status:
                    exception_value = rmeta.get(M_EXCEPTION, "")
            if not status:
                res_size = (
                    len(response.body) if raw_response is None else _raw_body_size(raw_response)
                )
        meta = request.metadata
        # no frame and no dict is kept: their bodies could be large, and a dict would keep
        # the entry tracked by the garbage collector while it waits for the writer
        self._add(
            (
                self._maker,
                role,
                self._remote(role, peer, meta),
                request.request_id,
                meta.get(M_PATH, ""),
                meta.get(M_METHOD, ""),
                meta.get(M_METHOD_DESC, ""),
                len(request.body),
                res_size,
                total,
                pt,
                upstream,
                exception_value,
                failure,
            )
        )

    def entry(self, raw: RawAccess) -> AccessEntry:
        """The fields of one line from what the request path queued (the writer thread)."""
        (_, role, remote, rid, service, method, desc, req_size, res_size, total, pt, upstream,
         exception_value, failure) = raw  # fmt: skip
        code, exception = _outcome(exception_value, failure)
        return (
            self.name,
            CLIENT_ROLE if self.around_cluster or role != ROLE_SERVER else SERVER_ROLE,
            rid,
            service,
            method,
            desc,
            remote,
            req_size,
            res_size,
            _biz_time(pt),
            total,
            not exception,
            code,
            exception,
            upstream,
        )

    def line(self, raw: RawAccess) -> str:
        """``format_plain(self.entry(raw))``, made in one step (the writer thread)."""
        (_, role, remote, rid, service, method, desc, req_size, res_size, total, pt, upstream,
         exception_value, failure) = raw  # fmt: skip
        head = (
            self._client_head if self.around_cluster or role != ROLE_SERVER else self._server_head
        )
        biz = (int(pt) if pt.isdigit() else 0) if pt else 0
        if not exception_value and failure is None:  # a success: the common case
            return (
                f"{head}{rid}|{service}|{method}|{desc}|{remote}|{req_size}|{res_size}|{biz}|"
                f"{total}|true|200||{upstream}"
            )
        code, exception = _outcome(exception_value, failure)
        return (
            f"{head}{rid}|{service}|{method}|{desc}|{remote}|{req_size}|{res_size}|{biz}|"
            f"{total}|false|{code}|{exception}|{upstream}"
        )

    def _remote(self, role: str, peer: str, meta: dict[str, str]) -> str:
        """The line's ``remoteAddress``: the caller's ``host`` (server side), the provider
        (client endpoint), nothing (around a cluster)."""
        if self.around_cluster:
            return ""
        if role == ROLE_SERVER:
            return meta.get(HOST_KEY, "")
        return peer

    def info(self) -> dict[str, Any]:
        return {**super().info(), "accessLog": self.writer.info()}


class ClusterAccessLogFilter(AccessLogFilter):
    """One access-log line per client call, across the HA strategy's attempts."""

    name = "clusterAccessLog"
    kind = "cluster"
    index = 1
    around_cluster = True
