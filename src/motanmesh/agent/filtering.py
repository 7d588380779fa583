"""Endpoint filters around a server-side provider.

The provider still answers with the bytes it would write; the wrapper reads the response's
header and metadata (never its body) so filters see a :class:`Frame`, and writes the
provider's bytes unchanged. A call a filter ends itself is answered with the frame it gives.
"""

from __future__ import annotations

import struct
from functools import partial
from typing import Any

from motanmesh.agent.dispatcher import Provider
from motanmesh.cluster.errors import call_error_response
from motanmesh.filters.base import ROLE_SERVER, Call, FilterContext, Handler
from motanmesh.filters.chain import FilterSet, build_chain, resolve_filters
from motanmesh.transport.server import Responder, ServerConnection
from motanmesh.url import URL
from motanmesh.wire.errors import WireError
from motanmesh.wire.frame import FLAG_PROXY, HEAD, Frame, frame_from_parts
from motanmesh.wire.passthrough import forward

__all__ = ["FilteredProvider", "with_filters"]


class FilteredProvider:
    """A provider with its endpoint filters in front."""

    def __init__(self, inner: Provider, filters: FilterSet) -> None:
        self.inner = inner
        self.url: URL = inner.url
        self.filters = filters
        self._chain: Handler = build_chain(filters.endpoint, self._deliver)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        self.filters.close()
        await self.inner.close()

    def info(self) -> list[dict[str, Any]]:
        return self.filters.info()

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        def finish(response: Frame | None, exc: BaseException | None) -> None:
            raw = call.raw_response
            if raw is not None:
                respond(raw)
                return
            if response is None:
                response = call_error_response(frame, exc or RuntimeError("no response"))
            respond(forward(response, frame.request_id, set_flags=FLAG_PROXY))

        call = Call(frame, self.url, ROLE_SERVER, conn.peer, {}, finish)
        call.conn = conn
        self._chain(call)

    def _deliver(self, call: Call) -> None:
        frame = call.request
        if call.changes:  # filters added metadata for the provider: re-encode it
            frame = Frame(
                frame.flags,
                frame.status,
                frame.serialization,
                frame.request_id,
                {**frame.metadata, **call.changes},
                frame.body,
                frame.version,
            )
        self.inner(frame, partial(_received, call), call.conn)


def _received(call: Call, data: bytes) -> None:
    """The provider's answer, as bytes: keep them, show filters the frame."""
    if call.done:  # a filter already answered (e.g. a timeout): drop the late answer
        return
    call.raw_response = data
    call.response_size = len(data)
    try:
        response = _peek(data)
    except (WireError, ValueError, IndexError, struct.error) as e:
        call.complete(None, e)
        return
    call.complete(response)


def _peek(data: bytes) -> Frame:
    """Header and metadata of one encoded frame; the body is left out (not copied)."""
    mlen = HEAD.unpack_from(data, 0)[5]
    body_at = HEAD.size + mlen + 4
    return frame_from_parts(data, mlen, body_at, body_at)


def with_filters(provider: Provider, url: URL, context: FilterContext) -> Provider:
    """``provider`` with the endpoint filters ``url`` names (itself when there are none).
    Cluster filters do not apply on the server side, as in the Go agent."""
    filters = resolve_filters(url, context)
    if not filters.endpoint:
        filters.close()
        return provider
    return FilteredProvider(provider, filters)
