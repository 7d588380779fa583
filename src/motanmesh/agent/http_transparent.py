"""The ``http`` provider's transparent mode: HTTP-over-Motan requests (``HTTP_PROXY=true``).

A client agent's HTTP forward proxy sends an HTTP request it received as two arguments, the
raw request head and the body (:mod:`motanmesh.httpmotan.heads`). Here, as the Go agent's
``DoTransparentProxy``:

* the path is the request's ``M_m``, rewritten by the ``http-locations`` of the service's
  ``domain`` (``enableRewrite``, default true; a path no location matches is answered 404);
  the query, the method and the headers come from the head (``Host`` stays the caller's);
* ``M_p``, ``M_m``, ``M_md``, ``M_g``, ``M_pp``, ``M_v``, ``M_mdu``, ``M_s``, ``M_rid`` and
  ``M_tmo`` become ``MOTAN-p`` ... headers; ``X-Forwarded-For`` is the caller when absent;
* the request goes to ``proxySchema://proxyAddress``, its body and encoding untouched;
* the answer is ``[response head, body]`` with attachment ``upstreamCode`` = the status (with
  ``enableHttpException`` a status of 400 or more is an exception response instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import yarl
from multidict import CIMultiDict

from motanmesh.httpmotan.heads import (
    HeadError,
    RequestHead,
    bodyless,
    forward_headers,
    parse_request_head,
    response_head_bytes,
)
from motanmesh.httpmotan.locations import LocationMatcher
from motanmesh.wire.frame import Frame

__all__ = ["INNER_HEADERS", "TransparentError", "TransparentRequest", "prepare", "response_value"]

#: the attachments a transparent request passes on as headers
INNER_HEADERS: Final = {
    "M_p": "MOTAN-p",
    "M_m": "MOTAN-m",
    "M_md": "MOTAN-md",
    "M_g": "MOTAN-g",
    "M_pp": "MOTAN-pp",
    "M_v": "MOTAN-v",
    "M_mdu": "MOTAN-mdu",
    "M_s": "MOTAN-s",
    "M_rid": "MOTAN-rid",
    "M_tmo": "MOTAN-tmo",
}
E_BAD_REQUEST: Final = 400
E_NOT_FOUND: Final = 404


class TransparentError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class TransparentRequest:
    method: str
    url: yarl.URL
    headers: CIMultiDict[str]
    body: bytes
    head_method: bytes


def _as_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if value is None:
        return b""
    raise TransparentError(E_BAD_REQUEST, f"{what}: expected bytes, got {type(value).__name__}")


def prepare(
    frame: Frame,
    args: list[Any],
    base: str,
    locations: LocationMatcher | None,
    caller_ip: str,
) -> TransparentRequest:
    """The HTTP request to send for a transparent call (``locations`` ``None``: no rewrite)."""
    if not args or len(args) > 2:
        raise TransparentError(
            E_BAD_REQUEST, f"transparent HTTP call needs [head, body], got {len(args)} arguments"
        )
    raw_head = _as_bytes(args[0], "request head")
    body = _as_bytes(args[1], "request body") if len(args) > 1 else b""
    try:
        head: RequestHead = parse_request_head(raw_head)
    except HeadError as e:
        raise TransparentError(E_BAD_REQUEST, str(e)) from e
    meta = frame.metadata
    path = meta.get("M_m") or head.path
    query = head.query
    if locations is not None:
        found = locations.pick(path, query if locations.needs_query else "", True)
        if found is None:
            raise TransparentError(E_NOT_FOUND, "service not found")
        path = found[1]
    if not path.startswith("/"):
        path = "/" + path
    headers: CIMultiDict[str] = CIMultiDict(
        (k.decode("latin-1"), v.decode("latin-1")) for k, v in forward_headers(head.headers)
    )
    for key, name in INNER_HEADERS.items():
        value = meta.get(key)
        if value is not None and "\r" not in value and "\n" not in value:
            headers[name] = value
    if caller_ip and "X-Forwarded-For" not in headers:
        headers["X-Forwarded-For"] = caller_ip
    target = base + path + ("?" + query if query else "")
    try:
        url = yarl.URL(target, encoded=True)
    except ValueError as e:
        raise TransparentError(E_BAD_REQUEST, f"bad URL {target!r}: {e}") from e
    return TransparentRequest(head.method.decode("latin-1"), url, headers, body, head.method)


def response_value(
    request: TransparentRequest,
    status: int,
    reason: str,
    raw_headers: tuple[tuple[bytes, bytes], ...],
    content: bytes,
) -> list[bytes]:
    """``[response head, body]`` for an upstream answer."""
    empty = bodyless(request.head_method, status)
    headers = forward_headers(list(raw_headers), keep_length=empty)
    if not empty:
        headers.append((b"Content-Length", b"%d" % len(content)))
    head = response_head_bytes(status, reason.encode("latin-1", "replace"), headers)
    return [head, content]
