"""The Motan calls of the HTTP proxy: ``/proxy_to_rpc`` and HTTP-over-Motan.

Both build a request frame here, send it through a cluster and turn the answer into an HTTP
response (:class:`Reply`). Only these calls decode bodies: the HTTP request or its answer
*is* the argument or the value.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from motanmesh.cluster.cluster import Cluster
from motanmesh.cluster.errors import E_NO_ENDPOINTS, call_error_response
from motanmesh.httpmotan.heads import (
    HeadError,
    bodyless,
    forward_headers,
    parse_response_head,
)
from motanmesh.wire.frame import (
    FLAG_GZIP,
    M_EXCEPTION,
    M_GROUP,
    M_METHOD,
    M_PATH,
    M_PROXY_PROTOCOL,
    M_SOURCE,
    Frame,
    gunzip,
    parse_exception,
    request_frame,
)
from motanmesh.wire.serialization import SIMPLE, get_serialization

__all__ = [
    "E_NO_ENDPOINTS",
    "NoEndpoints",
    "Reply",
    "RpcError",
    "call_cluster",
    "http_over_motan_frame",
    "http_reply",
    "rpc_frame",
    "rpc_reply",
]

Headers = list[tuple[bytes, bytes]]
HTTP_PROXY: Final = "HTTP_PROXY"
SERVER_NAME: Final = b"motan"
_TOKEN_RE: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE_RE: Final = re.compile(rb"[\r\n\x00]")
_ids = itertools.count(1)


@dataclass
class Reply:
    """An HTTP response to write: status, headers (``Content-Length`` added on writing
    unless ``framed``), body."""

    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    reason: bytes = b""
    #: the headers already say how long the body is (an answer to HEAD, a 204, a 304)
    framed: bool = False


class RpcError(Exception):
    """A call that ended in a Motan exception; ``code`` is its errcode."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class NoEndpoints(RpcError):  # noqa: N818 - named after the Go agent's error 1001
    pass


def error_reply(status: int, message: str) -> Reply:
    return Reply(status, [(b"Server", SERVER_NAME)], message.encode("utf-8", "replace"))


def rpc_frame(service: str, method: str, group: str, arg: str, headers: Headers) -> Frame:
    """``/proxy_to_rpc``: one string argument; the HTTP headers become attachments."""
    meta = {M_GROUP: group, M_PATH: service, M_METHOD: method, M_PROXY_PROTOCOL: "motan2"}
    for name, value in headers:
        if value:
            meta[name.decode("latin-1")] = value.decode("latin-1")
    body = get_serialization(SIMPLE).encode_multi([arg])
    return request_frame(next(_ids), meta, body, serialization=SIMPLE)


def http_over_motan_frame(
    upstream: str, path: str, head: bytes, body: bytes, application: str, serialization: int
) -> Frame:
    meta = {M_PATH: upstream, M_METHOD: path, HTTP_PROXY: "true"}
    if application:
        meta[M_SOURCE] = application
    data = get_serialization(serialization).encode_multi([head, body])
    return request_frame(next(_ids), meta, data, serialization=serialization)


async def call_cluster(cluster: Cluster, frame: Frame, changes: dict[str, str]) -> Any:
    """Send ``frame``; the decoded value of a normal answer and its attachments. Raises
    :class:`RpcError` (:class:`NoEndpoints` for error 1001)."""
    try:
        response = await cluster.request(frame, changes)
    except Exception as e:
        response = call_error_response(frame, e)
    return decode_response(response)


def decode_response(response: Frame) -> tuple[Any, dict[str, str]]:
    if response.status:
        text = response.metadata.get(M_EXCEPTION, "")
        exc = parse_exception(text) if text else None
        code = exc.errcode if exc else 0
        message = exc.errmsg if exc else "exception response without M_e"
        raise (NoEndpoints if code == E_NO_ENDPOINTS else RpcError)(code, message)
    body = response.body
    try:
        if response.flags & FLAG_GZIP:
            body = gunzip(body)
        value = get_serialization(response.serialization).decode(body) if body else None
    except Exception as e:
        raise RpcError(0, f"get response body failed: {e}") from e
    return value, response.metadata


def _valid_header(name: str, value: str) -> tuple[bytes, bytes] | None:
    n, v = name.encode("latin-1", "replace"), value.encode("latin-1", "replace")
    if not _TOKEN_RE.match(n) or _BAD_VALUE_RE.search(v):
        return None
    return n, v


def rpc_reply(value: Any, attachments: Mapping[str, str]) -> Reply:
    """``/proxy_to_rpc``'s answer: the value as text, the attachments as headers."""
    headers = [h for k, v in attachments.items() if (h := _valid_header(k, v)) is not None]
    headers = [h for h in headers if h[0].lower() != b"content-type"]
    headers.append((b"Content-Type", b"text/plain"))
    if isinstance(value, bytes):
        body = value
    elif isinstance(value, str):
        body = value.encode("utf-8", "surrogateescape")
    elif value is None:
        body = b""
    else:
        body = json.dumps(value, ensure_ascii=False, default=str).encode()
    return Reply(200, headers, body)


def http_reply(value: Any, method: bytes) -> Reply:
    """An HTTP-over-Motan answer ``[head, body]`` as the HTTP response to write."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise RpcError(0, "HTTP-over-Motan answer is not [head, body]")
    head, body = (v.encode("utf-8", "surrogateescape") if isinstance(v, str) else v for v in value)
    if not isinstance(head, bytes) or not isinstance(body, bytes | type(None)):
        raise RpcError(0, "HTTP-over-Motan answer is not [head, body] bytes")
    try:
        parsed = parse_response_head(head)
    except HeadError as e:
        raise RpcError(0, str(e)) from e
    empty = bodyless(method, parsed.status)
    headers = forward_headers(parsed.headers, keep_length=empty)
    return Reply(parsed.status, headers, b"" if empty else (body or b""), parsed.reason, empty)
