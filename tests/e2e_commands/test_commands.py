"""Commands end to end: real client and server agent processes, a registry shared by them
(the embedded SQLite file, or a real ZooKeeper server), and commands written into it the way
an operator's tool writes them. Traffic must follow within a second or so, without a restart
and without a failed call."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import pytest
from kazoo.client import KazooClient

from motanmesh.cluster.cluster import DEGRADE_MESSAGE
from motanmesh.cluster.command import EMPTY_DOCUMENT_JSON
from motanmesh.registry.base import agent_command_path, command_path
from motanmesh.registry.embedded import EmbeddedRegistry
from motanmesh.sdk.client import MotanClient
from motanmesh.sdk.errors import MotanRemoteError
from motanmesh.url import URL
from tests.e2e.harness import (
    INSTANCE_ENV,
    INSTANCE_SERVICE,
    AgentProcess,
    Load,
    Mesh,
    agent_section,
    available_endpoints,
    embedded_registry,
    export_port,
    instance_export,
    refer,
    run_load,
    set_available,
)
from tests.servers.zookeeper import ZooKeeperServer

GA, GB = "e2e-cmd-yf", "e2e-cmd-tc"
CLIENT_APP = "e2e-client"
WAIT = 15.0


def traffic(*groups: str) -> str:
    return json.dumps(
        {
            "clientCommandList": [
                {
                    "index": 1,
                    "version": "1.0",
                    "dc": "yf",
                    "commandType": 0,
                    "pattern": "*",
                    "mergeGroups": list(groups),
                    "routeRules": [],
                    "remark": "e2e split",
                }
            ]
        }
    )


# ---------------------------------------------------------------------------- control plane


class Control(Protocol):
    """Writes command nodes, as the control plane does."""

    async def set_command(self, group: str, data: str | None) -> None: ...

    async def set_agent_command(self, application: str, data: str | None) -> None: ...


class KazooControl:
    """Command writes with a plain ZooKeeper client (persistent nodes, UTF-8 JSON), as the
    Motan manager writes them."""

    def __init__(self, hosts: str) -> None:
        self.client = KazooClient(hosts=hosts, timeout=10.0)

    def start(self) -> None:
        self.client.start(timeout=15)

    def close(self) -> None:
        self.client.stop()
        self.client.close()

    def _write(self, path: str, data: str | None) -> None:
        if data is None:
            if self.client.exists(path) is not None:
                self.client.delete(path)
            return
        if self.client.exists(path) is None:
            self.client.create(path, data.encode(), makepath=True)
        else:
            self.client.set(path, data.encode())

    async def set_command(self, group: str, data: str | None) -> None:
        await asyncio.to_thread(self._write, command_path(group), data)

    async def set_agent_command(self, application: str, data: str | None) -> None:
        await asyncio.to_thread(self._write, agent_command_path(application), data)


# ---------------------------------------------------------------------------- the mesh


def registry_section(server: ZooKeeperServer | None, mesh: Mesh) -> dict[str, Any]:
    if server is None:
        return embedded_registry(mesh.registry)
    return {"protocol": "zookeeper", "address": server.hosts}


def start_server(mesh: Mesh, name: str, group: str, registry: dict[str, Any]) -> str:
    """A server agent exporting the instance service in ``group``; its export address."""
    export = {**instance_export(), "group": group}
    config = {
        "motan-agent": agent_section(f"server-{name}", drainTime=1),
        "motan-registry": {"local": registry},
        "motan-service": {"instance": export},
    }
    agent = mesh.agent(f"server-{name}", config, env={INSTANCE_ENV: name})
    set_available(agent)
    return f"127.0.0.1:{export_port(export)}"


def start_client(mesh: Mesh, registry: dict[str, Any]) -> AgentProcess:
    config = {
        "motan-agent": agent_section("client", application=CLIENT_APP),
        "motan-registry": {"local": registry},
        "motan-refer": {"instance": refer(INSTANCE_SERVICE, GA)},
        "switchers": {"e2eFlag": False},
    }
    return mesh.agent("client", config)


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def wait_endpoints(agent: AgentProcess, addresses: set[str]) -> None:
    start = time.monotonic()
    while await asyncio.to_thread(available_endpoints, agent, "instance") != addresses:
        if time.monotonic() - start > WAIT:
            raise AssertionError(f"{agent.name} never used exactly {sorted(addresses)}")
        await asyncio.sleep(0.05)


def cluster_info(agent: AgentProcess) -> dict[str, Any]:
    info: dict[str, Any] = agent.management_json("/runtime/info?keys=clusters")
    cluster: dict[str, Any] = info["clusters"]["instance"]
    return cluster


async def calls(client: MotanClient, total: int, batch: int = 50) -> Counter[str]:
    seen: Counter[str] = Counter()
    for start in range(0, total, batch):
        n = min(batch, total - start)
        seen.update(
            await asyncio.gather(*(client.call(INSTANCE_SERVICE, "whoami") for _ in range(n)))
        )
    return seen


async def split_80_20(mesh: Mesh, control: Control, registry: dict[str, Any]) -> None:
    a = start_server(mesh, "a", GA, registry)
    b = start_server(mesh, "b", GB, registry)
    agent = start_client(mesh, registry)
    await wait_endpoints(agent, {a})
    load = Load()
    stop = asyncio.Event()
    async with MotanClient(agent.address, application="e2e-app", group=GA, timeout=5) as client:

        async def whoami() -> Any:
            return await client.call(INSTANCE_SERVICE, "whoami")

        runner = asyncio.ensure_future(run_load(whoami, stop, load, workers=8))
        try:
            await wait_until(lambda: load.replies["a"] > 50, "calls served by a")
            written = time.monotonic()
            await control.set_command(GA, traffic(f"{GA}:8", f"{GB}:2"))
            await wait_until(lambda: load.replies["b"] > 0, "a call served by group B")
            latency = time.monotonic() - written
            print(f"\ncommand written -> first call in group B: {latency * 1000:.0f} ms")
            await wait_endpoints(agent, {a, b})
            assert cluster_info(agent)["weights"] == {GA: 8, GB: 2}

            split = await calls(client, 5000)
            assert sum(split.values()) == 5000
            assert abs(split["b"] / 5000 - 0.2) <= 0.03, split
            assert abs(split["a"] / 5000 - 0.8) <= 0.03, split

            await control.set_command(GA, EMPTY_DOCUMENT_JSON)
            await wait_endpoints(agent, {a})
            assert await calls(client, 500) == Counter(a=500)
        finally:
            stop.set()
            await runner
    assert load.failures == []
    info = cluster_info(agent)
    assert [r["command"] for r in info["commandHistory"]] == [
        traffic(f"{GA}:8", f"{GB}:2"),
        EMPTY_DOCUMENT_JSON,
    ]
    assert info["weights"] == {}
    mesh.check_alive()


# ---------------------------------------------------------------------------- tests


@pytest.fixture
async def embedded_control(mesh: Mesh) -> AsyncIterator[EmbeddedRegistry]:
    control = EmbeddedRegistry(URL("embedded", parameters={"file": str(mesh.registry)}))
    await control.start()
    try:
        yield control
    finally:
        await control.close()


async def test_split_80_20_embedded(mesh: Mesh, embedded_control: EmbeddedRegistry) -> None:
    await split_80_20(mesh, embedded_control, registry_section(None, mesh))


async def test_split_80_20_zookeeper(mesh: Mesh, zookeeper: ZooKeeperServer) -> None:
    control = KazooControl(zookeeper.hosts)
    await asyncio.to_thread(control.start)
    try:
        await split_80_20(mesh, control, registry_section(zookeeper, mesh))
    finally:
        await asyncio.to_thread(control.close)


async def test_agent_command_degrades_and_switches(
    mesh: Mesh, embedded_control: EmbeddedRegistry
) -> None:
    registry = registry_section(None, mesh)
    a = start_server(mesh, "a", GA, registry)
    agent = start_client(mesh, registry)
    await wait_endpoints(agent, {a})
    command = json.dumps(
        {
            "clientCommandList": [
                {"index": 1, "commandType": 1, "pattern": INSTANCE_SERVICE},
                {"index": 2, "commandType": 2, "pattern": "e2eFlag:true"},
            ]
        }
    )
    async with MotanClient(agent.address, application="e2e-app", group=GA, timeout=5) as client:
        assert await client.call(INSTANCE_SERVICE, "whoami") == "a"
        await embedded_control.set_agent_command(CLIENT_APP, command)
        await wait_until(
            lambda: agent.management("/switcher/get?name=e2eFlag")[1].endswith("true"), "e2eFlag on"
        )
        with pytest.raises(MotanRemoteError) as info:
            await client.call(INSTANCE_SERVICE, "whoami")
        assert (info.value.errcode, info.value.errmsg) == (500, DEGRADE_MESSAGE)
        assert cluster_info(agent)["available"] is False

        await embedded_control.set_agent_command(CLIENT_APP, None)
        await wait_until(lambda: cluster_info(agent)["available"] is True, "the recovery")
        assert agent.management("/switcher/get?name=e2eFlag") == (200, "switcher e2eFlag is false")
        assert await client.call(INSTANCE_SERVICE, "whoami") == "a"
    mesh.check_alive()
