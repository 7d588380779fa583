"""The ``http`` provider against a real aiohttp service on loopback (and a unix socket)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from motanmesh.agent.http_provider import (
    UPSTREAM_CODE,
    HttpProvider,
    attachment_headers,
    header_name,
    method_table,
)
from motanmesh.agent.providers import ProviderError
from motanmesh.transport.endpoint import Endpoint
from motanmesh.transport.server import MotanServer, ServerConnection, host_of
from motanmesh.url import URL
from motanmesh.wire.frame import (
    ERRTYPE_SERVICE,
    FLAG_GZIP,
    FLAG_PROXY,
    FLAG_RESPONSE,
    M_METHOD,
    M_PROCESS_TIME,
    Frame,
    gunzip,
    gzip_body,
    parse_exception,
    parse_frame,
    request_frame,
)
from motanmesh.wire.serialization import BREEZE, SIMPLE, get_serialization
from tests.servers import free_port

SERVICE = "com.example.HttpService"
PEER = "10.0.0.9:4567"
BINARY = b"\xff\xfe\x00bin"

# ---------------------------------------------------------------------------- the HTTP service


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    headers: dict[str, str] = {}
    for k, v in request.headers.items():
        key = k.lower()
        headers[key] = f"{headers[key]}, {v}" if key in headers else v
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": request.rel_url.raw_query_string,
            "headers": headers,
            "body": body.decode("utf-8", "replace"),
        }
    )


def _app(release: asyncio.Event) -> web.Application:
    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"upstream says {code}")

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    async def binary(request: web.Request) -> web.Response:
        return web.Response(body=BINARY)

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/elsewhere"}, text="moved")

    async def big(request: web.Request) -> web.Response:
        return web.Response(text="x" * 5000)

    app = web.Application()
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/binary", binary)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/big", big)
    app.router.add_route("*", "/{tail:.*}", _echo)
    return app


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    """``127.0.0.1:port`` of the HTTP service."""
    release = asyncio.Event()
    runner = web.AppRunner(_app(release), shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"{host}:{port}"
    release.set()
    await runner.cleanup()


@pytest.fixture
async def unix_upstream(tmp_path: Path) -> AsyncIterator[str]:
    """The socket path of the HTTP service served on a unix socket."""
    path = str(tmp_path / "http.sock")
    runner = web.AppRunner(_app(asyncio.Event()), shutdown_timeout=0.5)
    await runner.setup()
    await web.UnixSite(runner, path).start()
    yield path
    await runner.cleanup()


# ---------------------------------------------------------------------------- the provider

Make = Callable[..., Awaitable[HttpProvider]]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """Build and start providers from URL parameters; closed at the end."""
    made: list[HttpProvider] = []

    async def build(http_service: dict[str, Any] | None = None, **params: str) -> HttpProvider:
        url = URL("motan2", "127.0.0.1", 0, SERVICE, "g", params)
        provider = HttpProvider(url, http_service)
        await provider.start()
        made.append(provider)
        return provider

    yield build
    for provider in made:
        await provider.close()


def request(
    method: str, meta: dict[str, str] | None = None, *args: Any, ser: int = SIMPLE, rid: int = 77
) -> Frame:
    body = get_serialization(ser).encode_multi(list(args))
    return request_frame(
        rid, {"M_p": SERVICE, "M_g": "g", M_METHOD: method, **(meta or {})}, body, serialization=ser
    )


async def call(provider: HttpProvider, frame: Frame, peer: str = PEER) -> Frame:
    """Call the provider with a real connection object; the one response it gives."""
    answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    conn = ServerConnection(MotanServer(provider))
    conn.peer = peer
    conn.peer_host = host_of(peer)
    provider(frame, answer.set_result, conn)  # a second answer would raise InvalidStateError
    return parse_frame(await asyncio.wait_for(answer, 10))


def value(response: Frame) -> Any:
    assert response.status == 0, response.metadata
    body = response.body
    if response.flags & FLAG_GZIP:
        body = gunzip(body)
    return get_serialization(response.serialization).decode(body)


def echoed(response: Frame) -> dict[str, Any]:
    data = json.loads(value(response))
    assert isinstance(data, dict)
    return data


def error(response: Frame) -> tuple[int, str, int]:
    assert response.status == 1
    exc = parse_exception(response.metadata["M_e"])
    return exc.errcode, exc.errmsg, exc.errtype


# ---------------------------------------------------------------------------- proxy mode


@pytest.mark.parametrize("ser", [SIMPLE, BREEZE])
async def test_get_with_query(make: Make, upstream: str, ser: int) -> None:
    provider = await make(proxyAddress=upstream)
    frame = request("/api/hello", {"HTTP_QueryString": "a=1&b=x+y%20z"}, ser=ser, rid=991)
    response = await call(provider, frame)
    assert response.request_id == 991
    assert response.serialization == ser
    assert response.flags & FLAG_RESPONSE and response.flags & FLAG_PROXY
    assert response.metadata[UPSTREAM_CODE] == "200"
    assert M_PROCESS_TIME in response.metadata
    got = echoed(response)
    assert (got["method"], got["path"], got["query"]) == ("GET", "/api/hello", "a=1&b=x+y%20z")
    assert got["body"] == ""
    assert provider.pending == 0


@pytest.mark.parametrize("ser", [SIMPLE, BREEZE])
async def test_post_map_is_a_form_body(make: Make, upstream: str, ser: int) -> None:
    provider = await make(proxyAddress=upstream)
    form = {"name": "motan mesh", "lang": "py&go"}
    got = echoed(await call(provider, request("/form", {"HTTP_Method": "POST"}, form, ser=ser)))
    assert got["method"] == "POST"
    assert got["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert sorted(got["body"].split("&")) == ["lang=py%26go", "name=motan+mesh"]
    assert got["query"] == ""


async def test_get_map_joins_the_query(make: Make, upstream: str) -> None:
    provider = await make(proxyAddress=upstream)
    frame = request("/q", {"HTTP_QueryString": "first=1"}, {"k": "v", "n": 3, "ok": True})
    got = echoed(await call(provider, frame))
    assert got["query"] == "first=1&k=v&n=3&ok=true"
    assert got["body"] == ""


async def test_string_and_bytes_bodies(make: Make, upstream: str) -> None:
    provider = await make(proxyAddress=upstream, HTTP_REQUEST_METHOD="put")
    got = echoed(await call(provider, request("/text", None, "héllo")))
    assert (got["method"], got["body"]) == ("PUT", "héllo")
    assert got["headers"]["content-type"] == "text/plain; charset=utf-8"
    got = echoed(await call(provider, request("/raw", {"Content-Type": "x/y"}, b"raw")))
    assert (got["body"], got["headers"]["content-type"]) == ("raw", "x/y")


async def test_method_choice(make: Make, upstream: str) -> None:
    provider = await make(proxyAddress=upstream, HTTP_REQUEST_METHOD="DELETE")
    assert echoed(await call(provider, request("/m")))["method"] == "DELETE"
    got = echoed(await call(provider, request("/m", {"HTTP_Method": "patch"})))
    assert got["method"] == "PATCH"
    plain = await make(proxyAddress=upstream, idleConnectionTimeout="0")
    assert echoed(await call(plain, request("/m")))["method"] == "GET"
    code, msg, _ = error(await call(plain, request("/m", {"HTTP_Method": "GE T"})))
    assert code == 400 and "bad HTTP method" in msg


async def test_path_from_the_method(make: Make, upstream: str) -> None:
    provider = await make(proxyAddress=upstream)
    got = echoed(await call(provider, request("api/v1?x=1", {"HTTP_QueryString": "y=2"})))
    assert (got["path"], got["query"]) == ("/api/v1", "y=2&x=1")


async def test_attachments_become_headers(make: Make, upstream: str) -> None:
    provider = await make(proxyAddress=upstream)
    meta = {
        "M_s": "caller-app",
        "http_X-Trace": "t-1",
        "Biz-Id": "42",
        "host": "192.0.2.1",
        "bad key": "dropped",
        "x-forwarded-for": "192.0.2.7",
        "HTTP_Method": "GET",
    }
    headers = echoed(await call(provider, request("/h", meta)))["headers"]
    assert headers["motan-p"] == SERVICE
    assert headers["motan-g"] == "g"
    assert headers["motan-m"] == "/h"
    assert headers["motan-s"] == "caller-app"
    assert headers["x-trace"] == "t-1"
    assert headers["biz-id"] == "42"
    assert headers["x-forwarded-for"] == "192.0.2.7, 10.0.0.9"
    assert headers["host"] == upstream
    assert "http_method" not in headers and "bad key" not in headers
    assert "http_x-trace" not in headers


async def test_domain_is_the_host_header(make: Make, upstream: str) -> None:
    provider = await make(proxyAddress=upstream, domain="api.example.com")
    headers = echoed(await call(provider, request("/d")))["headers"]
    assert headers["host"] == "api.example.com"


async def test_status_is_upstream_code(make: Make, upstream: str) -> None:
    provider = await make(proxyAddress=upstream)
    response = await call(provider, request("/status/404"))
    assert response.metadata[UPSTREAM_CODE] == "404"
    assert value(response) == "upstream says 404"
    response = await call(provider, request("/redirect"))
    assert (response.metadata[UPSTREAM_CODE], value(response)) == ("302", "moved")


@pytest.mark.parametrize("code", [404, 500])
async def test_enable_http_exception(make: Make, upstream: str, code: int) -> None:
    provider = await make(proxyAddress=upstream, enableHttpException="true")
    response = await call(provider, request(f"/status/{code}", rid=5))
    assert response.request_id == 5
    assert error(response) == (code, f"upstream says {code}", ERRTYPE_SERVICE)
    assert response.metadata[UPSTREAM_CODE] == str(code)
    assert value(await call(provider, request("/status/200"))) == "upstream says 200"


async def test_binary_body_is_bytes(make: Make, upstream: str) -> None:
    provider = await make(proxyAddress=upstream)
    for ser in (SIMPLE, BREEZE):
        assert value(await call(provider, request("/binary", ser=ser))) == BINARY


async def test_unix_socket_upstream(make: Make, unix_upstream: str) -> None:
    provider = await make(proxyAddress=f"unix://{unix_upstream}", domain="svc.local")
    got = echoed(await call(provider, request("/over/unix", None, "hi")))
    assert (got["path"], got["body"], got["headers"]["host"]) == ("/over/unix", "hi", "svc.local")


async def test_gzip_both_ways(make: Make, upstream: str) -> None:
    provider = await make(proxyAddress=upstream, mingzSize="100", HTTP_REQUEST_METHOD="POST")
    frame = request("/gz", None, "z" * 400)
    gzip_body(frame, 100)
    assert frame.flags & FLAG_GZIP
    response = await call(provider, frame)
    assert response.flags & FLAG_GZIP
    assert echoed(response)["body"] == "z" * 400


# ---------------------------------------------------------------------------- URL_FORMAT mode


async def test_url_format(make: Make, upstream: str) -> None:
    provider = await make(URL_FORMAT=f"http://{upstream}/fmt/%s?fixed=1", domain="d.example")
    got = echoed(await call(provider, request("/hello", None, {"k": "v"})))
    assert (got["path"], got["query"]) == ("/fmt/hello", "fixed=1&k=v")
    assert got["headers"]["host"] == "d.example"
    assert got["headers"]["motan-p"] == SERVICE


async def test_http_service_section(make: Make, upstream: str) -> None:
    section = {
        "conf-a": {
            "m1, m2": {"URL_FORMAT": f"http://{upstream}/one/%s", "HTTP_REQUEST_METHOD": "POST"},
            "http_default_motan_method": {"URL_FORMAT": f"http://{upstream}/fallback"},
        },
        "conf-b": {"x": {"URL_FORMAT": "http://192.0.2.1/%s"}},
    }
    provider = await make(section, **{"conf-id": "conf-a"})
    got = echoed(await call(provider, request("m2", None, {"a": "b"})))
    assert (got["method"], got["path"], got["body"]) == ("POST", "/one/m2", "a=b")
    got = echoed(await call(provider, request("other")))
    assert (got["method"], got["path"]) == ("GET", "/fallback")


async def test_url_format_keeps_its_host(make: Make, upstream: str) -> None:
    provider = await make(URL_FORMAT=f"http://{upstream}%s")
    code, msg, _ = error(await call(provider, request("@evil.invalid/x")))
    assert code == 400 and "leaves the host" in msg
    assert echoed(await call(provider, request("/fine")))["path"] == "/fine"


def test_configuration_errors() -> None:
    def build(http_service: dict[str, Any] | None = None, **params: str) -> HttpProvider:
        return HttpProvider(URL("motan2", "", 0, SERVICE, "g", params), http_service)

    with pytest.raises(ProviderError, match="needs proxyAddress"):
        build()
    with pytest.raises(ProviderError, match="more than one %s"):
        build(URL_FORMAT="http://127.0.0.1/%s/%s")
    with pytest.raises(ProviderError, match="not an http"):
        build(URL_FORMAT="ftp://127.0.0.1/%s")
    with pytest.raises(ProviderError, match="expected a mapping"):
        build({"c": {"m": "http://127.0.0.1/"}}, **{"conf-id": "c"})
    with pytest.raises(ProviderError, match="no path"):
        build(proxyAddress="unix://")
    assert build(proxyAddress="127.0.0.1:1").methods == {}


# ---------------------------------------------------------------------------- failures


def _free_port() -> int:
    """A port nothing listens on, and nothing else can be given while this session runs."""
    return free_port()


async def test_upstream_down(make: Make) -> None:
    provider = await make(proxyAddress=f"127.0.0.1:{_free_port()}")
    code, msg, errtype = error(await call(provider, request("/x", rid=12)))
    assert (code, errtype) == (503, ERRTYPE_SERVICE)
    assert msg.startswith("http upstream unavailable")


async def test_timeout(make: Make, upstream: str) -> None:
    provider = await make(proxyAddress=upstream, requestTimeout="100")
    code, msg, _ = error(await call(provider, request("/slow")))
    assert code == 504 and "timeout after 100ms" in msg


async def test_body_over_max_content_length(make: Make, upstream: str) -> None:
    provider = await make(proxyAddress=upstream, maxContentLength="1000")
    code, msg, _ = error(await call(provider, request("/big")))
    assert code == 502 and "over 1000" in msg


async def test_bad_requests(make: Make, upstream: str) -> None:
    provider = await make(proxyAddress=upstream)
    assert error(await call(provider, request("/a", None, "one", "two")))[0] == 400
    garbage = request_frame(3, {M_METHOD: "/a"}, b"\x7f\x7f\x7f", serialization=SIMPLE)
    code, msg, _ = error(await call(provider, garbage))
    assert code == 400 and "do not decode" in msg
    code, msg, _ = error(await call(provider, request("/a", {"HTTP_PROXY": "true"})))
    assert code == 400 and "[head, body]" in msg
    json_frame = request_frame(4, {M_METHOD: "/a"}, b'"x"', serialization=2)  # not served
    code, msg, _ = error(await call(provider, json_frame))
    assert code == 400 and "serializ" in msg


async def test_close_answers_pending_calls(make: Make, upstream: str) -> None:
    provider = await make(proxyAddress=upstream, requestTimeout="60000")
    pending = asyncio.ensure_future(call(provider, request("/slow")))
    while provider.pending == 0:
        await asyncio.sleep(0.01)
    await provider.close()
    code, msg, _ = error(await pending)
    assert code == 503 and "closed" in msg
    assert provider.pending == 0
    assert error(await call(provider, request("/after")))[0] == 503


# ---------------------------------------------------------------------------- pure helpers


def test_header_name_mapping() -> None:
    assert header_name("M_p") == "MOTAN-p"
    assert header_name("M_rid") == "MOTAN-rid"
    assert header_name("http_Accept") == "Accept"
    assert header_name("X-Custom") == "X-Custom"
    for dropped in (
        "HTTP_Method",
        "HTTP_QueryString",
        "HTTP_PROXY",
        "host",
        "http_Host",
        "Content-Length",
        "connection",
        "a b",
        "k:v",
        "",
    ):
        assert header_name(dropped) is None, dropped
    headers = attachment_headers({"ok": "1", "crlf": "a\r\nInjected: 1"}, "127.0.0.1")
    assert dict(headers) == {"ok": "1", "X-Forwarded-For": "127.0.0.1"}


def test_method_table() -> None:
    section = {"c": {"a,b ,": {"URL_FORMAT": "http://h/%s", "n": None}}}
    table = method_table(section, "c")
    assert table == {"a": {"URL_FORMAT": "http://h/%s"}, "b": {"URL_FORMAT": "http://h/%s"}}
    assert method_table(section, "other") == {}
    assert method_table(None, "c") == {}


# ---------------------------------------------------------------------------- end to end


async def test_through_a_motan_server(make: Make, upstream: str) -> None:
    provider = await make(proxyAddress=upstream)
    server = MotanServer(provider)
    host, port = await server.listen_tcp()
    endpoint = Endpoint(f"{host}:{port}", connections=1, request_timeout=5)
    await endpoint.connect()
    try:
        response = await endpoint.call(request("/e2e", {"HTTP_QueryString": "q=1"}, rid=4242))
    finally:
        await endpoint.close()
        await server.close(deadline=0)
    assert response.request_id == 4242
    assert response.metadata[UPSTREAM_CODE] == "200"
    got = echoed(response)
    assert (got["path"], got["query"]) == ("/e2e", "q=1")
    assert got["headers"]["x-forwarded-for"] == "127.0.0.1"
