"""The ``trace`` filter (endpoint, index 2): OpenTelemetry spans around calls, with the W3C
trace context (``traceparent`` / ``tracestate``) carried in Motan2 metadata.

Client side (around each attempt on a provider endpoint): the parent is the context the
application sent in its request metadata, if any; a ``CLIENT`` span is started and its
context replaces ``traceparent`` / ``tracestate`` in the metadata written upstream
(``Call.changes``). Server side (around the provider): the parent is the context the caller
sent; a ``SERVER`` span is started and its context goes on to the provider. Spans carry
``rpc.system=motan``, ``rpc.service``, ``rpc.method``, ``motan.group``, the calling
application, the peer, and an error status with the Motan error code and message.

Calls that are not sampled never reach the SDK: with an unsampled caller (``traceparent``
flags ``00``) the context goes on unchanged; a call that starts a trace outside
``tracing.sampleRatio`` gets a new unsampled ``traceparent``, so the agents after it follow
the same decision. Only sampled calls pay for an SDK span.

OpenTelemetry is imported when the first ``trace`` filter is built, never otherwise. The
exporter and the sample ratio come from the ``tracing.*`` keys of ``motan-agent``
(:mod:`motanmesh.tracing.config`).
"""

from __future__ import annotations

import re
from functools import partial
from random import getrandbits
from typing import Any, ClassVar, Final

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context

from motanmesh.filters.base import (
    ERROR_BIZ,
    ROLE_SERVER,
    Call,
    Filter,
    FilterContext,
    FilterKind,
    Handler,
)
from motanmesh.tracing.config import TRACING_SERVICE, TracingConfig
from motanmesh.tracing.otel import Tracing
from motanmesh.url import URL
from motanmesh.wire.frame import (
    ERRTYPE_BIZ,
    M_EXCEPTION,
    M_GROUP,
    M_METHOD,
    M_PATH,
    M_REQUEST_ID,
    M_SOURCE,
    Frame,
    parse_exception,
)

__all__ = ["TRACEPARENT", "TRACESTATE", "TraceFilter"]

TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
_TRACEPARENT_LEN: Final = 55
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16
_HEX: Final = re.compile("[0-9a-f]+")


def _unsampled(traceparent: str) -> bool:
    """A well-formed version-00 ``traceparent`` whose sampled flag is clear (anything else
    goes to the SDK, which starts a new trace for what it cannot read)."""
    return (
        len(traceparent) == _TRACEPARENT_LEN
        and traceparent.startswith("00-")
        and traceparent[-3] == "-"
        and not int(traceparent[-2:], 16) & 1
        and traceparent[3:35] != _ZERO_TRACE
        and traceparent[36:52] != _ZERO_SPAN
        and _HEX.fullmatch(traceparent[3:35] + traceparent[36:52]) is not None
    )


def _unsampled_traceparent() -> str:
    trace_id = getrandbits(128) or 1
    span_id = getrandbits(64) or 1
    return f"00-{trace_id:032x}-{span_id:016x}-00"


def _split_peer(peer: str) -> tuple[str, int]:
    host, sep, port = peer.rpartition(":")
    if not sep or not port.isdigit():
        return peer, 0
    return host.strip("[]"), int(port)


class TraceFilter(Filter):
    """Client and server spans around calls (see the module docstring)."""

    name = "trace"
    kind: ClassVar[FilterKind] = "endpoint"
    index = 2

    def __init__(self, url: URL, context: FilterContext) -> None:
        super().__init__(url, context)
        params, application = context.params, context.application
        self.tracing: Tracing = context.get_service(
            TRACING_SERVICE, lambda: Tracing(TracingConfig.from_params(params, application))
        )
        self._tracer = self.tracing.tracer
        self._extract = self.tracing.propagator.extract
        self._inject = self.tracing.propagator.inject
        self._sample_new = self.tracing.sample_new_trace
        self._group = url.group

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        metadata = call.request.metadata
        incoming = metadata.get(TRACEPARENT)
        if incoming is None:
            if not self._sample_new():
                # not recorded: still a trace context, so the next agent does not decide anew
                call.changes[TRACEPARENT] = _unsampled_traceparent()
                proceed(call)
                return
            parent = None
        elif _unsampled(incoming):
            proceed(call)  # the caller's context goes on as it came: nothing is recorded
            return
        else:
            parent = self._extract(metadata)
        server = call.role == ROLE_SERVER
        service = metadata.get(M_PATH, "")
        method = metadata.get(M_METHOD, "")
        attributes: dict[str, Any] = {
            "rpc.system": "motan",
            "rpc.service": service,
            "rpc.method": method,
            "motan.group": metadata.get(M_GROUP) or self._group,
            "motan.application": metadata.get(M_SOURCE) or call.changes.get(M_SOURCE, ""),
        }
        rid = metadata.get(M_REQUEST_ID) or call.changes.get(M_REQUEST_ID)
        if rid:
            attributes["motan.request_id"] = rid
        host, port = _split_peer(call.peer)
        if server:
            attributes["client.address"] = host
            if port:
                attributes["client.port"] = port
        else:
            attributes["server.address"] = host
            if port:
                attributes["server.port"] = port
        span = self._tracer.start_span(
            f"{service}/{method}",
            context=parent,
            kind=SpanKind.SERVER if server else SpanKind.CLIENT,
            attributes=attributes,
        )
        self._inject(call.changes, context=set_span_in_context(span))
        call.on_complete(partial(_end, span))
        proceed(call)

    def info(self) -> dict[str, Any]:
        return {**super().info(), **self.tracing.info()}


def _end(span: Span, call: Call, response: Frame | None, exc: BaseException | None) -> None:
    if response is None:
        span.set_attribute("error.type", type(exc).__name__ if exc else "no response")
        span.set_status(Status(StatusCode.ERROR, str(exc) if exc else "no response"))
    elif response.status:
        value = response.metadata.get(M_EXCEPTION)
        if value:
            error = parse_exception(value)
            span.set_attribute("error.type", ERROR_BIZ if error.errtype == ERRTYPE_BIZ else "other")
            span.set_attribute("motan.error_code", error.errcode)
            span.set_status(Status(StatusCode.ERROR, error.errmsg))
    span.end()
