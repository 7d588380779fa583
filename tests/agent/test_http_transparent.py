"""The ``http`` provider's transparent mode (HTTP-over-Motan) against a real aiohttp service."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from motanmesh.agent.http_provider import UPSTREAM_CODE, HttpProvider
from motanmesh.httpmotan.heads import parse_response_head
from motanmesh.transport.server import MotanServer, ServerConnection, host_of
from motanmesh.url import URL
from motanmesh.wire.frame import Frame, parse_exception, parse_frame, request_frame
from motanmesh.wire.serialization import SIMPLE, get_serialization

SERVICE = "com.example.Upstream"
PEER = "10.1.2.3:5555"
PACKED = gzip.compress(b"zipped body " * 20)
LOCATIONS = {
    "api.example.com": [
        {"match": "/api", "upstream": SERVICE},
        {
            "match": "^/old/",
            "type": "regexp",
            "upstream": SERVICE,
            "rewriteRules": ["regexp ^/old/ ^/old/(.*) /new/$1"],
        },
        {
            "match": "/var",
            "type": "exact",
            "upstream": SERVICE,
            "rewriteRules": ["regexpVar ^/var ^/var /by/{name}"],
        },
    ]
}


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": request.rel_url.raw_query_string,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body.decode("utf-8", "replace"),
        },
        headers={"X-Upstream": "yes"},
    )


async def _packed(request: web.Request) -> web.Response:
    return web.Response(body=PACKED, headers={"Content-Encoding": "gzip"})


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status body")


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/packed", _packed)
    app.router.add_route("*", "/api/status/{code}", _status)
    app.router.add_route("*", "/{tail:.*}", _echo)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"{host}:{port}"
    await runner.cleanup()


@pytest.fixture
async def provider(upstream: str) -> AsyncIterator[HttpProvider]:
    p = await _make(upstream)
    yield p
    await p.close()


async def _make(upstream: str, **params: str) -> HttpProvider:
    url = URL(
        "motan2",
        "127.0.0.1",
        0,
        SERVICE,
        "g",
        {"proxyAddress": upstream, "domain": "api.example.com", **params},
    )
    p = HttpProvider(url, http_locations=LOCATIONS)
    await p.start()
    return p


def transparent(path: str, head: bytes, body: bytes = b"", **meta: str) -> Frame:
    data = get_serialization(SIMPLE).encode_multi([head, body])
    metadata = {"M_p": SERVICE, "M_g": "g", "M_m": path, "HTTP_PROXY": "true", **meta}
    return request_frame(41, metadata, data, serialization=SIMPLE)


async def call(provider: HttpProvider, frame: Frame) -> Frame:
    answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    conn = ServerConnection(MotanServer(provider))
    conn.peer = PEER
    conn.peer_host = host_of(PEER)
    provider(frame, answer.set_result, conn)
    return parse_frame(await asyncio.wait_for(answer, 10))


def answer(response: Frame) -> tuple[int, dict[str, str], bytes]:
    assert response.status == 0, response.metadata
    head, body = get_serialization(response.serialization).decode(response.body)
    parsed = parse_response_head(head)
    headers = {k.decode().lower(): v.decode() for k, v in parsed.headers}
    assert response.metadata[UPSTREAM_CODE] == str(parsed.status)
    return parsed.status, headers, body


def echoed(response: Frame) -> dict[str, Any]:
    status, headers, body = answer(response)
    assert status == 200
    assert headers["content-length"] == str(len(body))
    data = json.loads(body)
    assert isinstance(data, dict)
    return data


async def test_request_head_and_body_reach_the_service(provider: HttpProvider) -> None:
    head = (
        b"POST /api/items?a=1&b=%20x HTTP/1.1\r\nHost: api.example.com\r\n"
        b"Content-Type: text/plain\r\nX-Custom: kept\r\nConnection: close\r\n"
        b"Content-Length: 5\r\n\r\n"
    )
    frame = transparent("/api/items", head, b"hello", M_s="caller-app", M_rid="77")
    got = echoed(await call(provider, frame))
    assert (got["method"], got["path"], got["query"]) == ("POST", "/api/items", "a=1&b=%20x")
    assert got["body"] == "hello"
    headers = got["headers"]
    assert headers["host"] == "api.example.com"
    assert headers["x-custom"] == "kept"
    assert headers["content-type"] == "text/plain"
    assert headers["motan-p"] == SERVICE and headers["motan-s"] == "caller-app"
    assert headers["motan-rid"] == "77"
    assert headers["x-forwarded-for"] == "10.1.2.3"
    assert "user-agent" not in headers and "accept-encoding" not in headers
    assert headers.get("connection") != "close"


async def test_response_head_carries_the_service_headers(provider: HttpProvider) -> None:
    head = b"GET /api/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
    status, headers, _body = answer(await call(provider, transparent("/api/x", head)))
    assert status == 200
    assert headers["x-upstream"] == "yes"
    assert headers["content-type"].startswith("application/json")
    assert "transfer-encoding" not in headers


async def test_gzip_body_is_not_decompressed(upstream: str) -> None:
    p = await _make(upstream, enableRewrite="false")
    try:
        head = b"GET /packed HTTP/1.1\r\nHost: api.example.com\r\nAccept-Encoding: gzip\r\n\r\n"
        status, headers, body = answer(await call(p, transparent("/packed", head)))
        assert status == 200
        assert headers["content-encoding"] == "gzip"
        assert body == PACKED
    finally:
        await p.close()


async def test_rewrite_rules(provider: HttpProvider) -> None:
    head = b"GET /old/thing?q=1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
    got = echoed(await call(provider, transparent("/old/thing", head)))
    assert (got["path"], got["query"]) == ("/new/thing", "q=1")
    head = b"GET /var?name=bob HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
    got = echoed(await call(provider, transparent("/var", head)))
    assert (got["path"], got["query"]) == ("/by/bob", "name=bob")


async def test_path_without_location_is_404(provider: HttpProvider) -> None:
    head = b"GET /nowhere HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
    response = await call(provider, transparent("/nowhere", head))
    exc = parse_exception(response.metadata["M_e"])
    assert (exc.errcode, exc.errmsg) == (404, "service not found")


async def test_status_and_http_exception(upstream: str, provider: HttpProvider) -> None:
    head = b"DELETE /api/status/418 HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
    status, _headers, body = answer(await call(provider, transparent("/api/status/418", head)))
    assert (status, body) == (418, b"status body")
    p = await _make(upstream, enableHttpException="true")
    try:
        response = await call(p, transparent("/api/status/418", head))
        exc = parse_exception(response.metadata["M_e"])
        assert (exc.errcode, exc.errmsg) == (418, "status body")
    finally:
        await p.close()


async def test_head_request_keeps_the_length(provider: HttpProvider) -> None:
    head = b"HEAD /api/h HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
    status, headers, body = answer(await call(provider, transparent("/api/h", head)))
    assert status == 200 and body == b""
    assert int(headers["content-length"]) > 0


async def test_bad_transparent_requests(provider: HttpProvider) -> None:
    for frame in (
        transparent("/api/x", b"not an http head"),
        transparent("/api/x", b"GET /api/x HTTP/1.1\r\n\r\n"),  # no Host
    ):
        response = await call(provider, frame)
        assert parse_exception(response.metadata["M_e"]).errcode == 400
    no_args = request_frame(5, {"M_m": "/api", "HTTP_PROXY": "true"}, b"", serialization=SIMPLE)
    assert parse_exception((await call(provider, no_args)).metadata["M_e"]).errcode == 400


async def test_upstream_down_is_503() -> None:
    p = await _make("127.0.0.1:1")
    try:
        head = b"GET /api/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
        response = await call(p, transparent("/api/x", head))
        assert parse_exception(response.metadata["M_e"]).errcode == 503
    finally:
        await p.close()
