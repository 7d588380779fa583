"""Raw HTTP/1.1 heads as HTTP-over-Motan carries them.

A transparent request travels as two arguments, the request head (``GET /p?q HTTP/1.1``, the
header lines, the blank line) and the body; its answer is one value, the list ``[response
head, body]``. Heads are parsed with h11 and written back the same way fasthttp writes them.
The body always travels whole, so the framing headers of a head (``Content-Length``,
``Transfer-Encoding``) and the hop-by-hop ones are replaced when a message is sent on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import h11

__all__ = [
    "HOP_BY_HOP",
    "HeadError",
    "RequestHead",
    "ResponseHead",
    "bodyless",
    "forward_headers",
    "parse_request_head",
    "parse_response_head",
    "request_head_bytes",
    "response_head_bytes",
]

Headers = list[tuple[bytes, bytes]]

#: headers that belong to one connection, never forwarded (RFC 9110 7.6.1, plus framing)
HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"expect",
    }
)
_MAX_HEAD: Final = 1 << 20


class HeadError(ValueError):
    """Bytes that are not an HTTP/1.1 head."""


@dataclass
class RequestHead:
    method: bytes
    target: bytes
    headers: Headers

    @property
    def path(self) -> str:
        return self.target.split(b"?", 1)[0].decode("latin-1")

    @property
    def query(self) -> str:
        return self.target.partition(b"?")[2].decode("latin-1")

    def get(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass
class ResponseHead:
    status: int
    reason: bytes
    headers: Headers


def _complete(data: bytes) -> bytes:
    # a head handed over without its blank line is still a head
    if data.endswith(b"\r\n\r\n") or data.endswith(b"\n\n"):
        return data
    return data.rstrip(b"\r\n") + b"\r\n\r\n"


def parse_request_head(data: bytes) -> RequestHead:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
    try:
        conn.receive_data(_complete(data))
        event = conn.next_event()
    except h11.RemoteProtocolError as e:
        raise HeadError(f"bad HTTP request head: {e}") from e
    if not isinstance(event, h11.Request):
        raise HeadError("incomplete HTTP request head")
    return RequestHead(bytes(event.method), bytes(event.target), list(event.headers.raw_items()))


def parse_response_head(data: bytes) -> ResponseHead:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "h")]))
    conn.send(h11.EndOfMessage())
    try:
        conn.receive_data(_complete(data))
        event = conn.next_event()
        while isinstance(event, h11.InformationalResponse):
            event = conn.next_event()
    except h11.RemoteProtocolError as e:
        raise HeadError(f"bad HTTP response head: {e}") from e
    if not isinstance(event, h11.Response):
        raise HeadError("incomplete HTTP response head")
    return ResponseHead(event.status_code, bytes(event.reason), list(event.headers.raw_items()))


def _lines(headers: Headers) -> bytes:
    return b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers)


def request_head_bytes(method: bytes, target: bytes, headers: Headers) -> bytes:
    return b"%s %s HTTP/1.1\r\n%s\r\n" % (method, target, _lines(headers))


def response_head_bytes(status: int, reason: bytes, headers: Headers) -> bytes:
    return b"HTTP/1.1 %d %s\r\n%s\r\n" % (status, reason, _lines(headers))


def forward_headers(headers: Headers, *, keep_length: bool = False) -> Headers:
    """``headers`` without the hop-by-hop ones, nor the names a ``Connection`` header lists,
    nor ``Content-Length`` (unless ``keep_length``: an answer to HEAD, a 204 or a 304)."""
    listed = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    out: Headers = []
    for name, value in headers:
        low = name.lower()
        if low == b"content-length":
            if keep_length:
                out.append((name, value))
        elif low not in HOP_BY_HOP and low not in listed:
            out.append((name, value))
    return out


def bodyless(method: bytes, status: int) -> bool:
    """Whether a response carries no body whatever its ``Content-Length`` says."""
    return method == b"HEAD" or status in (204, 304) or 100 <= status < 200
