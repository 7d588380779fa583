"""``failfast`` in real agent processes: ten failures in a row take a provider out of load
balancing, a probe after 10 s finds it back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from motanmesh.filters.failfast import PROBE_INTERVAL
from motanmesh.sdk import MotanClient
from motanmesh.sdk.errors import MotanBizError, MotanRemoteError
from tests.e2e.harness import (
    DEMO_GROUP,
    DEMO_SERVICE,
    AgentProcess,
    Mesh,
    agent_section,
    available_endpoints,
    demo_export,
    embedded_registry,
    refer,
    set_available,
    wait_for,
)


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    m = Mesh(tmp_path)
    try:
        yield m
    finally:
        m.close()


def _failfast(agent: AgentProcess) -> dict[str, Any]:
    """The failfast filter's view of its addresses (reading it probes nothing)."""
    info = agent.management_json("/runtime/info?keys=clusters")
    (f,) = [f for f in info["clusters"]["demo"]["filters"] if f["name"] == "failfast"]
    addresses: dict[str, Any] = f["addresses"]
    return addresses


async def _calls(address: str, method: str, n: int) -> list[Any]:
    async with MotanClient(address, application="ff", group=DEMO_GROUP, timeout=10) as c:
        out: list[Any] = []
        for i in range(n):
            try:
                out.append(await c.call(DEMO_SERVICE, method, str(i)))
            except MotanRemoteError as e:
                out.append(e)
        return out


def test_ten_failures_take_a_provider_out_until_a_probe_succeeds(mesh: Mesh) -> None:
    demo, backend = mesh.demo_service("demo")
    export = demo_export(backend)
    server = mesh.agent(
        "server",
        {
            "motan-agent": agent_section("server"),
            "motan-registry": {"local": embedded_registry(mesh.registry)},
            "motan-service": {"demo": export},
        },
    )
    set_available(server)
    provider = "127.0.0.1:" + str(export["export"]).rpartition(":")[2]
    client = mesh.agent(
        "client",
        {
            "motan-agent": agent_section("client"),
            "motan-registry": {"local": embedded_registry(mesh.registry)},
            # the transport's own health rule off: only failfast decides
            "motan-refer": {
                "demo": refer(DEMO_SERVICE, DEMO_GROUP, filter="failfast", errorCountThreshold=0)
            },
        },
    )
    wait_for(lambda: available_endpoints(client, "demo") == {provider}, "the provider")

    # business exceptions are answers: they do not count
    assert all(
        isinstance(r, MotanBizError) for r in asyncio.run(_calls(client.address, "fail", 12))
    )
    assert _failfast(client) == {provider: {"available": True, "errorCount": 0}}

    demo.stop()  # the server agent answers every call with an error now
    failed = asyncio.run(_calls(client.address, "hello", 9))
    assert all(isinstance(r, MotanRemoteError) for r in failed)
    assert _failfast(client)[provider] == {"available": True, "errorCount": 9}
    (tenth,) = asyncio.run(_calls(client.address, "hello", 1))
    out_since = time.monotonic()
    assert isinstance(tenth, MotanRemoteError)
    assert _failfast(client)[provider] == {"available": False, "errorCount": 10}
    # out of load balancing: the client agent answers by itself
    (fast,) = asyncio.run(_calls(client.address, "hello", 1))
    assert isinstance(fast, MotanRemoteError) and fast.errcode == 1001, fast
    assert available_endpoints(client, "demo") == set()

    again = mesh.spawn("demo-again", "demo-service", "--port", str(backend))
    again.wait_output("demo-service listening on")
    (still,) = asyncio.run(_calls(client.address, "hello", 1))
    if time.monotonic() - out_since < PROBE_INTERVAL - 1:  # no probe yet
        assert isinstance(still, MotanRemoteError) and still.errcode == 1001
    time.sleep(max(0.0, out_since + PROBE_INTERVAL + 0.5 - time.monotonic()))
    # the probe goes through, succeeds, and the provider is back for every call
    assert asyncio.run(_calls(client.address, "hello", 3)) == ["hello 0", "hello 1", "hello 2"]
    assert _failfast(client)[provider] == {"available": True, "errorCount": 0}
