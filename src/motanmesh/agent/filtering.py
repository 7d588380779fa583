"""Endpoint filters around a server-side provider.

A provider that can answer with a frame (``serve_reply`` or ``serve_frame``, as the motan2
reverse proxy does) hands filters its response frame, and the wrapper writes it as the
provider would have (:func:`~motanmesh.agent.providers.answer_bytes`); with ``serve_reply``
the call (a :class:`~motanmesh.filters.server.ServerCall`) is itself the reply the provider's
endpoint completes. Any other provider answers with the bytes
it would write; the wrapper then reads their header and metadata (never the body) so filters
see a :class:`Frame`, and writes the bytes unchanged. A call a filter ends itself is answered
with the frame it gives.

When the filters are only the built-in watchers (``metrics``, ``accessLog``) and the provider
takes a reply, a call skips the chain: the provider's ``entry`` (a compiled
:class:`~motanmesh.filters.direct.WatchedEntry`, which the dispatcher calls in place of the
provider) makes it a :class:`~motanmesh.filters.direct.WatchedServerCall` that records the
call and writes the answer (:mod:`motanmesh.filters.direct`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import partial
from typing import Any

from motanmesh.agent.dispatcher import Provider
from motanmesh.agent.providers import FrameDone, answer_bytes
from motanmesh.filters.base import Call, FilterContext, Handler
from motanmesh.filters.chain import FilterSet, build_chain, resolve_filters
from motanmesh.filters.direct import WatchedEntry, direct_watchers
from motanmesh.filters.server import ServerCall
from motanmesh.transport.endpoint import Reply
from motanmesh.transport.server import Responder, ServerConnection
from motanmesh.url import URL
from motanmesh.wire.errors import WireError
from motanmesh.wire.frame import HEAD, Frame, frame_from_parts

__all__ = ["FilteredProvider", "with_filters"]


class FilteredProvider:
    """A provider with its endpoint filters in front."""

    def __init__(self, inner: Provider, filters: FilterSet, *, direct: bool = True) -> None:
        """``direct=False`` runs the chain even for the built-in watchers alone (to compare
        the two paths)."""
        self.inner = inner
        self.url: URL = inner.url
        self.filters = filters
        self._serve_reply: ReplyServer | None = getattr(inner, "serve_reply", None)
        self._serve_frame: FrameServer | None = getattr(inner, "serve_frame", None)
        terminal = (
            self._deliver_reply
            if self._serve_reply is not None
            else self._deliver_frame
            if self._serve_frame is not None
            else self._deliver
        )
        self._chain: Handler = build_chain(filters.endpoint, terminal)
        #: the built-in watchers, when they are all the filters and the provider takes a reply:
        #: then the dispatcher calls ``entry`` (compiled) instead of this object
        watchers = direct_watchers(filters.endpoint) if direct else None
        self.entry: WatchedEntry | None = (
            WatchedEntry(watchers, self._serve_reply, answer_bytes)
            if watchers is not None and self._serve_reply is not None
            else None
        )

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        self.filters.close()
        await self.inner.close()

    def info(self) -> list[dict[str, Any]]:
        return self.filters.info()

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        entry = self.entry
        if entry is not None:
            entry(frame, respond, conn)
            return
        call = ServerCall(frame, self.url, conn, respond, answer_bytes)
        self._chain(call)

    def _deliver_reply(self, call: Call) -> None:
        assert self._serve_reply is not None
        # the call is the reply: the provider's endpoint completes it with the answer frame
        self._serve_reply(_with_changes(call), call.conn, call)

    def _deliver_frame(self, call: Call) -> None:
        assert self._serve_frame is not None
        assert isinstance(call, ServerCall)
        self._serve_frame(_with_changes(call), call.conn, call.answered)

    def _deliver(self, call: Call) -> None:
        self.inner(_with_changes(call), partial(_received, call), call.conn)


FrameServer = Callable[[Frame, ServerConnection, FrameDone], None]
ReplyServer = Callable[[Frame, ServerConnection, Reply], None]


def _with_changes(call: Call) -> Frame:
    """The request, with the metadata filters added for the provider (re-encoded)."""
    frame = call.request
    if not call.changes:
        return frame
    return Frame(
        frame.flags,
        frame.status,
        frame.serialization,
        frame.request_id,
        {**frame.metadata, **call.changes},
        frame.body,
        frame.version,
    )


def _received(call: Call, data: bytes) -> None:
    """The provider's answer, as bytes: keep them, show filters the frame."""
    if call.done():  # a filter already answered (e.g. a timeout): drop the late answer
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
