"""Access control end to end: a server agent process exports a service with the ``auth``
filter, callers reach it through a client agent process, and a policy written into the
registry they share (the embedded SQLite file, or a real ZooKeeper server), as an operator's
tool writes it, changes who may call within a couple of seconds, without a restart. A
malformed policy is refused and the one in force stays; removing the node brings the
configured policy back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

from motanmesh.registry.base import Registry, auth_policy_path
from motanmesh.registry.embedded import EmbeddedRegistry
from motanmesh.registry.etcd import EtcdRegistry
from motanmesh.sdk.client import MotanClient
from motanmesh.sdk.errors import MotanBizError, MotanRemoteError
from motanmesh.url import URL
from tests.e2e.harness import (
    INSTANCE_ENV,
    INSTANCE_GROUP,
    INSTANCE_SERVICE,
    AgentProcess,
    Mesh,
    agent_section,
    available_endpoints,
    embedded_registry,
    instance_export,
    refer,
    set_available,
)
from tests.servers.etcd import EtcdServer
from tests.servers.zookeeper import ZooKeeperServer

WAIT = 15.0
SERVER_APP = "e2e-orders"


class PolicyControl(Protocol):
    async def set_policy(self, data: str | None) -> None: ...


class RegistryControl:
    """Policy writes through a registry client of our own (embedded file, etcd)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def set_policy(self, data: str | None) -> None:
        await self.registry.set_auth_policy(INSTANCE_GROUP, INSTANCE_SERVICE, data)


class KazooControl:
    """Policy writes with a plain ZooKeeper client (a persistent node, UTF-8 JSON)."""

    def __init__(self, hosts: str) -> None:
        self.client = KazooClient(hosts=hosts, timeout=10.0)
        self.path = auth_policy_path(INSTANCE_GROUP, INSTANCE_SERVICE)

    def start(self) -> None:
        self.client.start(timeout=15)

    def close(self) -> None:
        self.client.stop()
        self.client.close()

    def _write(self, data: str | None) -> None:
        if data is None:
            self.client.delete(self.path)
        elif self.client.exists(self.path) is None:
            self.client.create(self.path, data.encode(), makepath=True)
        else:
            self.client.set(self.path, data.encode())

    async def set_policy(self, data: str | None) -> None:
        await asyncio.to_thread(self._write, data)


async def outcome(client: MotanClient) -> str:
    """``"a"`` (the serving instance) when the call is allowed, ``"denied"`` when the auth
    filter refused it; anything else fails the test."""
    try:
        answer = await client.call(INSTANCE_SERVICE, "whoami")
    except MotanBizError as e:
        assert e.errcode == 403, e
        assert "may not call" in e.errmsg, e
        return "denied"
    except MotanRemoteError as e:
        raise AssertionError(f"unexpected error {e!r}") from e
    return str(answer)


async def wait_outcomes(
    web: MotanClient, intruder: MotanClient, expected: tuple[str, str], what: str
) -> float:
    start = time.monotonic()
    while (await outcome(web), await outcome(intruder)) != expected:
        if time.monotonic() - start > WAIT:
            raise AssertionError(f"timed out after {WAIT} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > WAIT:
            raise AssertionError(f"timed out after {WAIT} s waiting for {what}")
        await asyncio.sleep(0.05)


def auth_info(agent: AgentProcess) -> dict[str, Any]:
    info = agent.management_json("/runtime/info?keys=servers")
    (port,) = info["servers"]["agentPortServer"].values()
    (filters,) = port["filters"].values()
    (auth,) = [f for f in filters if f["name"] == "auth"]
    assert isinstance(auth, dict)
    return auth


def denied_metric(agent: AgentProcess) -> float:
    status, text = agent.management("/metrics")
    assert status == 200
    wanted = {
        "application": SERVER_APP,
        "group": INSTANCE_GROUP,
        "service": INSTANCE_SERVICE,
        "method": "whoami",
    }
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "motan_auth_denied_total" and sample.labels == wanted:
                return float(sample.value)
    raise AssertionError(f"no motan_auth_denied_total{wanted} in\n{text}")


async def policy_flow(mesh: Mesh, control: PolicyControl, registry: dict[str, Any]) -> None:
    export = {**instance_export(), "filter": "auth", "auth.allow": "web"}
    server = mesh.agent(
        "server",
        {
            "motan-agent": agent_section("server", application=SERVER_APP, drainTime=1),
            "motan-registry": {"local": registry},
            "motan-service": {"instance": export},
        },
        env={INSTANCE_ENV: "a"},
    )
    set_available(server)
    client_agent = mesh.agent(
        "client",
        {
            "motan-agent": agent_section("client"),
            "motan-registry": {"local": registry},
            "motan-refer": {"instance": refer(INSTANCE_SERVICE, INSTANCE_GROUP)},
        },
    )
    await wait_until(lambda: bool(available_endpoints(client_agent, "instance")), "a provider")
    address = client_agent.address
    async with (
        MotanClient(address, application="web", group=INSTANCE_GROUP, timeout=5) as web,
        MotanClient(address, application="intruder", group=INSTANCE_GROUP, timeout=5) as bad,
    ):
        # the configured policy: web allowed, intruder refused with the dedicated code
        assert await outcome(web) == "a"
        assert await outcome(bad) == "denied"
        info = auth_info(server)
        assert (info["source"], info["allow"], info["denied"]) == ("config", ["web"], 1)
        assert denied_metric(server) == 1

        # a policy written to the registry takes over, without a restart
        await control.set_policy(json.dumps({"allow": ["intruder"]}))
        took = await wait_outcomes(web, bad, ("denied", "a"), "the registry policy")
        print(f"\npolicy written -> in force: {took * 1000:.0f} ms")
        assert auth_info(server)["source"].startswith("registry ")

        # a malformed one is refused with a log line; the policy in force stays
        await control.set_policy('{"allow": ["bad name"]}')
        await wait_until(
            lambda: "auth policy /motan/" in server.output() and "refused" in server.output(),
            "the refusal of the malformed policy",
        )
        assert (await outcome(web), await outcome(bad)) == ("denied", "a")
        line = next(ln for ln in server.output().splitlines() if "auth policy /motan/" in ln)
        assert "application name" in line and "stays in force" in line

        # removing the node restores the configured policy
        await control.set_policy(None)
        await wait_outcomes(web, bad, ("a", "denied"), "the configured policy again")
        info = auth_info(server)
        assert (info["source"], info["allow"]) == ("config", ["web"])
        assert info["denied"] == info["deniedByMethod"]["whoami"] >= 4
        assert denied_metric(server) == info["denied"]
    assert server.alive and server.output().count("agent ready") == 1  # never restarted


@pytest.fixture
async def embedded_control(mesh: Mesh) -> AsyncIterator[RegistryControl]:
    registry = EmbeddedRegistry(URL("embedded", parameters={"file": str(mesh.registry)}))
    await registry.start()
    try:
        yield RegistryControl(registry)
    finally:
        await registry.close()


async def test_auth_policy_from_the_embedded_registry(
    mesh: Mesh, embedded_control: RegistryControl
) -> None:
    await policy_flow(mesh, embedded_control, embedded_registry(mesh.registry))


async def test_auth_policy_from_zookeeper(mesh: Mesh, zookeeper: ZooKeeperServer) -> None:
    control = KazooControl(zookeeper.hosts)
    await asyncio.to_thread(control.start)
    try:
        await policy_flow(mesh, control, {"protocol": "zookeeper", "address": zookeeper.hosts})
    finally:
        await asyncio.to_thread(control.close)


async def test_auth_policy_from_etcd(mesh: Mesh, tmp_path: Path) -> None:
    server = EtcdServer(tmp_path / "etcd")
    server.start()
    try:
        host, _, port = server.address.rpartition(":")
        registry = EtcdRegistry(URL("etcd", host, int(port)))
        await registry.start()
        try:
            section = {"protocol": "etcd", "address": server.address}
            await policy_flow(mesh, RegistryControl(registry), section)
        finally:
            await registry.close()
    finally:
        server.stop()
