"""The HTTP proxy server in-process, against a real aiohttp service, over raw sockets: what an
HTTP client may send (pipelining, chunked bodies, ``Expect: 100-continue``, garbage)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from motanmesh.agent.router import ClientRouter
from motanmesh.cluster.cluster import Cluster
from motanmesh.ingress.http import HttpDomains, HttpProxyServer
from motanmesh.url import URL

LIMIT = 1000


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"path": request.path_qs, "length": len(body)})


@pytest.fixture
async def backend() -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _echo)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield int(runner.addresses[0][1])
    await runner.cleanup()


async def _no_cluster(refer: URL) -> Cluster:
    raise AssertionError(f"no cluster expected for {refer.path}")


@pytest.fixture
async def proxy() -> AsyncIterator[int]:
    server = HttpProxyServer(
        host="127.0.0.1",
        port=0,
        params={"httpProxyMaxRequestBodySize": str(LIMIT)},
        route=ClientRouter().route,
        domains=HttpDomains({}, {}, _no_cluster),
    )
    _host, port = await server.start()
    yield port
    await server.close()


async def _exchange(port: int, data: bytes, answers: int = 1) -> list[tuple[bytes, bytes]]:
    """Send ``data``; read ``answers`` responses (head, body) framed by Content-Length."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    out = []
    try:
        for _ in range(answers):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
            out.append((head, body))
    finally:
        writer.close()
    return out


async def test_pipelined_requests_answered_in_order(proxy: int, backend: int) -> None:
    host = b"127.0.0.1:%d" % backend
    data = b"".join(b"GET /r%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, host) for i in range(3))
    answers = await _exchange(proxy, data, 3)
    assert [json.loads(body)["path"] for _h, body in answers] == ["/r0", "/r1", "/r2"]


async def test_chunked_body_and_100_continue(proxy: int, backend: int) -> None:
    host = b"127.0.0.1:%d" % backend
    data = (
        b"POST /up HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" % host
    )
    ((_head, body),) = await _exchange(proxy, data)
    assert json.loads(body) == {"path": "/up", "length": 11}
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy)
    writer.write(
        b"PUT /cont HTTP/1.1\r\nHost: %s\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        % host
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert interim.startswith(b"HTTP/1.1 100")
    writer.write(b"abc")
    final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert final.startswith(b"HTTP/1.1 200")
    writer.close()


async def test_body_limit_with_and_without_length(proxy: int, backend: int) -> None:
    host = b"127.0.0.1:%d" % backend
    too_long = b"POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n" % (host, LIMIT + 1)
    ((head, _body),) = await _exchange(proxy, too_long)
    assert head.startswith(b"HTTP/1.1 413")
    chunk = b"%x\r\n%s\r\n" % (LIMIT + 1, b"x" * (LIMIT + 1))
    chunked = b"POST / HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n%s0\r\n\r\n"
    ((head, _body),) = await _exchange(proxy, chunked % (host, chunk))
    assert head.startswith(b"HTTP/1.1 413")


async def test_garbage_is_400_and_the_server_goes_on(proxy: int, backend: int) -> None:
    ((head, _body),) = await _exchange(proxy, b"NOT HTTP AT ALL\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    ((head, body),) = await _exchange(
        proxy, b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % backend
    )
    assert head.startswith(b"HTTP/1.1 200") and json.loads(body)["path"] == "/x"


async def test_unreachable_host_is_502(proxy: int) -> None:
    ((head, _body),) = await _exchange(proxy, b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 502")
    assert b"Server: motan" in head


async def test_proxy_to_rpc_without_refers(proxy: int) -> None:
    target = b"/proxy_to_rpc?service=a.B&method=m&arg_type=string&arg=x"
    ((head, body),) = await _exchange(proxy, b"GET %s HTTP/1.1\r\nHost: h\r\n\r\n" % target)
    assert head.startswith(b"HTTP/1.1 502") and b"cluster not found" in body
    form = b"service=a.B&method=m&arg_type=json"
    post = (
        b"POST /proxy_to_rpc HTTP/1.1\r\nHost: h\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s"
    )
    ((head, body),) = await _exchange(proxy, post % (len(form), form))
    assert head.startswith(b"HTTP/1.1 400") and body == b"arg_type json not support now"


def test_http_client_entries(caplog: pytest.LogCaptureFixture) -> None:
    domains = HttpDomains(
        {
            "bad-ser": {"serialization": "nope"},
            "bad-port": {"port": "x"},
            "not-a-map": "x",
            "api": {"domain": "api.local", "group": "g", "registry": "r", "preload": "a.B,c.D"},
        },
        {"api.local": [{"match": "/v1", "upstream": "a.B"}]},
        _no_cluster,
    )
    assert list(domains.domains) == ["api.local"]
    assert sum("left out" in r.message for r in caplog.records) == 3
    domain = domains.domains["api.local"]
    assert (domain.refer.group, domain.refer.registry, domain.preload) == (
        "g",
        ["r"],
        ["a.B", "c.D"],
    )
    assert domain.refer.conf_id == "api"
    assert (domain.upstream("/v1/x"), domain.upstream("/v2")) == ("a.B", "")


async def test_default_domain_and_no_endpoints_fallback(backend: int) -> None:
    default = f"127.0.0.1:{backend}"
    built: list[Cluster] = []

    async def empty_cluster(refer: URL) -> Cluster:
        cluster = Cluster(refer, [])  # no registry: no provider, every call is "no endpoints"
        await cluster.start()
        built.append(cluster)
        return cluster

    server = HttpProxyServer(
        host="127.0.0.1",
        port=0,
        params={"httpProxyDefaultDomain": default},
        route=ClientRouter().route,
        domains=HttpDomains(
            {"d": {"domain": default, "connectTimeout": "50"}},
            {default: [{"match": "/rpc", "upstream": "com.example.Missing"}]},
            empty_cluster,
        ),
    )
    _host, port = await server.start()
    try:
        for path in (b"/plain", b"/rpc/x"):  # no location; a location without endpoints
            request = b"GET %s HTTP/1.1\r\nHost: unknown.example\r\n\r\n" % path
            ((head, body),) = await _exchange(port, request)
            assert head.startswith(b"HTTP/1.1 200"), head
            assert json.loads(body)["path"] == path.decode()
        assert [c.refer.path for c in built] == ["com.example.Missing"]
        assert built[0].refer.get("domain") == default
    finally:
        await server.close()
