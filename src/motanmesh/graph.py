"""The dependency graph: who calls what through one agent.

Every call that passes an agent is counted under an :class:`EdgeKey`: the side of the agent
that saw it (``client``: an application called out through the client port; ``server``: a
caller reached an exported service), the calling application (``M_s``, as the caller states
it), the service, group and method. Each :class:`Edge` keeps the number of calls, business and
other errors, and the latency (sum, maximum, and a coarse histogram for percentiles).

The agent records it itself when ``motan-agent.dependencyGraph`` is true (off by default; see
"The call path compiled" in ``benchmarks/README.md`` for what it costs): the client router's
reply is a :class:`ClientRecorder`, which records a call when its answer goes back to the
application (once per call, retries included); the export dispatcher hands each provider a
:class:`ServerRecorder` as the way to answer. ``/debug/graph`` on the management port returns
:meth:`DependencyGraph.snapshot`; ``motanmesh ctl graph`` gathers the snapshots of many agents
(:mod:`motanmesh.control.graph`). The module is compiled by mypyc (``setup.py``).

Recording is cheap: a tuple of four metadata values, a dict lookup and a few additions per
call; the body is never decoded, and an answer's metadata only when its header says it is an
exception. The number of edges is bounded (:attr:`DependencyGraph.max_edges`): calls of edges
beyond it are counted in ``dropped`` only, so a caller that invents names cannot grow the
agent's memory.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from motanmesh.filters.base import ERROR_BIZ, ERROR_OTHER, error_kind
from motanmesh.wire.errors import WireError
from motanmesh.wire.frame import (
    HEAD,
    M_GROUP,
    M_METHOD,
    M_PATH,
    M_SOURCE,
    Frame,
    frame_from_parts,
)

__all__ = [
    "BUCKET_BOUNDS_MS",
    "DEFAULT_MAX_EDGES",
    "SIDE_CLIENT",
    "SIDE_SERVER",
    "DependencyGraph",
    "Edge",
    "EdgeKey",
    "Key",
    "percentile_ms",
    "raw_error",
]

SIDE_CLIENT: Final = "client"
SIDE_SERVER: Final = "server"
DEFAULT_MAX_EDGES: Final = 10_000
#: upper bounds (ms) of the latency histogram; one more bucket holds the slower calls
BUCKET_BOUNDS_MS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
_BOUNDS_S: Final = tuple(b / 1000 for b in BUCKET_BOUNDS_MS)
_perf_counter = time.perf_counter
_bisect = bisect_left
_HEAD_SIZE: Final = HEAD.size
log = logging.getLogger("motanmesh.graph")


class EdgeKey(NamedTuple):
    """What an edge is counted under (a plain tuple of these fields on the request path)."""

    side: str
    caller: str
    service: str
    group: str
    method: str


#: the key as the request path builds it: ``(side, caller, service, group, method)``
Key = tuple[str, str, str, str, str]


class Edge:
    """The calls of one :class:`EdgeKey`."""

    __slots__ = ("biz_errors", "buckets", "calls", "max_seconds", "other_errors", "seconds")

    def __init__(self) -> None:
        self.calls = 0
        self.biz_errors = 0
        self.other_errors = 0
        self.seconds = 0.0
        self.max_seconds = 0.0
        self.buckets = [0] * (len(_BOUNDS_S) + 1)

    def record(self, seconds: float, error: str | None) -> None:
        self.calls += 1
        self.seconds += seconds
        self.max_seconds = max(self.max_seconds, seconds)
        self.buckets[_bisect(_BOUNDS_S, seconds)] += 1
        if error is not None:
            self.count_error(error)

    def count_error(self, error: str | None) -> None:
        if error == ERROR_BIZ:
            self.biz_errors += 1
        elif error is not None:
            self.other_errors += 1

    def to_dict(self) -> dict[str, Any]:
        calls = self.calls
        return {
            "calls": calls,
            "errors": self.biz_errors + self.other_errors,
            "bizErrors": self.biz_errors,
            "otherErrors": self.other_errors,
            "avgMs": round(self.seconds * 1000 / calls, 3) if calls else 0.0,
            "maxMs": round(self.max_seconds * 1000, 3),
            "p50Ms": percentile_ms(self.buckets, 0.50),
            "p99Ms": percentile_ms(self.buckets, 0.99),
            "buckets": list(self.buckets),
        }


def percentile_ms(buckets: list[int], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding the ``q`` quantile; ``None`` when there are
    no calls, and ``-1.0`` when it lies beyond the last bound."""
    total = sum(buckets)
    if not total:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(buckets):
        seen += n
        if seen >= rank:
            return float(BUCKET_BOUNDS_MS[i]) if i < len(BUCKET_BOUNDS_MS) else -1.0
    return -1.0


class DependencyGraph:
    """The edges one agent has seen since it started."""

    def __init__(self, application: str = "", max_edges: int = DEFAULT_MAX_EDGES) -> None:
        #: the agent's own application: the callee of its ``server`` edges
        self.application = application
        self.max_edges = max(1, max_edges)
        self.edges: dict[Key, Edge] = {}
        #: calls not recorded because the graph was full
        self.dropped = 0
        self.since = time.time()

    def edge(self, key: Key) -> Edge | None:
        """The edge of ``key``, made on first use; ``None`` when the graph is full."""
        found = self.edges.get(key)
        if found is None:
            if len(self.edges) >= self.max_edges:
                self.dropped += 1
                return None
            found = self.edges[key] = Edge()
        return found

    def record(self, key: Key, seconds: float, error: str | None) -> None:
        edge = self.edges.get(key) or self.edge(key)
        if edge is not None:
            edge.record(seconds, error)

    # ------------------------------------------------------------------ the agent's hooks

    def client_done(
        self,
        request: Frame,
        changes: dict[str, str],
        group: str,
        start: float,
        response: Frame | None,
    ) -> None:
        """A client-side call answered (``response`` ``None``: failed without an answer).
        ``changes`` are what the router added (``M_s`` when the application sent none);
        ``group`` is the refer's, for a request without ``M_g``."""
        seconds = _perf_counter() - start
        meta = request.metadata
        key = (
            SIDE_CLIENT,
            meta.get(M_SOURCE) or changes.get(M_SOURCE, ""),
            meta.get(M_PATH, ""),
            meta.get(M_GROUP) or group,
            meta.get(M_METHOD, ""),
        )
        edge = self.edges.get(key)
        if edge is None:
            edge = self.edge(key)
            if edge is None:
                return
        edge.record(seconds, None)
        if response is None or response.status:
            edge.count_error(error_kind(response, None))

    def client_reply(
        self,
        request: Frame,
        respond: Callable[[bytes], None],
        changes: dict[str, str],
        group: str,
        answer: Answer,
    ) -> ClientRecorder:
        """The reply of a client-side call (``answer(request, respond, response, exc)``
        writes the answer), recording the call once it is answered."""
        return ClientRecorder(self, request, respond, changes, group, answer)

    def server_responder(
        self, request: Frame, respond: Callable[[bytes], None]
    ) -> Callable[[bytes], None]:
        """``respond`` for a request handed to a provider, recording the call when the
        provider answers (after the answer is written)."""
        meta = request.metadata
        key = (
            SIDE_SERVER,
            meta.get(M_SOURCE, ""),
            meta.get(M_PATH, ""),
            meta.get(M_GROUP, ""),
            meta.get(M_METHOD, ""),
        )
        return ServerRecorder(self, key, respond)

    def server_answered(self, key: Key, start: float, data: bytes) -> None:
        """A provider answered the call of ``key`` with ``data`` (written already)."""
        seconds = _perf_counter() - start
        edge = self.edges.get(key)
        if edge is None:
            edge = self.edge(key)
            if edge is None:
                return
        edge.record(seconds, None)
        if len(data) < _HEAD_SIZE or data[3] & 0x07:
            edge.count_error(raw_error(data))

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy: the agent's application, the time span, and the edges."""
        edges = []
        for raw, edge in sorted(self.edges.items()):
            key = EdgeKey(*raw)
            edges.append(
                {
                    "side": key.side,
                    "caller": key.caller,
                    "callee": self.application if key.side == SIDE_SERVER else "",
                    "service": key.service,
                    "group": key.group,
                    "method": key.method,
                    **edge.to_dict(),
                }
            )
        return {
            "application": self.application,
            "since": round(self.since, 3),
            "now": round(time.time(), 3),
            "maxEdges": self.max_edges,
            "dropped": self.dropped,
            "edges": edges,
        }


#: writes a client call's answer: ``(request, respond, response, exception)``
Answer = Callable[[Frame, Callable[[bytes], None], Frame | None, BaseException | None], None]


class ClientRecorder:
    """The reply (``done``/``set_result``/``set_exception``, as a ``ReplyCallback``) of a
    client-side call while the graph is on: writes the answer, then records the call (a
    call given up, ``CancelledError``, is not recorded)."""

    __slots__ = (
        "_answer",
        "_changes",
        "_done",
        "_graph",
        "_group",
        "_request",
        "_respond",
        "_start",
    )

    def __init__(
        self,
        graph: DependencyGraph,
        request: Frame,
        respond: Callable[[bytes], None],
        changes: dict[str, str],
        group: str,
        answer: Answer,
    ) -> None:
        self._graph = graph
        self._request = request
        self._respond = respond
        self._changes = changes
        self._group = group
        self._answer = answer
        self._start = _perf_counter()
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, result: Frame, /) -> None:
        if not self._done:
            self._done = True
            self._call(result, None)

    def set_exception(self, exception: BaseException, /) -> None:
        if not self._done:
            self._done = True
            self._call(None, exception)

    def _call(self, response: Frame | None, exc: BaseException | None) -> None:
        request = self._request
        try:
            self._answer(request, self._respond, response, exc)
        except Exception:  # must not break the read loop that delivered the response
            log.exception("answering a call to %s failed", request.metadata.get(M_PATH, ""))
        if not isinstance(exc, asyncio.CancelledError):
            self._graph.client_done(request, self._changes, self._group, self._start, response)


class ServerRecorder:
    """``respond`` of a request handed to a provider while the graph is on: writes the
    answer, then records the call."""

    __slots__ = ("_graph", "_key", "_respond", "_start")

    def __init__(self, graph: DependencyGraph, key: Key, respond: Callable[[bytes], None]) -> None:
        self._graph = graph
        self._key = key
        self._respond = respond
        self._start = _perf_counter()

    def __call__(self, data: bytes) -> None:
        self._respond(data)
        self._graph.server_answered(self._key, self._start, data)


def raw_error(data: bytes) -> str | None:
    """:func:`~motanmesh.filters.base.error_kind` of an encoded Motan2 answer; its metadata
    is read only when the header's status says exception."""
    if len(data) < HEAD.size:
        return ERROR_OTHER  # not an answer at all
    if not data[3] & 0x07:
        return None
    try:
        mlen = HEAD.unpack_from(data, 0)[5]
        body_at = HEAD.size + mlen + 4
        return error_kind(frame_from_parts(data, mlen, body_at, body_at), None)
    except (WireError, ValueError, IndexError, struct.error):
        return ERROR_OTHER
