"""The etcd registry against a real etcd server: keys, watches, commands, agent nodes."""

from __future__ import annotations

import pytest
from aiohttp import web

from motanmesh.registry import RegistryError, RegistryStatus, create_registry
from motanmesh.registry.etcd import EtcdRegistry, etcd_endpoints
from motanmesh.url import URL
from tests.registry.conftest import Commands, Providers, provider, refer, wait_until
from tests.registry.etcd.conftest import FAST, MakeEtcd, TcpProxy, etcd_url
from tests.servers.etcd import EtcdServer, free_port

SERVICE = "/motan/demo/com.example.Echo"
COMMAND = '{"clientCommandList":[{"index":1,"pattern":"*","mergeGroups":["demo"]}]}'


def keys(etcd: EtcdServer, prefix: str = SERVICE + "/") -> dict[str, tuple[str, int]]:
    return etcd.range(prefix)


async def test_register_available_unavailable_unregister_keys(
    etcd: EtcdServer, make_etcd: MakeEtcd
) -> None:
    reg = await make_etcd()
    url = provider(8001)
    data = url.to_ext_info()
    server = f"{SERVICE}/server/127.0.0.1:8001"
    offline = f"{SERVICE}/unavailableServer/127.0.0.1:8001"
    marker = f"{SERVICE}/unregisteredServer/127.0.0.1:8001"
    assert reg.lease

    await reg.register(url)
    assert keys(etcd) == {offline: (data, reg.lease)}
    assert [s.status for s in reg.status()] == [RegistryStatus.NOT_REGISTER]

    await reg.available(url)
    assert keys(etcd) == {server: (data, reg.lease)}
    assert [s.status for s in reg.status()] == [RegistryStatus.REGISTER_SUCCESS]

    await reg.unavailable(url)
    assert keys(etcd) == {offline: (data, reg.lease)}
    assert [s.status for s in reg.status()] == [RegistryStatus.UNREGISTER_SUCCESS]

    await reg.unregister(url)
    assert keys(etcd) == {marker: (data, reg.lease)}
    assert reg.status() == []

    await reg.register(url)
    assert keys(etcd) == {offline: (data, reg.lease)}


async def test_available_none_moves_every_registered_url(
    etcd: EtcdServer, make_etcd: MakeEtcd
) -> None:
    reg = await make_etcd()
    await reg.register(provider(8001))
    await reg.register(provider(8002, path="com.example.Other"))
    await reg.available()
    assert {k.split("/")[-2] for k in keys(etcd, "/motan/demo/")} == {"server"}
    await reg.unavailable()
    assert {k.split("/")[-2] for k in keys(etcd, "/motan/demo/")} == {"unavailableServer"}
    status = {(s.service, s.status, s.registry) for s in reg.status()}
    assert status == {
        ("com.example.Echo", RegistryStatus.UNREGISTER_SUCCESS, reg.name),
        ("com.example.Other", RegistryStatus.UNREGISTER_SUCCESS, reg.name),
    }


async def test_subscribe_before_any_provider_then_changes(
    etcd: EtcdServer, make_etcd: MakeEtcd
) -> None:
    server, client = await make_etcd(), await make_etcd()
    seen = Providers()
    await client.subscribe(refer(), seen)
    assert seen.calls == []
    client_nodes = keys(etcd, f"{SERVICE}/client/")
    assert list(client_nodes) == [f"{SERVICE}/client/10.0.0.9:0"]
    data, lease = client_nodes[f"{SERVICE}/client/10.0.0.9:0"]
    assert URL.parse(data).node_type == "referer"
    assert lease == client.lease

    for port in (8001, 8002):
        await server.register(provider(port))
        await server.available(provider(port))
    await wait_until(lambda: seen.last_ports == [8001, 8002], "both providers")
    assert seen.calls[-1][0] == provider(8001)

    await server.unavailable(provider(8002))
    await wait_until(lambda: seen.last_ports == [8001], "the partial change")
    assert await client.discover(refer()) == [provider(8001)]
    assert [] not in seen.ports()

    await client.unsubscribe(refer(), seen)
    assert keys(etcd, f"{SERVICE}/client/") == {}


async def test_keys_written_by_another_agent_are_discovered(
    etcd: EtcdServer, make_etcd: MakeEtcd
) -> None:
    written = provider(9000).copy(host="10.1.1.1")
    etcd.put(f"{SERVICE}/server/10.1.1.1:9000", written.to_ext_info())
    etcd.put(f"{SERVICE}/server/10.1.1.2:9001", "")  # no data: the address is the node name
    etcd.put(f"{SERVICE}/server/10.1.1.3:9002", "garbage")  # unreadable: skipped
    client = await make_etcd()
    seen = Providers()
    await client.subscribe(refer(), seen)
    assert seen.calls == [[written, refer().copy(host="10.1.1.2", port=9001)]]
    assert await client.discover(refer()) == seen.calls[0]

    etcd.put(f"{SERVICE}/server/10.1.1.4:9003", provider(9003).to_ext_info())
    await wait_until(lambda: seen.last_ports == [9000, 9001, 9003], "a node written by hand")


async def test_vanished_providers_are_kept_unregistered_ones_dropped(
    etcd: EtcdServer, make_etcd: MakeEtcd
) -> None:
    server, client = await make_etcd(), await make_etcd()
    url = provider(8001)
    await server.register(url)
    await server.available(url)
    seen = Providers()
    await client.subscribe(refer(), seen)
    assert seen.ports() == [[8001]]

    etcd.delete(f"{SERVICE}/server/127.0.0.1:8001")  # vanished, as on a lease expiry
    await client.refresh()
    assert seen.ports() == [[8001]]
    await server.unavailable(url)  # a soft signal: the list is kept too
    await client.refresh()
    assert seen.ports() == [[8001]]
    assert await client.discover(refer()) == []

    await server.available(url)
    await server.unregister(url)
    await wait_until(lambda: seen.calls[-1] == [], "the empty list after unregister")
    assert seen.ports() == [[8001], []]


async def test_commands_set_get_watch_delete(etcd: EtcdServer, make_etcd: MakeEtcd) -> None:
    reader, writer = await make_etcd(), await make_etcd()
    seen, dropped = Commands(), Commands()
    await reader.subscribe_command("demo", seen)
    await reader.subscribe_command("demo", dropped)
    assert seen.calls == []
    assert await writer.get_command("demo") is None

    await writer.set_command("demo", COMMAND)
    assert etcd.range("/motan/demo/command") == {"/motan/demo/command": (COMMAND, 0)}
    assert await reader.get_command("demo") == COMMAND
    await wait_until(lambda: seen.calls == [COMMAND], "the command")

    await reader.unsubscribe_command("demo", dropped)
    etcd.put("/motan/demo/command", "by hand")
    await wait_until(lambda: seen.calls == [COMMAND, "by hand"], "a command written by hand")

    await writer.set_command("demo", None)
    await wait_until(lambda: seen.calls[-1] is None, "the deleted command")
    assert etcd.get("/motan/demo/command") is None
    assert dropped.calls == [COMMAND]

    late = Commands()
    await writer.set_command("demo", COMMAND)
    await reader.subscribe_command("demo", late)  # the watch exists: current value at once
    await writer.subscribe_command("demo", late)  # a fresh watch: read at once
    assert late.calls[-1] == COMMAND


async def test_agent_command_and_agent_node(etcd: EtcdServer, make_etcd: MakeEtcd) -> None:
    reg = await make_etcd()
    seen = Commands()
    await reg.subscribe_agent_command("web", seen)
    await reg.set_agent_command("web", COMMAND)
    assert etcd.get("/motan/agent/web/command") == COMMAND
    assert await reg.get_agent_command("web") == COMMAND
    await wait_until(lambda: seen.calls == [COMMAND], "the agent command")
    etcd.put("/motan/agent/web/command", "")
    await wait_until(lambda: seen.calls == [COMMAND, None], "an emptied agent command")
    await reg.unsubscribe_agent_command("web", seen)

    agent = URL("motan2", "10.0.0.5", 9981, parameters={"application": "web", "mport": "8002"})
    await reg.register_agent(agent)
    node = "/motan/agent/web/node/10.0.0.5:8002"
    data, lease = etcd.range(node)[node]
    assert URL.parse(data) == agent.with_params(nodeType="agent")
    assert lease == reg.lease
    await reg.unregister_agent(agent)
    assert etcd.get(node) is None


async def test_close_revokes_the_lease(etcd: EtcdServer, make_etcd: MakeEtcd) -> None:
    reg = await make_etcd()
    await reg.register(provider(8001))
    await reg.available(provider(8001))
    await reg.subscribe(refer(), Providers())
    await reg.register_agent(URL("motan2", "10.0.0.5", 9981, parameters={"application": "web"}))
    await reg.set_command("demo", COMMAND)
    assert len(etcd.range("/motan/")) == 4
    await reg.close()
    assert etcd.range("/motan/") == {"/motan/demo/command": (COMMAND, 0)}


async def test_address_list_is_tried_in_order(etcd: EtcdServer, make_etcd: MakeEtcd) -> None:
    dead = f"127.0.0.1:{free_port()}"
    reg = EtcdRegistry(URL("etcd", parameters={**FAST, "address": f"{dead},{etcd.address}"}))
    await reg.start()
    try:
        assert reg.online
        await reg.register(provider(8001))
        assert list(keys(etcd)) == [f"{SERVICE}/unavailableServer/127.0.0.1:8001"]
    finally:
        await reg.close()


async def test_unreachable_at_start_queues_and_catches_up(
    etcd: EtcdServer, make_etcd: MakeEtcd, proxy: TcpProxy
) -> None:
    await proxy.cut()
    reg = await make_etcd(proxy.address)
    assert not reg.online
    url = provider(8001)
    await reg.register(url)
    await reg.available(url)
    [row] = reg.status()
    assert row.status is RegistryStatus.REGISTER_FAILED
    assert "queued" in row.err_msg
    seen = Providers()
    await reg.subscribe(refer(), seen)
    with pytest.raises(RegistryError):
        await reg.get_command("demo")

    await proxy.start()
    await wait_until(lambda: seen.last_ports == [8001], "the queued registration")
    assert list(keys(etcd, f"{SERVICE}/server/")) == [f"{SERVICE}/server/127.0.0.1:8001"]
    assert [s.status for s in reg.status()] == [RegistryStatus.REGISTER_SUCCESS]


async def test_not_an_etcd_gateway_fails_start() -> None:
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        reg = EtcdRegistry(etcd_url(f"127.0.0.1:{port}"))
        with pytest.raises(RegistryError, match="not an etcd v3 JSON gateway"):
            await reg.start()
        await reg.close()
    finally:
        await runner.cleanup()


def test_parameters_and_addresses() -> None:
    assert etcd_endpoints(URL("etcd", "10.0.0.1", 0)) == ["http://10.0.0.1:2379"]
    both = URL("etcd", "10.0.0.1", 2379, parameters={"address": "a:1, https://b:2,c"})
    assert etcd_endpoints(both) == ["http://a:1", "https://b:2", "http://c:2379"]
    for bad in (
        URL("etcd"),
        URL("etcd", parameters={"address": "ftp://a:1"}),
        URL("etcd", "h", 1, parameters={"ttl": "0"}),
        URL("etcd", "h", 1, parameters={"timeout": "-1"}),
    ):
        with pytest.raises(RegistryError):
            EtcdRegistry(bad)
    reg = create_registry(URL("etcd", "127.0.0.1", 2379))
    assert isinstance(reg, EtcdRegistry)
    assert reg.name == "etcd://127.0.0.1:2379"
    assert reg.supports_commands
