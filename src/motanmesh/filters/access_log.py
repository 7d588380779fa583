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


def _outcome(
    rmeta: dict[str, str] | None, status: int, failure: tuple[int, str, int] | None
) -> tuple[int, str, str, str]:
    """``(bizTime, responseCode, exception, upstreamCode)`` of an answer's metadata and
    status, or of the failure of a call without answer."""
    biz = 0
    upstream = ""
    exception = ""
    code = "200"
    if rmeta is not None:
        if rmeta:
            pt = rmeta.get(M_PROCESS_TIME)
            if pt:
                biz = int(pt) if pt.isdigit() else 0
            upstream = rmeta.get(UPSTREAM_CODE, "")
        value = rmeta.get(M_EXCEPTION) if status else None
        if value:
            e = parse_exception(value)
            exception = exception_json(e.errcode, e.errmsg, e.errtype)
            code = str(e.errcode)
    elif failure is not None:
        errcode, errmsg, errtype = failure
        exception = exception_json(errcode, errmsg, errtype)
        code = str(errcode)
    return biz, code, exception, upstream


class AccessLogFilter(Filter):
    """One access-log line per call on a provider endpoint or around a provider.

    The request path takes only what the line needs and cannot read later (the times, the
    sizes, the metadata dicts, the outcome) into a tuple for the writer; the writer thread
    turns it into the line's fields (:meth:`entry`) and formats them."""

    name = "accessLog"
    kind: ClassVar[FilterKind] = "endpoint"
    index = 1
    #: around a whole client call (``clusterAccessLog``): role client, no remote address
    around_cluster: ClassVar[bool] = False

    def __init__(self, url: URL, context: FilterContext) -> None:
        super().__init__(url, context)
        self.writer = access_log_writer(context)
        self._add: Callable[[RawAccess], None] = self.writer.add_raw
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
        if response is None:
            rmeta = None
            status = 0
            # the error's text now: an exception (and its traceback) is not kept
            failure = _transport_exception(exc or RuntimeError("no response"))
        else:
            rmeta = response.metadata
            status = response.status
            if not status:
                res_size = (
                    len(response.body) if raw_response is None else _raw_body_size(raw_response)
                )
        # no frame is kept (their bodies could be large): the metadata and the sizes
        self._add(
            (
                self,
                role,
                peer,
                request.request_id,
                request.metadata,
                len(request.body),
                rmeta,
                status,
                failure,
                res_size,
                total,
            )
        )

    def entry(self, raw: RawAccess) -> AccessEntry:
        """The fields of one line from what the request path queued (the writer thread)."""
        _, role, peer, request_id, meta, req_size, rmeta, status, failure, res_size, total = raw
        role_name, remote = self._where(role, peer, meta)
        biz, code, exception, upstream = _outcome(rmeta, status, failure)
        return (
            self.name,
            role_name,
            request_id,
            meta.get(M_PATH, ""),
            meta.get(M_METHOD, ""),
            meta.get(M_METHOD_DESC, ""),
            remote,
            req_size,
            res_size,
            biz,
            total,
            not exception,
            code,
            exception,
            upstream,
        )

    def line(self, raw: RawAccess) -> str:
        """``format_plain(self.entry(raw))``, made in one step (the writer thread)."""
        _, role, peer, request_id, meta, req_size, rmeta, status, failure, res_size, total = raw
        if self.around_cluster:
            head = self._client_head
            remote = ""
        elif role == ROLE_SERVER:
            head = self._server_head
            remote = meta.get(HOST_KEY, "")
        else:
            head = self._client_head
            remote = peer
        if rmeta is not None and not status:  # a plain success: the common case
            pt = rmeta.get(M_PROCESS_TIME) if rmeta else None
            biz = (int(pt) if pt.isdigit() else 0) if pt else 0
            upstream = rmeta.get(UPSTREAM_CODE, "") if rmeta else ""
            return (
                f"{head}{request_id}|{meta.get(M_PATH, '')}|{meta.get(M_METHOD, '')}|"
                f"{meta.get(M_METHOD_DESC, '')}|{remote}|{req_size}|{res_size}|{biz}|{total}|"
                f"true|200||{upstream}"
            )
        biz, code, exception, upstream = _outcome(rmeta, status, failure)
        return (
            f"{head}{request_id}|{meta.get(M_PATH, '')}|{meta.get(M_METHOD, '')}|"
            f"{meta.get(M_METHOD_DESC, '')}|{remote}|{req_size}|{res_size}|{biz}|{total}|"
            f"{'false' if exception else 'true'}|{code}|{exception}|{upstream}"
        )

    def _where(self, role: str, peer: str, meta: dict[str, str]) -> tuple[str, str]:
        """The line's ``role`` and ``remoteAddress``."""
        if self.around_cluster:
            return CLIENT_ROLE, ""
        if role == ROLE_SERVER:
            return SERVER_ROLE, meta.get(HOST_KEY, "")
        return CLIENT_ROLE, peer

    def info(self) -> dict[str, Any]:
        return {**super().info(), "accessLog": self.writer.info()}


class ClusterAccessLogFilter(AccessLogFilter):
    """One access-log line per client call, across the HA strategy's attempts."""

    name = "clusterAccessLog"
    kind = "cluster"
    index = 1
    around_cluster = True
