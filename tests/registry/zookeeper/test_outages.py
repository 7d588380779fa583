"""The ZooKeeper registry through server outages, expired sessions and dead processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_acl

from motanmesh.registry import RegistryError, RegistryStatus
from motanmesh.registry.base import node_path
from motanmesh.registry.zookeeper import ZookeeperRegistry
from motanmesh.url import URL
from tests.registry.conftest import WAIT_SECONDS, Commands, Providers, provider, refer, wait_until
from tests.registry.zookeeper.conftest import (
    MakeRegistry,
    leaves,
    raw_client,
    registry_url,
    stop_client,
    tree,
)
from tests.servers.zookeeper import ZooKeeperServer

CHILD = Path(__file__).with_name("zk_child.py")
TRAFFIC = '{"clientCommandList":[]}'


@pytest.fixture
def own_raw(own_server: ZooKeeperServer) -> Iterator[Any]:
    client = raw_client(own_server)
    yield client
    stop_client(client)


def expire_session(server: ZooKeeperServer, registry: ZookeeperRegistry) -> None:
    """End a registry's session from outside, as the server does when it times out."""
    session = registry._client.client_id  # the (id, password) pair of the live session
    assert session is not None
    intruder = KazooClient(hosts=server.hosts, client_id=session, timeout=10.0)
    intruder.start(timeout=15)
    stop_client(intruder)  # closing the borrowed session expires it for its owner


@pytest.mark.slow
async def test_server_restart_keeps_lists_and_applies_queued_changes(
    own_server: ZooKeeperServer, make_registry: MakeRegistry, group: str
) -> None:
    # requestTimeout also bounds a reconnection the restarting server does not answer yet.
    timeouts = {"registrySessionTimeout": "30", "requestTimeout": "2000"}
    producer = await make_registry(own_server, **timeouts)
    consumer = await make_registry(own_server, **timeouts)
    first, second, third = (provider(port, group=group) for port in (8001, 8002, 8003))
    await producer.available(first)
    await producer.register(second)
    seen, commands = Providers(), Commands()
    await consumer.subscribe(refer(group=group), seen)
    await consumer.subscribe_command(group, commands)
    assert seen.ports() == [[8001]]
    sessions = (producer.session_id, consumer.session_id)

    own_server.stop()
    await wait_until(lambda: not producer.connected and not consumer.connected, "disconnect")
    # Made while ZooKeeper is down: queued, applied in order on reconnect.
    await producer.available(second)
    await producer.register(third)
    await producer.available(third)
    await producer.unregister(third)
    assert [(s.status, s.err_msg) for s in producer.status()] == [
        (RegistryStatus.REGISTER_SUCCESS, ""),  # first: written before
        (RegistryStatus.REGISTER_FAILED, f"queued until {producer.name} is reachable"),
    ]
    assert await consumer.discover(refer(group=group)) == [first]  # the last known list
    with pytest.raises(RegistryError):
        await producer.set_command(group, TRAFFIC)
    with pytest.raises(RegistryError):
        await consumer.refresh()
    assert seen.ports() == [[8001]]

    own_server.start()
    await wait_until(lambda: producer.connected and consumer.connected, "reconnect")
    assert (producer.session_id, consumer.session_id) == sessions  # the sessions survived
    raw = raw_client(own_server)
    try:
        expected = {
            f"/motan/{group}/com.example.Echo/server/127.0.0.1:8001",
            f"/motan/{group}/com.example.Echo/server/127.0.0.1:8002",
            f"/motan/{group}/com.example.Echo/client/10.0.0.9:0",
        }
        service = f"/motan/{group}/com.example.Echo"
        await wait_until(lambda: set(leaves(raw, service)) == expected, "the queue applied")
    finally:
        stop_client(raw)
    await consumer.refresh()
    assert seen.last_ports == [8001, 8002]
    # a status changes when the producer reads ZooKeeper's answer, which may come after the
    # other client has seen the node
    await wait_until(
        lambda: [s.status for s in producer.status()] == [RegistryStatus.REGISTER_SUCCESS] * 2,
        "the statuses of the queued writes",
    )
    assert [] not in seen.ports()
    await producer.set_command(group, TRAFFIC)  # the command watch was set again
    await wait_until(lambda: commands.calls == [TRAFFIC], "the command after the restart")


async def test_expired_session_recreates_every_ephemeral_node(
    own_server: ZooKeeperServer, own_raw: Any, make_registry: MakeRegistry, group: str
) -> None:
    reg = await make_registry(own_server, registrySessionTimeout="30")
    watcher = await make_registry(own_server)
    online, offline = provider(8001, group=group), provider(8002, group=group)
    await reg.available(online)
    await reg.register(offline)
    await reg.subscribe(refer(path="com.example.Other", group=group), Providers())
    agent = URL("motan2", "10.1.2.3", 9981, parameters={"application": group})
    await reg.register_agent(agent)
    own = Providers()
    await reg.subscribe(refer(group=group), own)
    commands = Commands()
    await reg.subscribe_command(group, commands)
    seen = Providers()
    await watcher.subscribe(refer(group=group).copy(host="10.0.0.10"), seen)
    before = {
        path: data
        for path, (data, owner) in tree(own_raw, "/motan").items()
        if owner == reg.session_id
    }
    assert len(before) == 5  # two services, two clients, the agent
    old_session = reg.session_id

    expire_session(own_server, reg)
    await wait_until(lambda: reg.connected and reg.session_id != old_session, "a new session")
    await wait_until(
        lambda: (
            {
                path: data
                for path, (data, owner) in tree(own_raw, "/motan").items()
                if owner == reg.session_id
            }
            == before
        ),
        "every node re-created in its state",
    )
    await wait_until(
        lambda: (
            [s.status for s in reg.status()]
            == [RegistryStatus.REGISTER_SUCCESS, RegistryStatus.NOT_REGISTER]
        ),
        "the statuses in the new session",
    )
    # Watches work in the new session.
    own_raw.create(f"/motan/{group}/com.example.Echo/server/10.9.9.9:1", b"", ephemeral=True)
    await wait_until(lambda: own.last_ports == [1, 8001], "a provider after the expiry")
    own_raw.set(f"/motan/{group}/command", TRAFFIC.encode())
    await wait_until(lambda: commands.calls == [TRAFFIC], "a command after the expiry")
    await watcher.refresh()
    assert [] not in seen.ports()
    assert seen.last_ports == [1, 8001]


async def test_dead_server_at_start_then_it_comes_up(
    idle_server: ZooKeeperServer, make_registry: MakeRegistry, group: str
) -> None:
    # start() returns though nothing answers; requestTimeout also bounds connection attempts.
    reg = await make_registry(idle_server, connectTimeout="200", requestTimeout="1000")
    assert not reg.connected
    url = provider(8001, group=group)
    await reg.register(url)
    await reg.available(url)
    await reg.register_agent(URL("motan2", "10.1.2.3", 9981, parameters={"application": group}))
    seen, commands = Providers(), Commands()
    await reg.subscribe(refer(group=group), seen)
    await reg.subscribe_command(group, commands)
    [row] = reg.status()
    assert row.status is RegistryStatus.REGISTER_FAILED
    assert "queued" in row.err_msg
    with pytest.raises(RegistryError):
        await reg.get_command(group)
    with pytest.raises(RegistryError):
        await reg.discover(refer(path="com.example.Unwatched", group=group))

    idle_server.start()
    assert await reg.wait_connected(WAIT_SECONDS)
    await wait_until(lambda: seen.ports() == [[8001]], "its own provider")
    raw = raw_client(idle_server)
    try:
        expected = {
            f"/motan/{group}/com.example.Echo/server/127.0.0.1:8001",
            f"/motan/{group}/com.example.Echo/client/10.0.0.9:0",
            f"/motan/agent/{group}/node/10.1.2.3:9981",
        }
        await wait_until(lambda: set(leaves(raw, "/motan")) == expected, "the queued nodes")
        assert raw.exists(f"/motan/{group}/command") is not None
    finally:
        stop_client(raw)
    assert reg.status()[0].status is RegistryStatus.REGISTER_SUCCESS


async def test_refused_write_raises_and_shows_in_status(
    own_server: ZooKeeperServer, own_raw: Any, make_registry: MakeRegistry, group: str
) -> None:
    own_raw.ensure_path(f"/motan/{group}/com.example.Echo")
    read_only = [make_acl("world", "anyone", read=True)]
    own_raw.create(f"/motan/{group}/com.example.Echo/unavailableServer", acl=read_only)
    reg = await make_registry(own_server)
    with pytest.raises(RegistryError, match="NoAuth"):
        await reg.register(provider(8001, group=group))
    [row] = reg.status()
    assert row.status is RegistryStatus.REGISTER_FAILED
    assert "NoAuth" in row.err_msg
    other = provider(8002, path="com.example.Other", group=group)
    await reg.available(other)  # the queue moved on
    assert [row.status for row in reg.status()] == [
        RegistryStatus.REGISTER_FAILED,
        RegistryStatus.REGISTER_SUCCESS,
    ]
    assert own_raw.exists(node_path(other, "server")) is not None


async def test_nodes_of_a_killed_process_vanish_after_its_session(
    own_server: ZooKeeperServer, own_raw: Any, make_registry: MakeRegistry, group: str
) -> None:
    child_url = registry_url(own_server, registrySessionTimeout="2")
    services = [provider(8001, group=group), provider(8002, group=group)]
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(child_url), str(services[0])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), WAIT_SECONDS)
        assert line.strip() == "ok"
        survivor = await make_registry(own_server)
        await survivor.available(services[1])
        seen = Providers()
        consumer = await make_registry(own_server)
        await consumer.subscribe(refer(group=group), seen)
        assert seen.ports() == [[8001, 8002]]
        child.kill()
        child.wait()
        server = f"/motan/{group}/com.example.Echo/server"
        await wait_until(
            lambda: set(leaves(own_raw, server)) == {f"{server}/127.0.0.1:8002"},
            "the killed process's node to expire",
        )
        await wait_until(lambda: seen.last_ports == [8002], "the partial change")
        await survivor.close()  # the last provider vanishes too: the list is kept
        await consumer.refresh()
        assert leaves(own_raw, server) == {}
        assert seen.ports() == [[8001, 8002], [8002]]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()


async def test_unanswered_connection_attempts_are_retried(
    idle_server: ZooKeeperServer, make_registry: MakeRegistry
) -> None:
    attempts: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        attempts.append(writer)  # accept, read nothing, answer nothing

    mute = await asyncio.start_server(silent, "127.0.0.1", idle_server.port)
    try:
        reg = await make_registry(idle_server, connectTimeout="100", requestTimeout="300")
        await wait_until(lambda: len(attempts) >= 3, "fresh connection attempts")
        assert not reg.connected
    finally:
        mute.close()
        for writer in attempts:
            writer.close()
        await mute.wait_closed()
    idle_server.start()  # a real server on that port now: the registry gets in
    assert await reg.wait_connected(WAIT_SECONDS)
    mute = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        port = mute.sockets[0].getsockname()[1]
        stuck = await make_registry(idle_server, address=f"127.0.0.1:{port}", connectTimeout="1")
        await wait_until(lambda: len(attempts) >= 4, "a connection attempt")
        await asyncio.wait_for(stuck.close(), WAIT_SECONDS)  # not held up by the attempt
    finally:
        mute.close()
        for writer in attempts:
            writer.close()
        await mute.wait_closed()
