"""Every node the ZooKeeper registry writes, read back with a separate plain kazoo client."""

from __future__ import annotations

import re
from typing import Any

from motanmesh.registry import RegistryStatus
from motanmesh.url import URL
from tests.registry.conftest import Providers, provider, refer
from tests.registry.zookeeper.conftest import MakeRegistry, leaves, tree
from tests.servers.zookeeper import ZooKeeperServer, four_letter


async def test_register_available_unavailable_unregister(
    raw: Any, group: str, make_registry: MakeRegistry
) -> None:
    reg = await make_registry()
    url = provider(8001, group=group)
    service = f"/motan/{group}/com.example.Echo"
    server = f"{service}/server/127.0.0.1:8001"
    offline = f"{service}/unavailableServer/127.0.0.1:8001"
    data = url.to_ext_info()
    assert data == f"motan2://127.0.0.1:8001/com.example.Echo?group={group}&serialization=simple"

    await reg.register(url)
    assert tree(raw, service) == {
        f"{service}/unavailableServer": ("", 0),  # persistent parent
        offline: (data, reg.session_id),  # ephemeral, owned by the registry's session
    }
    assert [s.status for s in reg.status()] == [RegistryStatus.NOT_REGISTER]

    await reg.available(url)
    assert leaves(raw, service) == {server: data}
    assert tree(raw, service)[server] == (data, reg.session_id)
    assert [s.status for s in reg.status()] == [RegistryStatus.REGISTER_SUCCESS]

    await reg.unavailable(url)
    assert leaves(raw, service) == {offline: data}
    assert [s.status for s in reg.status()] == [RegistryStatus.UNREGISTER_SUCCESS]

    await reg.available(url)
    await reg.unregister(url)
    assert leaves(raw, service) == {}
    assert reg.status() == []


async def test_register_replaces_a_stale_server_node(
    raw: Any, group: str, make_registry: MakeRegistry
) -> None:
    reg = await make_registry()
    url = provider(8001, group=group)
    service = f"/motan/{group}/com.example.Echo"
    # A node left by an earlier process on the same address, still alive.
    raw.create(f"{service}/server/127.0.0.1:8001", b"old", ephemeral=True, makepath=True)
    await reg.register(url)
    assert leaves(raw, service) == {f"{service}/unavailableServer/127.0.0.1:8001": str(url)}
    raw.create(f"{service}/server/127.0.0.1:8001", b"old", ephemeral=True)
    await reg.available(url)
    assert tree(raw, service)[f"{service}/server/127.0.0.1:8001"] == (str(url), reg.session_id)


async def test_none_moves_every_registered_url(
    raw: Any, group: str, make_registry: MakeRegistry
) -> None:
    reg = await make_registry()
    first = provider(8001, group=group)
    second = provider(8002, path="com.example.Other", group=group)
    await reg.register(first)
    await reg.register(second)
    await reg.available()
    assert set(leaves(raw, f"/motan/{group}")) == {
        f"/motan/{group}/com.example.Echo/server/127.0.0.1:8001",
        f"/motan/{group}/com.example.Other/server/127.0.0.1:8002",
    }
    await reg.unavailable()
    assert set(leaves(raw, f"/motan/{group}")) == {
        f"/motan/{group}/com.example.Echo/unavailableServer/127.0.0.1:8001",
        f"/motan/{group}/com.example.Other/unavailableServer/127.0.0.1:8002",
    }
    status = {(s.group, s.service, s.status, s.registry) for s in reg.status()}
    assert status == {
        (group, "com.example.Echo", RegistryStatus.UNREGISTER_SUCCESS, reg.name),
        (group, "com.example.Other", RegistryStatus.UNREGISTER_SUCCESS, reg.name),
    }


async def test_available_without_register_registers(
    raw: Any, group: str, make_registry: MakeRegistry
) -> None:
    reg = await make_registry()
    url = provider(8001, group=group).with_params(check="true")
    await reg.available(url)
    assert leaves(raw, f"/motan/{group}") == {
        f"/motan/{group}/com.example.Echo/server/127.0.0.1:8001": str(url)
    }
    [row] = reg.status()
    assert (row.status, row.is_check, row.err_msg) == (RegistryStatus.REGISTER_SUCCESS, True, "")


async def test_subscribe_records_a_client_node(
    raw: Any, group: str, make_registry: MakeRegistry
) -> None:
    reg = await make_registry()
    ref = refer(group=group)
    seen = Providers()
    await reg.subscribe(ref, seen)
    client = f"/motan/{group}/com.example.Echo/client/10.0.0.9:0"
    expected = ref.with_params(nodeType="referer").to_ext_info()
    assert leaves(raw, f"/motan/{group}") == {client: expected}
    assert "nodeType=referer" in expected

    other = Providers()
    await reg.subscribe(ref, other)  # a second listener: same node
    await reg.unsubscribe(ref, seen)
    assert leaves(raw, f"/motan/{group}") == {client: expected}
    await reg.unsubscribe(ref, other)
    assert leaves(raw, f"/motan/{group}") == {}


async def test_agent_node(raw: Any, make_registry: MakeRegistry, group: str) -> None:
    reg = await make_registry()
    agent = URL("motan2", "10.1.2.3", 9981, "", "", {"application": group, "mport": "8002"})
    await reg.register_agent(agent)
    path = f"/motan/agent/{group}/node/10.1.2.3:8002"
    nodes = leaves(raw, f"/motan/agent/{group}")
    assert nodes == {path: agent.with_params(nodeType="agent").to_ext_info()}
    assert URL.parse(nodes[path]).node_type == "agent"
    await reg.unregister_agent(agent)
    assert leaves(raw, f"/motan/agent/{group}") == {}


async def test_close_ends_the_session_and_its_nodes(
    raw: Any, group: str, make_registry: MakeRegistry
) -> None:
    reg = await make_registry()
    url = provider(8001, group=group)
    await reg.register(url)
    await reg.available(url)
    await reg.subscribe(refer(group=group), Providers())
    await reg.register_agent(URL("motan2", "10.1.2.3", 9981, parameters={"application": group}))
    assert len(leaves(raw, f"/motan/{group}")) == 2
    assert len(leaves(raw, f"/motan/agent/{group}")) == 1
    await reg.close()
    assert leaves(raw, f"/motan/{group}") == {}
    assert leaves(raw, f"/motan/agent/{group}") == {}
    assert not reg.connected


async def test_session_timeout_is_seconds_capped_by_the_server(
    zk_server: ZooKeeperServer, make_registry: MakeRegistry
) -> None:
    def granted(session: int | None) -> int:
        """The timeout (ms) the server gave a session, from its connection list."""
        found = re.search(
            rf"sid=0x{session or 0:x},.*?to=(\d+)", four_letter(zk_server.port, "cons")
        )
        assert found is not None
        return int(found.group(1))

    short = await make_registry(registrySessionTimeout="3")
    assert granted(short.session_id) == 3000  # seconds, as the Go agent reads them
    default = await make_registry()  # 1000 s: as long as the server allows
    assert default.requested_session_timeout == 300
    assert granted(default.session_id) == zk_server.max_session_ms
