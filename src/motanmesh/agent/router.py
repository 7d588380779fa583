"""The client side of the agent: the forward proxy on 9981.

Each request is routed to a cluster by ``M_p`` (then ``M_g``, ``M_pp``, ``M_v``) with the Go
agent's rules, forwarded without deserializing its body, and answered with the caller's
request id. Failures come back as ``M_e`` responses with the Go agent's codes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from functools import partial
from typing import Final

from motanmesh.cluster.cluster import Cluster
from motanmesh.cluster.errors import call_error_response, error_response
from motanmesh.graph import DependencyGraph
from motanmesh.transport.endpoint import ReplyCallback
from motanmesh.transport.server import Responder, ServerConnection
from motanmesh.wire.frame import (
    FLAG_PROXY,
    M_GROUP,
    M_PATH,
    M_PROXY_PROTOCOL,
    M_REQUEST_ID,
    M_SOURCE,
    M_VERSION,
    Frame,
)
from motanmesh.wire.passthrough import forward, respond_forwarded

log = logging.getLogger("motanmesh.agent")

E_BAD_REQUEST: Final = 400
_SIGN_BIT: Final = 1 << 63
_X_FORWARDED_FOR: Final = "x-forwarded-for"


def signed_id(request_id: int) -> str:
    """The request id as motan-go writes ``M_rid``: a signed 64-bit decimal."""
    return str(request_id - (1 << 64) if request_id & _SIGN_BIT else request_id)


class ClientRouter:
    """Transport request handler for the client-side port."""

    def __init__(self, application: str = "") -> None:
        self.application = application
        self._by_path: dict[str, list[Cluster]] = {}
        #: requests answered with an error because no refer serves them (never logged one by
        #: one: a flood of them costs a counter)
        self.not_found_count = 0
        #: records each answered call when the dependency graph is on
        self.graph: DependencyGraph | None = None

    def set_clusters(self, clusters: Iterable[Cluster]) -> None:
        by_path: dict[str, list[Cluster]] = {}
        for cluster in clusters:
            by_path.setdefault(cluster.refer.path, []).append(cluster)
        self._by_path = by_path

    @property
    def clusters(self) -> list[Cluster]:
        return [c for cs in self._by_path.values() for c in cs]

    def route(self, frame: Frame) -> Cluster | str:
        """The cluster for ``frame``, or the error message explaining why there is none."""
        meta = frame.metadata
        path = meta.get(M_PATH, "")
        if not path:
            return "empty service is not supported"
        clusters = self._by_path.get(path)
        if not clusters:
            return f"cluster not found. cluster: cluster not found. service: {path}"
        if len(clusters) == 1:
            return clusters[0]
        group = meta.get(M_GROUP, "")
        if not group:
            return f"group is required when several refers serve {path}"
        protocol = meta.get(M_PROXY_PROTOCOL, "")
        version = meta.get(M_VERSION, "")
        for cluster in clusters:
            if cluster.refer.is_match(path, group, protocol, version):
                return cluster
        return (
            f"no cluster matches the request; service: {path}, group: {group}, "
            f"protocol: {protocol}, version: {version}"
        )

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        found = self.route(frame)
        if isinstance(found, str):
            self.not_found_count += 1
            respond(
                forward(
                    error_response(frame, E_BAD_REQUEST, found),
                    frame.request_id,
                    set_flags=FLAG_PROXY,
                )
            )
            return
        meta = frame.metadata
        changes: dict[str, str] = {"host": conn.peer_host}
        if M_REQUEST_ID not in meta:
            changes[M_REQUEST_ID] = signed_id(frame.request_id)
        if not meta.get(M_SOURCE):
            source = meta.get("application") or found.refer.application or self.application
            if source:
                changes[M_SOURCE] = source
        graph = self.graph
        if graph is None:
            if respond is conn.respond:  # nothing wraps the answer: written in pieces
                found.send(frame, ReplyCallback(partial(_answer_to, frame, conn)), changes)
            else:
                found.send(frame, ReplyCallback(partial(_answer, frame, respond)), changes)
            return
        reply = graph.client_reply(frame, respond, changes, found.refer.group, _answer)
        found.send(frame, reply, changes)


def _answer(
    request: Frame, respond: Responder, response: Frame | None, exc: BaseException | None
) -> None:
    if response is None:
        if isinstance(exc, asyncio.CancelledError):
            return
        response = call_error_response(request, exc or RuntimeError("no response"))
    origin = response.origin
    changes = {_X_FORWARDED_FOR: origin} if origin else None
    respond(forward(response, request.request_id, changes, set_flags=FLAG_PROXY))


def _answer_to(
    request: Frame, conn: ServerConnection, response: Frame | None, exc: BaseException | None
) -> None:
    """:func:`_answer` straight to the caller's connection: a large body is written as it
    is, after its header, instead of being copied into one buffer with it."""
    if response is None:
        if isinstance(exc, asyncio.CancelledError):
            return
        response = call_error_response(request, exc or RuntimeError("no response"))
    origin = response.origin
    changes = {_X_FORWARDED_FOR: origin} if origin else None
    respond_forwarded(conn, response, request.request_id, changes, FLAG_PROXY)
