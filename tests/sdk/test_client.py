"""MotanClient: the request it builds, and how it fails."""

from __future__ import annotations

import asyncio

import pytest

from motanmesh.demo import DEMO_GROUP, DEMO_SERVICE
from motanmesh.sdk import MotanClient, MotanServiceError, ServiceServer
from motanmesh.transport.errors import ConnectError, RequestTimeout
from motanmesh.transport.server import MotanServer, Responder, ServerConnection
from motanmesh.wire.frame import Frame, parse_frame
from motanmesh.wire.serialization import BREEZE, SIMPLE, get_serialization
from tests.servers import free_port


def test_request_frame_metadata() -> None:
    client = MotanClient(application="app", group="g", version="1.0")
    frame = client.request("com.x.Svc", "m", ("a", 1), attachments={"k": "v", "M_p": "spoof"})
    assert frame.metadata == {
        "k": "v",
        "M_p": "com.x.Svc",
        "M_m": "m",
        "M_g": "g",
        "M_v": "1.0",
        "M_pp": "motan2",
        "M_s": "app",
    }
    assert frame.serialization == SIMPLE
    assert frame.is_request
    assert get_serialization(SIMPLE).decode_multi(frame.body) == ["a", 1]
    other = client.request("com.x.Svc", "m", (), group="h", version="")
    assert other.metadata["M_g"] == "h"
    assert "M_v" not in other.metadata
    assert other.body == b""


def test_request_without_optional_fields() -> None:
    client = MotanClient(serialization="breeze")
    frame = parse_frame(client.request("com.x.Svc", "m", ("x",)).encode())
    # empty group and source are not written at all
    assert frame.metadata == {"M_p": "com.x.Svc", "M_m": "m", "M_pp": "motan2"}
    assert frame.serialization == BREEZE


def test_default_address_is_the_client_agent() -> None:
    assert MotanClient().address == "127.0.0.1:9981"


def _free_port() -> int:
    """A port nothing listens on, and nothing else can be given while this session runs."""
    return free_port()


async def test_nothing_listening_raises_connect_error() -> None:
    async with MotanClient(f"127.0.0.1:{_free_port()}") as client:
        with pytest.raises(ConnectError, match="no connection"):
            await client.call(DEMO_SERVICE, "hello", "x")


async def test_timeout_raises_request_timeout() -> None:
    held: list[Responder] = []

    def never_answer(frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        held.append(respond)

    server = MotanServer(never_answer)
    host, port = await server.listen_tcp()
    try:
        async with MotanClient(f"{host}:{port}", timeout=5.0) as client:
            with pytest.raises(RequestTimeout):
                await client.call(DEMO_SERVICE, "hello", "x", timeout=0.05)
        assert len(held) == 1
    finally:
        await server.close(deadline=0)


async def test_connects_lazily_and_close_is_final(demo_server: ServiceServer) -> None:
    client = MotanClient(demo_server.address, group=DEMO_GROUP)
    assert await client.call(DEMO_SERVICE, "hello", "lazy") == "hello lazy"
    await client.close()
    await client.close()
    with pytest.raises(RuntimeError, match="closed"):
        await client.call(DEMO_SERVICE, "hello", "again")


async def test_concurrent_first_calls_share_one_connect(demo_server: ServiceServer) -> None:
    client = MotanClient(demo_server.address, group=DEMO_GROUP, connections=2)
    try:
        results = await asyncio.gather(
            *(client.call(DEMO_SERVICE, "hello", str(i)) for i in range(20))
        )
        assert results == [f"hello {i}" for i in range(20)]
        assert demo_server.server.connection_count == 2
    finally:
        await client.close()


async def test_errors_do_not_mark_the_agent_down(demo_server: ServiceServer) -> None:
    async with MotanClient(demo_server.address, group="wrong") as client:
        for _ in range(30):
            with pytest.raises(MotanServiceError):
                await client.call(DEMO_SERVICE, "hello", "x")
        assert await client.call(DEMO_SERVICE, "hello", "x", group=DEMO_GROUP) == "hello x"


async def test_cached_request_metadata_follows_the_defaults(demo_server: ServiceServer) -> None:
    async with MotanClient(demo_server.address, group=DEMO_GROUP) as client:
        assert await client.call(DEMO_SERVICE, "hello", "a") == "hello a"
        client.group = "elsewhere"
        with pytest.raises(MotanServiceError, match="serviceKey=elsewhere_"):
            await client.call(DEMO_SERVICE, "hello", "b")
        client.group = DEMO_GROUP
        client.version = "1.0"
        client.application = "app"
        built = client.request(DEMO_SERVICE, "hello", ("c",))
        assert built.metadata["M_v"] == "1.0"
        assert built.metadata["M_s"] == "app"
        assert await client.call(DEMO_SERVICE, "hello", "c") == "hello c"
