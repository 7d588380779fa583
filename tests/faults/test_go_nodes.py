"""ZooKeeper nodes as the Go agent writes and reads them, through a plain kazoo client: a
provider node written by hand is discovered and called by our client agent, and the node our
server agent writes reads back as a Go agent would read it."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

import pytest

from tests.e2e.harness import (
    INSTANCE_GROUP,
    INSTANCE_SERVICE,
    Mesh,
    embedded_registry,
    instance_client,
    wait_endpoints,
)
from tests.faults.conftest import ZooKeeperBackend
from tests.faults.support import agent_config, instance_refer, instance_servers, wait_nodes

pytestmark = pytest.mark.slow


async def test_node_written_by_hand_is_discovered_and_called(
    mesh: Mesh, zookeeper: ZooKeeperBackend
) -> None:
    # the provider registers elsewhere: ZooKeeper learns of it only through the raw node
    instance = instance_servers(mesh, embedded_registry(mesh.registry), ("go",))["go"]
    address = instance.export
    data = (
        f"motan2://{address}/{INSTANCE_SERVICE}?group={INSTANCE_GROUP}"
        "&nodeType=service&protocol=motan2&serialization=simple&weight=10"
    )
    node = f"/motan/{INSTANCE_GROUP}/{INSTANCE_SERVICE}/server/{address}"
    with zookeeper.client() as raw:
        raw.create(node, data.encode(), ephemeral=True, makepath=True)
        config = agent_config("client", zookeeper.registry(), refers={"instance": instance_refer()})
        client = mesh.agent("client", config)
        await asyncio.to_thread(wait_endpoints, client, "instance", {address})
        async with instance_client(client) as app:
            replies = [await app.call(INSTANCE_SERVICE, "whoami") for _ in range(5)]
    assert replies == ["go"] * 5


async def test_our_node_reads_like_a_go_node(mesh: Mesh, zookeeper: ZooKeeperBackend) -> None:
    instance = instance_servers(mesh, zookeeper.registry(), ("ours",))["ours"]
    await wait_nodes(zookeeper, INSTANCE_GROUP, INSTANCE_SERVICE, {instance.export})
    directory = f"/motan/{INSTANCE_GROUP}/{INSTANCE_SERVICE}"
    with zookeeper.client() as raw:
        names = raw.get_children(f"{directory}/server")
        raw_data, stat = raw.get(f"{directory}/server/{instance.export}")
        agents = raw.get_children("/motan/agent/e2e-server-ours/node")
    assert names == [instance.export]
    assert stat.ephemeralOwner != 0
    data = raw_data.decode()
    head, _, query = data.partition("?")
    assert head == f"motan2://{instance.export}/{INSTANCE_SERVICE}"
    pairs = parse_qsl(query, keep_blank_values=True)
    assert pairs[0] == ("group", INSTANCE_GROUP)
    keys = [k for k, _v in pairs[1:]]
    assert keys == sorted(keys)
    assert dict(pairs)["nodeType"] == "service"
    assert len(agents) == 1
