"""A small HTTP/1.1 server for the management API, on asyncio and h11.

The management API answers a handful of short requests; a full web framework would cost the
agent more memory than all of its data-plane state, so this keeps to what the API needs:
request line, headers, a bounded body, keep-alive, one response per request.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import h11

log = logging.getLogger("motanmesh.management")

MAX_BODY: Final = 1024 * 1024
_FORM_TYPE: Final = "application/x-www-form-urlencoded"


@dataclass(slots=True)
class HttpRequest:
    method: str
    raw_path: str
    """The request target as sent (path and query string)."""
    headers: Mapping[str, str]
    """Header values by lower-case name (the last one wins)."""
    remote: str
    body: bytes = b""
    path: str = field(init=False)
    query: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.raw_path)
        self.path = parts.path or "/"
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))

    @property
    def path_qs(self) -> str:
        return self.raw_path

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def form(self) -> dict[str, str]:
        """The form fields of an urlencoded body (empty for other bodies)."""
        if self.content_type != _FORM_TYPE:
            return {}
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))


@dataclass(slots=True)
class HttpResponse:
    status: int = 200
    text: str = ""
    content_type: str = "text/plain"

    def encode_headers(self, body: bytes, keep_alive: bool) -> list[tuple[str, str]]:
        return [
            ("Content-Type", f"{self.content_type}; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "keep-alive" if keep_alive else "close"),
        ]


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        self._transport: asyncio.Transport | None = None
        self._remote = "unix"
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self._remote = str(peer[0])
        self._server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._connections.discard(self)
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._conn.receive_data(data)
        self._pump()

    def eof_received(self) -> bool:
        self._conn.receive_data(b"")
        self._pump()
        return False

    def _pump(self) -> None:
        while not self._busy and self._transport is not None:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as e:
                self._fail(e.error_status_hint, str(e))
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                if event is h11.PAUSED and self._conn.our_state is h11.DONE:
                    self._conn.start_next_cycle()
                    continue
                return
            if isinstance(event, h11.Request):
                self._request = event
                self._body = bytearray()
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > MAX_BODY:
                    self._fail(413, "request body too large")
                    return
            elif isinstance(event, h11.EndOfMessage):
                self._busy = True
                task = asyncio.ensure_future(self._serve())
                self._server._tasks.add(task)
                task.add_done_callback(self._server._tasks.discard)
                return
            elif isinstance(event, h11.ConnectionClosed):
                self.close()
                return

    async def _serve(self) -> None:
        req = self._request
        assert req is not None
        request = HttpRequest(
            req.method.decode("ascii", "replace"),
            req.target.decode("utf-8", "replace"),
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in req.headers},
            self._remote,
            bytes(self._body),
        )
        try:
            response = await self._server.handler(request)
        except Exception:
            log.exception(
                "management request %s %s failed", request.method, redact_path(request.raw_path)
            )
            response = HttpResponse(500, "internal error")
        self._send(response, head=request.method == "HEAD")
        self._busy = False
        self._pump()

    def _send(self, response: HttpResponse, *, head: bool = False) -> None:
        transport = self._transport
        if transport is None:
            return
        body = response.text.encode("utf-8")
        keep_alive = self._conn.their_state is not h11.MUST_CLOSE and not self._server.closing
        try:
            out = self._conn.send(
                h11.Response(
                    status_code=response.status,
                    headers=response.encode_headers(body, keep_alive),
                    reason=_reason(response.status),
                )
            )
            out = out or b""
            if not head:
                out += self._conn.send(h11.Data(data=body)) or b""
            out += self._conn.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as e:
            log.debug("management response not sent: %s", e)
            self.close()
            return
        transport.write(out)
        if not keep_alive or self._conn.our_state is h11.MUST_CLOSE:
            self.close()

    def _fail(self, status: int, message: str) -> None:
        if self._conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self._send(HttpResponse(status, message))
        self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class HttpServer:
    """Serves ``handler`` on listening sockets or a unix socket."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.closing = False
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve_socket(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._servers.append(await loop.create_server(lambda: _Connection(self), sock=sock))

    async def serve_unix(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        self._servers.append(await loop.create_unix_server(lambda: _Connection(self), path))

    async def close(self) -> None:
        self.closing = True
        for server in self._servers:
            server.close()
        for conn in list(self._connections):
            conn.close()
        for server in self._servers:
            await server.wait_closed()
        for task in list(self._tasks):
            task.cancel()


def redact_path(path: str) -> str:
    """``path`` with the value of every ``token`` query parameter hidden (never logged). A
    parameter is a token when its name, decoded as the query parser decodes it
    (``%74oken``, ``TOKEN``), is ``token``."""
    target, sep, query = path.partition("?")
    if not sep:
        return path
    parts = query.split("&")
    for i, part in enumerate(parts):
        key, eq, _value = part.partition("=")
        if eq and unquote_plus(key).strip().lower() == "token":
            parts[i] = f"{key}=***"
    return f"{target}?{'&'.join(parts)}"
