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
from time import perf_counter as _now
from typing import Any, ClassVar, Final

from motanmesh.filters.access_log_writer import (
    ACCESS_LOG_SERVICE,
    DEFAULT_BUFFER_SIZE,
    AccessEntry,
    AccessLogWriter,
    format_plain,
    format_structured,
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


#: ``bizTime`` of the ``M_pt`` values seen (whole milliseconds, a few distinct values)
_BIZ_TIMES: dict[str, str] = {}
_BIZ_TIMES_MAX: Final = 1000


def _biz_time(pt: str) -> str:
    """``bizTime`` from the answer's ``M_pt``: its whole number in decimal, ``0`` when missing
    or not a number."""
    text = _BIZ_TIMES.get(pt)
    if text is None:
        text = str(int(pt)) if pt.isascii() and pt.isdigit() else "0"
        if len(pt) <= 8 and len(_BIZ_TIMES) < _BIZ_TIMES_MAX:
            _BIZ_TIMES[pt] = text
    return text


class AccessLogFilter(Filter):
    """One access-log line per call on a provider endpoint or around a provider.

    The request path makes the line's message at the call's end and queues it (a string, so
    nothing it holds is left for the garbage collector to track while it waits for the
    writer thread); a plain success, the common case, is made in one step."""

    name = "accessLog"
    kind: ClassVar[FilterKind] = "endpoint"
    index = 1
    #: around a whole client call (``clusterAccessLog``): role client, no remote address
    around_cluster: ClassVar[bool] = False

    def __init__(self, url: URL, context: FilterContext) -> None:
        super().__init__(url, context)
        self.writer = access_log_writer(context)
        self._watch = self._done
        #: around a whole call: no remote address, role client (read per call, so an instance
        #: attribute, not the class variable)
        self._cluster = self.around_cluster
        #: the line's first fields, made once
        self._client_head = f"{self.name}|{CLIENT_ROLE}|"
        self._server_head = self._client_head if self._cluster else f"{self.name}|{SERVER_ROLE}|"
        self._server_role = CLIENT_ROLE if self._cluster else SERVER_ROLE

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
        """Queue the line of one call of ``role`` with ``peer`` that took ``total`` ms and
        ended with ``response`` (server side: written as ``raw_response``, or ``None`` when
        ``response`` holds the body) or ``exc`` (the chain's callback, and the direct path
        of :mod:`motanmesh.filters.direct`)."""
        writer = self.writer
        if writer.full():
            return
        failure = None
        res_size = 0
        pt = upstream = exception_value = ""
        if response is None:
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
        server = role == ROLE_SERVER
        if self._cluster:
            remote = ""
        elif server:
            remote = meta.get(HOST_KEY, "")
        else:
            remote = peer
        rid = request.request_id
        service = meta.get(M_PATH, "")
        method = meta.get(M_METHOD, "")
        desc = meta.get(M_METHOD_DESC, "")
        biz = _biz_time(pt)
        if not exception_value and failure is None and not writer.structured:
            # a plain success, the common case
            head = self._server_head if server else self._client_head
            writer.add_line(
                f"{head}{rid}|{service}|{method}|{desc}|{remote}|{len(request.body)}|"
                f"{res_size}|{biz}|{total}|true|200||{upstream}"
            )
            return
        code, exception = _outcome(exception_value, failure)
        entry: AccessEntry = (
            self.name,
            self._server_role if server else CLIENT_ROLE,
            rid,
            service,
            method,
            desc,
            remote,
            len(request.body),
            res_size,
            int(biz),
            total,
            not exception,
            code,
            exception,
            upstream,
        )
        writer.add_line(format_structured(entry) if writer.structured else format_plain(entry))

    def info(self) -> dict[str, Any]:
        return {**super().info(), "accessLog": self.writer.info()}


class ClusterAccessLogFilter(AccessLogFilter):
    """One access-log line per client call, across the HA strategy's attempts."""

    name = "clusterAccessLog"
    kind = "cluster"
    index = 1
    around_cluster = True
