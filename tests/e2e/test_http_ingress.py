"""HTTP into the mesh, with real processes: an HTTP client → client agent's HTTP proxy (hport)
→ server agent (``http`` provider, transparent mode) → a real HTTP service; plain proxying,
CONNECT tunnels, the proxy's own checks; and ``/proxy_to_rpc`` → server agent (``cgi``
provider) → a real php-fpm."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.e2e.harness import (
    DATA_DIR,
    AgentProcess,
    Mesh,
    Process,
    agent_section,
    child_env,
    embedded_registry,
    free_port,
    refer,
    server_agent_config,
    set_available,
    wait_endpoints,
)
from tests.servers.phpfpm import PhpFpm

WEB = "com.example.e2e.Web"
PHP = "com.example.e2e.Php"
MISSING = "com.example.e2e.Missing"
WEB_GROUP = "e2e-http"
PHP_GROUP = "e2e-php"
DOMAIN = "127.0.0.1"  # requests carry Host 127.0.0.1:<backend port>
MAX_BODY = 300_000
PHP_SCRIPT = """<?php
header("X-Php: rendered");
echo "php says " . ($_GET['requestIdFromClient'] ?? '-') . " " . $_SERVER['QUERY_STRING']
    . " from " . ($_SERVER['MOTAN_M_s'] ?? '?');
"""
LOCATIONS = {
    DOMAIN: [
        {
            "match": "/api",
            "upstream": WEB,
            "rewriteRules": [
                "regexp ^/api/v1/ ^/api/v1/(.*) /api/$1",
                "exact /api/gz ^/api/gz$ /gzip",
            ],
        },
        {"match": "^/missing", "type": "regexp", "upstream": MISSING},
    ]
}


@dataclass
class Setup:
    client: AgentProcess
    server: AgentProcess
    hport: int
    backend: int


def _backend(mesh: Mesh) -> tuple[Process, int]:
    port = free_port()
    argv = [sys.executable, str(DATA_DIR / "http_echo.py"), str(port)]
    proc = Process("http-echo", argv, mesh.workdir, child_env(), mesh.log("http-echo"))
    mesh.procs.append(proc)
    proc.wait_output("http-echo listening on")
    return proc, port


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("http-ingress")
    with PhpFpm(base / "fpm") as fpm:
        script = fpm.script("index.php", PHP_SCRIPT)
        mesh = Mesh(base)
        try:
            _proc, backend = _backend(mesh)
            php_port = free_port()
            services: dict[str, dict[str, Any]] = {
                "web": {
                    "registry": "local",
                    "path": WEB,
                    "group": WEB_GROUP,
                    "export": f"motan2:{free_port()}",
                    "provider": "http",
                    "proxyAddress": f"127.0.0.1:{backend}",
                    "domain": DOMAIN,
                    "requestTimeout": 3000,
                },
                "php": {
                    "registry": "local",
                    "path": PHP,
                    "group": PHP_GROUP,
                    "export": f"motan2:{php_port}",
                    "provider": "cgi",
                    "CGI_HOST": "127.0.0.1",
                    "CGI_PORT": fpm.port,
                    "CGI_SCRIPT_FILENAME": str(script),
                    "CGI_DOCUMENT_ROOT": str(fpm.script_dir),
                    "CGI_REQUEST_METHOD": "GET",
                },
            }
            server_config = server_agent_config("server", mesh.registry, services)
            server_config["http-locations"] = LOCATIONS
            server = mesh.agent("server-agent", server_config)
            set_available(server)
            hport = free_port()
            client_config: dict[str, Any] = {
                "motan-agent": agent_section(
                    "client",
                    httpProxyEnable=True,
                    hport=hport,
                    httpProxyMaxRequestBodySize=MAX_BODY,
                ),
                "motan-registry": {"local": embedded_registry(mesh.registry)},
                "motan-refer": {"php": refer(PHP, PHP_GROUP, requestTimeout=3000)},
                "http-client": {
                    DOMAIN: {
                        "registry": "local",
                        "domain": DOMAIN,
                        "group": WEB_GROUP,
                        "preload": WEB,
                        "requestTimeout": 3000,
                    }
                },
                "http-locations": LOCATIONS,
            }
            client = mesh.agent("client-agent", client_config)
            wait_endpoints(client, "php", {f"127.0.0.1:{php_port}"})
            yield Setup(client, server, hport, backend)
            mesh.check_alive()
        finally:
            mesh.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _get(
    setup: Setup,
    path: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    host: str | None = None,
    decompress: bool = True,
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Host": host or f"127.0.0.1:{setup.backend}"}
    async with (
        aiohttp.ClientSession(auto_decompress=decompress) as session,
        session.request(
            method, f"http://127.0.0.1:{setup.hport}{path}", headers=headers, data=data
        ) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


def test_http_over_motan_reaches_the_service(setup: Setup) -> None:
    status, headers, body = run(_get(setup, "/api/v1/items?x=1&y=a%20b"))
    assert status == 200, body
    assert headers["X-Echo"] == "yes"
    got = json.loads(body)
    assert got["path"] == "/api/items"  # the server agent's rewrite rule
    assert got["query"] == "x=1&y=a%20b"
    assert got["headers"]["motan-p"] == WEB  # it travelled as Motan through both agents
    assert got["headers"]["host"] == f"127.0.0.1:{setup.backend}"
    assert got["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_http_over_motan_post_body(setup: Setup) -> None:
    payload = bytes(range(256)) * 800  # 200 KB, binary
    status, _headers, body = run(_get(setup, "/api/upload", method="POST", data=payload))
    assert status == 200
    got = json.loads(body)
    assert (got["method"], got["length"]) == ("POST", len(payload))


def test_http_over_motan_keeps_encodings_and_statuses(setup: Setup) -> None:
    for path in ("/api/gz", "/gzip"):  # over Motan (rewritten to /gzip), then plain
        status, headers, body = run(_get(setup, path, decompress=False))
        assert status == 200 and headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(body) == b"compressed " * 100
    status, _headers, body = run(_get(setup, "/api/status/418"))
    assert (status, body) == (418, b"status")


def test_no_endpoints_falls_back_to_plain_http(setup: Setup) -> None:
    status, _headers, body = run(_get(setup, "/missing/thing"))
    assert status == 200
    got = json.loads(body)
    assert got["path"] == "/missing/thing"
    assert "motan-p" not in got["headers"]  # straight to the service


def test_plain_proxy_absolute_form(setup: Setup) -> None:
    async def go() -> tuple[int, bytes]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://127.0.0.1:{setup.backend}/plain?q=1",
                proxy=f"http://127.0.0.1:{setup.hport}",
            ) as resp,
        ):
            return resp.status, await resp.read()

    status, body = run(go())
    assert status == 200
    got = json.loads(body)
    assert (got["path"], got["query"]) == ("/plain", "q=1")


def test_request_for_the_proxy_itself_is_400(setup: Setup) -> None:
    status, _headers, _body = run(_get(setup, "/loop", host=f"127.0.0.1:{setup.hport}"))
    assert status == 400


def test_body_over_the_limit_is_413(setup: Setup) -> None:
    status, _headers, _body = run(
        _get(setup, "/api/big", method="POST", data=b"x" * (MAX_BODY + 1))
    )
    assert status == 413
    status, _headers, _body = run(_get(setup, "/api/small", method="POST", data=b"x" * MAX_BODY))
    assert status == 200


def test_connect_tunnel(setup: Setup) -> None:
    with socket.create_connection(("127.0.0.1", setup.hport), timeout=5) as sock:
        target = f"127.0.0.1:{setup.backend}".encode()
        sock.sendall(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /tunnel HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % target)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["path"] == "/tunnel"
    with socket.create_connection(("127.0.0.1", setup.hport), timeout=5) as sock:
        sock.sendall(b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 502")


def test_proxy_to_rpc_reaches_php(setup: Setup) -> None:
    query = f"service={PHP}&method=render&group={PHP_GROUP}&arg_type=string&arg=hello%20php"
    status, headers, body = run(_get(setup, "/proxy_to_rpc?" + query))
    assert status == 200, body
    assert headers["Content-Type"] == "text/plain"
    assert headers["X-Php"] == "rendered"
    assert headers["upstreamCode"] == "200"
    text = body.decode()
    assert text.startswith("php says ") and "hello+php" in text
    assert text.endswith("from e2e-client")  # M_s: the client agent's application


def test_proxy_to_rpc_errors(setup: Setup) -> None:
    status, _h, body = run(_get(setup, "/proxy_to_rpc?service=x"))
    assert status == 400 and b"musn't be empty" in body
    status, _h, body = run(_get(setup, "/proxy_to_rpc?service=x&method=m&arg_type=json"))
    assert (status, body) == (400, b"arg_type json not support now")
    status, _h, body = run(_get(setup, "/proxy_to_rpc?service=nope&method=m&arg_type=string"))
    assert status == 502 and b"cluster not found" in body
