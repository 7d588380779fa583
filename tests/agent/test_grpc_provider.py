"""The ``grpc`` provider against a real grpcio server on loopback (generic handler, bytes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest

from motanmesh.agent.agent import _grpc_provider
from motanmesh.agent.grpc_provider import GrpcProvider, channel_target
from motanmesh.agent.providers import ProviderError, create_provider, register_provider
from motanmesh.transport.server import MotanServer, ServerConnection, host_of
from motanmesh.url import URL
from motanmesh.wire.frame import (
    FLAG_RESPONSE,
    M_METHOD,
    M_PATH,
    M_TIMEOUT,
    Frame,
    parse_exception,
    parse_frame,
    request_frame,
)

SERVICE = "pkg.Echo"


class _Backend(grpc.GenericRpcHandler):  # type: ignore[misc]
    """``/pkg.Echo/Say`` echoes with the metadata and deadline it saw; ``Fail`` fails."""

    def service(self, details: Any) -> Any:
        if details.method == "/pkg.Echo/Say":
            return grpc.unary_unary_rpc_method_handler(self.say)
        if details.method == "/pkg.Echo/Fail":
            return grpc.unary_unary_rpc_method_handler(self.fail)
        return None

    async def say(self, request: bytes, context: Any) -> bytes:
        seen = dict(context.invocation_metadata())
        remaining = context.time_remaining()
        context.set_trailing_metadata((("x-tail", "t"), ("x-raw-bin", b"\xff")))
        return b"|".join(
            [
                request,
                seen.get("x-user", "").encode(),
                seen.get("motan-s", "").encode(),
                str(round(remaining)).encode(),
                seen.get("x-forwarded-for", "").encode(),
            ]
        )

    async def fail(self, request: bytes, context: Any) -> bytes:
        await context.abort(
            grpc.StatusCode.NOT_FOUND, "no " + request.decode(), (("x-why", "gone"),)
        )
        raise AssertionError("unreachable")


@pytest.fixture
async def backend() -> AsyncIterator[int]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_Backend(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


def _url(port: int, **params: str) -> URL:
    return URL("motan2", "127.0.0.1", 0, SERVICE, "g", {"proxy": f"grpc:{port}", **params})


async def _call(provider: GrpcProvider, frame: Frame) -> Frame:
    answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    conn = ServerConnection(MotanServer(provider))
    conn.peer = "10.1.2.3:4567"
    conn.peer_host = host_of(conn.peer)
    provider(frame, answer.set_result, conn)
    return parse_frame(await asyncio.wait_for(answer, 10))


def _request(
    method: str, body: bytes, serialization: int = 1, meta: dict[str, str] | None = None
) -> Frame:
    return request_frame(
        77, {M_PATH: SERVICE, M_METHOD: method, **(meta or {})}, body, serialization=serialization
    )


@pytest.fixture
async def provider(backend: int) -> AsyncIterator[GrpcProvider]:
    p = GrpcProvider(_url(backend, requestTimeout="4000"))
    await p.start()
    try:
        yield p
    finally:
        await p.close()


async def test_unary_call_with_metadata_and_deadline(provider: GrpcProvider) -> None:
    meta = {"M_s": "app-a", "x-user": "u1", M_TIMEOUT: "2000"}
    response = await _call(provider, _request("Say", b"\x0a\x01x", meta=meta))
    assert response.flags & FLAG_RESPONSE and response.status == 0
    assert (response.request_id, response.serialization) == (77, 1)
    assert response.body == b"\x0a\x01x|u1|app-a|2|10.1.2.3"
    assert response.metadata["x-tail"] == "t"
    assert response.metadata["x-raw-bin"] == "/w=="
    assert "M_pt" in response.metadata
    # without M_tmo: requestTimeout
    response = await _call(provider, _request("Say", b"y"))
    assert response.body.split(b"|")[3] == b"4"


async def test_status_becomes_an_exception_response(provider: GrpcProvider) -> None:
    response = await _call(provider, _request("Fail", b"thing"))
    assert response.status == 1 and response.body == b""
    error = parse_exception(response.metadata["M_e"])
    assert (error.errcode, error.errmsg, error.errtype) == (404, "no thing", 2)
    assert response.metadata["grpc-status"] == "5"
    assert response.metadata["x-why"] == "gone"
    response = await _call(provider, _request("Missing", b""))
    assert response.metadata["grpc-status"] == "12"
    assert parse_exception(response.metadata["M_e"]).errcode == 501


async def test_other_serializations_are_refused(provider: GrpcProvider) -> None:
    response = await _call(provider, _request("Say", b"\x00", serialization=6))
    error = parse_exception(response.metadata["M_e"])
    assert (error.errcode, error.errtype) == (400, 1)
    assert "grpc-pb" in error.errmsg


async def test_unreachable_backend_and_closed_provider(unused_tcp_port: int) -> None:
    p = GrpcProvider(_url(unused_tcp_port))
    await p.start()
    try:
        response = await _call(p, _request("Say", b"x"))
        assert response.metadata["grpc-status"] == "14"
        error = parse_exception(response.metadata["M_e"])
        assert (error.errcode, error.errtype) == (503, 1)
    finally:
        await p.close()
    response = await _call(p, _request("Say", b"x"))
    assert parse_exception(response.metadata["M_e"]).errcode == 503


@pytest.mark.parametrize(
    ("params", "target"),
    [
        ({"proxy": "grpc:50051"}, "127.0.0.1:50051"),
        ({"proxy": "grpc:50051", "proxy.host": "::1"}, "[::1]:50051"),
        ({"proxy": "grpc:1", "proxy.host": "unix:///run/app.sock"}, "unix:/run/app.sock"),
        ({"proxy": "grpc:1", "proxy.host": "unix:/run/app.sock"}, "unix:/run/app.sock"),
    ],
)
def test_channel_target(params: dict[str, str], target: str) -> None:
    assert channel_target(URL("motan2", "", 0, SERVICE, "g", params)) == target


def test_provider_chosen_by_proxy_protocol() -> None:
    register_provider("grpc", _grpc_provider)
    assert isinstance(create_provider(_url(50051)), GrpcProvider)
    with pytest.raises(ProviderError, match="needs 'proxy'"):
        GrpcProvider(URL("motan2", "", 0, SERVICE, "g", {"provider": "grpc"}))
