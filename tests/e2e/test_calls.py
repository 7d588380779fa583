"""app (the SDK) → client agent → server agent → demo service, four real processes on the
embedded registry: replies, errors passing through unchanged, and the agents' own errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from motanmesh.sdk.client import MotanClient
from motanmesh.sdk.errors import MotanBizError, MotanRemoteError
from tests.e2e.harness import (
    DEMO_GROUP,
    DEMO_SERVICE,
    AgentProcess,
    Mesh,
    client_agent_config,
    demo_export,
    export_port,
    refer,
    server_agent_config,
    set_available,
    wait_endpoints,
)

MISSING_GROUP = "motan-demo-missing"


@dataclass
class Chain:
    client_agent: AgentProcess
    server_agent: AgentProcess
    backend_port: int
    export_port: int


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    mesh = Mesh(tmp_path_factory.mktemp("calls"))
    try:
        _service, backend = mesh.demo_service("demo-service")
        export = demo_export(backend)
        server = mesh.agent(
            "server-agent", server_agent_config("server", mesh.registry, {"demo": export})
        )
        set_available(server)
        eport = export_port(export)
        refers = {
            "demo": refer(DEMO_SERVICE, DEMO_GROUP, requestTimeout=2000),
            # the same service in a group the server agent does not export, reached directly
            "demo-missing": refer(DEMO_SERVICE, MISSING_GROUP, registry="direct"),
        }
        direct = {"protocol": "direct", "address": f"127.0.0.1:{eport}"}
        client = mesh.agent(
            "client-agent", client_agent_config("client", mesh.registry, refers, direct=direct)
        )
        wait_endpoints(client, "demo", {f"127.0.0.1:{eport}"})
        yield Chain(client, server, backend, eport)
        mesh.check_alive()
    finally:
        mesh.close()


def app(chain: Chain) -> MotanClient:
    return MotanClient(chain.client_agent.address, application="e2e-app", group=DEMO_GROUP)


async def test_hello_and_echo(chain: Chain) -> None:
    async with app(chain) as client:
        assert await client.call(DEMO_SERVICE, "hello", "mesh") == "hello mesh"
        assert await client.call(DEMO_SERVICE, "echo", 1, "two", [3]) == [1, "two", [3]]
        value = {"k": [1, 2.5, None, True], "s": "\u00e9t\u00e9"}
        assert await client.call(DEMO_SERVICE, "echo", value) == value
        big = "x" * 200_000
        assert await client.call(DEMO_SERVICE, "echo", big) == big


async def test_large_bodies_at_once(chain: Chain) -> None:
    """Bodies from a few bytes to 3 MB in flight together (read into frame-sized buffers,
    written as header and body pieces by both agents) come back whole, each to its call."""
    sizes = (10, 20_000, 70_000, 600_000, 1_500_000, 3_000_000)
    values = [c * n for c, n in zip("abcdef", sizes, strict=True)]
    async with app(chain) as client:
        got = await asyncio.gather(*(client.call(DEMO_SERVICE, "echo", v) for v in values))
    assert got == values


async def test_sleep(chain: Chain) -> None:
    async with app(chain) as client:
        assert await client.call(DEMO_SERVICE, "sleep", 150) == 150


async def test_business_error_passes_through_unchanged(chain: Chain) -> None:
    direct = MotanClient(f"127.0.0.1:{chain.backend_port}", group=DEMO_GROUP)
    async with app(chain) as client, direct:
        for args in ((), ("custom failure",)):
            with pytest.raises(MotanBizError) as through_mesh:
                await client.call(DEMO_SERVICE, "fail", *args)
            with pytest.raises(MotanBizError) as at_service:
                await direct.call(DEMO_SERVICE, "fail", *args)
            got, want = through_mesh.value, at_service.value
            assert (got.errcode, got.errtype, got.errmsg) == (want.errcode, 2, want.errmsg)
        # the agents keep working after an error
        assert await client.call(DEMO_SERVICE, "hello", "again") == "hello again"


async def test_unknown_service_is_400_cluster_not_found(chain: Chain) -> None:
    async with app(chain) as client:
        with pytest.raises(MotanRemoteError) as info:
            await client.call("com.example.NoSuchService", "hello", "x")
    assert info.value.errcode == 400
    assert info.value.errmsg.startswith("cluster not found")
    assert "com.example.NoSuchService" in info.value.errmsg


async def test_unknown_group_is_404_from_the_server_agent(chain: Chain) -> None:
    async with app(chain) as client:
        with pytest.raises(MotanRemoteError) as info:
            await client.call(DEMO_SERVICE, "hello", "x", group=MISSING_GROUP)
        # the right group still reaches the service through the other refer
        assert await client.call(DEMO_SERVICE, "hello", "y") == "hello y"
    assert info.value.errcode == 404
    assert info.value.errmsg == f"provider not exist serviceKey={MISSING_GROUP}_{DEMO_SERVICE}"


async def test_unknown_method_comes_from_the_service(chain: Chain) -> None:
    async with app(chain) as client:
        with pytest.raises(MotanRemoteError) as info:
            await client.call(DEMO_SERVICE, "noSuchMethod")
    assert info.value.errtype == 1
    assert "noSuchMethod" in info.value.errmsg
