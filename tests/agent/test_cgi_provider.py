"""The ``cgi`` provider against a real php-fpm on loopback, and the FastCGI codec."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from motanmesh.agent import fastcgi
from motanmesh.agent.cgi_provider import CgiProvider, parse_cgi_response, query_of
from motanmesh.transport.server import MotanServer, ServerConnection, host_of
from motanmesh.url import URL
from motanmesh.wire.frame import Frame, parse_exception, parse_frame, request_frame
from motanmesh.wire.serialization import BREEZE, SIMPLE, get_serialization
from tests.servers.phpfpm import PhpFpm

SERVICE = "com.example.php.Service"
ECHO_PHP = """<?php
$status = $_GET['status'] ?? $_POST['status'] ?? null;
if ($status) { header("Status: $status"); }
header("X-Php: yes");
$motan = [];
foreach ($_SERVER as $k => $v) { if (strncmp($k, 'MOTAN_', 6) === 0) { $motan[$k] = $v; } }
echo json_encode([
    'method' => $_SERVER['REQUEST_METHOD'] ?? '',
    'software' => $_SERVER['SERVER_SOFTWARE'] ?? '',
    'extra' => $_SERVER['APP_ENV'] ?? '',
    'query' => $_SERVER['QUERY_STRING'] ?? '',
    'get' => $_GET,
    'post' => $_POST,
    'content_type' => $_SERVER['CONTENT_TYPE'] ?? '',
    'motan' => $motan,
]);
"""
SLOW_PHP = "<?php usleep(1500000); echo 'late';"


@pytest.fixture(scope="module")
def fpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhpFpm]:
    with PhpFpm(tmp_path_factory.mktemp("fpm")) as server:
        server.script("echo.php", ECHO_PHP)
        server.script("slow.php", SLOW_PHP)
        yield server


@pytest.fixture
async def made() -> AsyncIterator[list[CgiProvider]]:
    providers: list[CgiProvider] = []
    yield providers
    for p in providers:
        await p.close()


def make(made: list[CgiProvider], fpm: PhpFpm, script: str, **params: str) -> CgiProvider:
    base = {
        "CGI_HOST": "127.0.0.1",
        "CGI_PORT": str(fpm.port),
        "CGI_SCRIPT_FILENAME": str(fpm.script_dir / script),
        "CGI_DOCUMENT_ROOT": str(fpm.script_dir),
        "CGI_REQUEST_METHOD": "GET",
    }
    provider = CgiProvider(URL("motan2", "127.0.0.1", 0, SERVICE, "g", {**base, **params}))
    made.append(provider)
    return provider


def request(*args: Any, ser: int = SIMPLE, rid: int = 1234, **meta: str) -> Frame:
    body = get_serialization(ser).encode_multi(list(args))
    metadata = {"M_p": SERVICE, "M_g": "g", "M_m": "render", **meta}
    return request_frame(rid, metadata, body, serialization=ser)


async def call(provider: CgiProvider, frame: Frame) -> Frame:
    answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    conn = ServerConnection(MotanServer(provider))
    conn.peer = "127.0.0.1:40000"
    conn.peer_host = host_of(conn.peer)
    provider(frame, answer.set_result, conn)
    return parse_frame(await asyncio.wait_for(answer, 10))


def page(response: Frame) -> dict[str, Any]:
    assert response.status == 0, response.metadata
    text = get_serialization(response.serialization).decode(response.body)
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("ser", [SIMPLE, BREEZE])
async def test_get_map_is_the_query(made: list[CgiProvider], fpm: PhpFpm, ser: int) -> None:
    provider = make(made, fpm, "echo.php", CGI_APP_ENV="test")
    response = await call(provider, request({"name": "a b", "x": "1&2"}, ser=ser, M_s="app"))
    got = page(response)
    assert got["method"] == "GET"
    assert got["software"] == "Motan / CGI"
    assert got["extra"] == "test"
    assert got["get"] == {"requestIdFromClient": "1234", "name": "a b", "x": "1&2"}
    assert got["post"] == []
    assert got["motan"]["MOTAN_M_p"] == SERVICE
    assert got["motan"]["MOTAN_M_s"] == "app"
    assert got["motan"]["MOTAN_M_m"] == "render"
    assert response.metadata["upstreamCode"] == "200"
    assert response.metadata["X-Php"] == "yes"
    assert response.metadata["Content-type"].startswith("text/html")


async def test_post_map_is_a_form_body(made: list[CgiProvider], fpm: PhpFpm) -> None:
    provider = make(made, fpm, "echo.php", CGI_REQUEST_METHOD="POST")
    got = page(await call(provider, request({"k": "v=1"}, rid=9)))
    assert got["method"] == "POST"
    assert got["post"] == {"requestIdFromClient": "9", "k": "v=1"}
    assert got["query"] == ""
    assert got["content_type"] == "application/x-www-form-urlencoded"


async def test_string_argument_and_no_argument(made: list[CgiProvider], fpm: PhpFpm) -> None:
    provider = make(made, fpm, "echo.php")
    got = page(await call(provider, request("free text", rid=5)))
    assert got["query"] == "requestIdFromClient=5&free+text"
    got = page(await call(provider, request()))
    assert got["query"] == ""


async def test_status_header(made: list[CgiProvider], fpm: PhpFpm) -> None:
    provider = make(made, fpm, "echo.php")
    response = await call(provider, request({"status": "404 Not Found"}))
    assert response.status == 0
    assert response.metadata["upstreamCode"] == "404"
    assert "Status" not in response.metadata


async def test_concurrent_calls(made: list[CgiProvider], fpm: PhpFpm) -> None:
    provider = make(made, fpm, "echo.php")
    frames = [request({"i": str(i)}, rid=100 + i) for i in range(20)]
    responses = await asyncio.gather(*(call(provider, f) for f in frames))
    for i, response in enumerate(responses):
        assert response.request_id == 100 + i
        assert page(response)["get"]["i"] == str(i)


async def test_failures(made: list[CgiProvider], fpm: PhpFpm, tmp_path: Path) -> None:
    down = make(made, fpm, "echo.php", CGI_PORT="1")
    exc = parse_exception((await call(down, request({}))).metadata["M_e"])
    assert exc.errcode == 503 and "cannot connect" in exc.errmsg
    slow = make(made, fpm, "slow.php", requestTimeout="300")
    exc = parse_exception((await call(slow, request({}))).metadata["M_e"])
    assert exc.errcode == 504
    missing = make(made, fpm, "missing.php")
    response = await call(missing, request({}))
    assert response.metadata["upstreamCode"] == "404"  # php-fpm: "Primary script unknown"
    garbage = request_frame(3, {"M_p": SERVICE}, b"\x7f\x7f", serialization=SIMPLE)
    assert parse_exception((await call(down, garbage)).metadata["M_e"]).errcode == 400


def test_query_of() -> None:
    assert query_of(7, None) == ""
    assert query_of(7, {"a": "x y", "b": 1}) == "requestIdFromClient=7&a=x+y&b=1"
    assert query_of(7, "a&b") == "requestIdFromClient=7&a%26b"


def test_parse_cgi_response() -> None:
    status, headers, body = parse_cgi_response(
        b"Status: 302 Found\r\nLocation: /x\r\nX-A:  b \r\n\r\nbody\r\n\r\nmore"
    )
    assert (status, headers, body) == (302, {"Location": "/x", "X-A": "b"}, b"body\r\n\r\nmore")
    assert parse_cgi_response(b"Content-Type: text/plain\n\nhi") == (
        200,
        {"Content-Type": "text/plain"},
        b"hi",
    )
    with pytest.raises(ValueError, match="Cannot parse"):
        parse_cgi_response(b"no header block")
    with pytest.raises(ValueError, match="Status"):
        parse_cgi_response(b"Status: abc\r\n\r\n")


def test_fastcgi_records_round_trip() -> None:
    long_value = "v" * 300
    params = fastcgi.encode_params({"A": "1", "LONG": long_value})
    assert params[:2] == b"\x01\x01"
    assert params[4:12] == b"\x04\x80\x00\x01\x2c" + b"LON"  # 4-byte length for 300
    data = fastcgi.encode_request({"A": "1"}, b"x" * 70000)
    assert data[1] == fastcgi.BEGIN_REQUEST
    # a server answer split at every byte: STDOUT twice, STDERR, END_REQUEST
    answer = (
        fastcgi._record(fastcgi.STDOUT, b"Status: 200\r\n\r\nhel")
        + fastcgi._record(fastcgi.STDERR, b"warn")
        + fastcgi._record(fastcgi.STDOUT, b"lo")
        + fastcgi._record(fastcgi.END_REQUEST, b"\x00\x00\x00\x07\x00\x00\x00\x00")
    )
    reader = fastcgi.ResponseReader()
    for i in range(len(answer)):
        reader.feed(answer[i : i + 1])
    assert reader.done
    result = reader.response()
    assert (result.stdout, result.stderr, result.app_status) == (
        b"Status: 200\r\n\r\nhello",
        b"warn",
        7,
    )
    refused = fastcgi.ResponseReader()
    with pytest.raises(fastcgi.FastCgiError, match="overloaded"):
        refused.feed(fastcgi._record(fastcgi.END_REQUEST, b"\x00\x00\x00\x00\x02\x00\x00\x00"))
    with pytest.raises(fastcgi.FastCgiError, match="over 10 bytes"):
        fastcgi.ResponseReader(max_size=10).feed(fastcgi._record(fastcgi.STDOUT, b"y" * 11))
