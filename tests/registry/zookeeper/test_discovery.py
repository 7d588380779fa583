"""Discovery through ZooKeeper watches, with nodes written by this registry and by others."""

from __future__ import annotations

from typing import Any

from tests.registry.conftest import Providers, provider, refer, wait_until
from tests.registry.zookeeper.conftest import MakeRegistry
from tests.registry.zookeeper.test_config import java_string

SERVICE = "com.example.Echo"


def server_dir(group: str) -> str:
    return f"/motan/{group}/{SERVICE}/server"


async def test_subscribe_follows_providers_of_another_registry(
    group: str, make_registry: MakeRegistry
) -> None:
    server, client = await make_registry(), await make_registry()
    await server.register(provider(8001, group=group))
    await server.available(provider(8001, group=group))
    seen = Providers()
    await client.subscribe(refer(group=group), seen)
    assert seen.ports() == [[8001]]  # the current list, right away
    assert seen.calls[0] == [provider(8001, group=group)]

    await server.register(provider(8002, group=group))
    await server.available(provider(8002, group=group))
    await wait_until(lambda: seen.last_ports == [8001, 8002], "second provider")
    await server.unavailable(provider(8001, group=group))
    await wait_until(lambda: seen.last_ports == [8002], "first provider offline")
    assert await client.discover(refer(group=group)) == [provider(8002, group=group)]
    assert [] not in seen.ports()


async def test_node_written_like_the_go_agent_is_discovered(
    raw: Any, group: str, make_registry: MakeRegistry
) -> None:
    reg = await make_registry()
    go_url = "motan2://10.2.0.7:9982/com.example.Echo?group={g}&nodeType=service&weight=3"
    go_url = go_url.format(g=group)
    raw.create(f"{server_dir(group)}/10.2.0.7:9982", go_url.encode(), ephemeral=True, makepath=True)
    seen = Providers()
    await reg.subscribe(refer(group=group), seen)
    [[found]] = seen.calls
    assert (found.host, found.port, found.group, found.weight) == ("10.2.0.7", 9982, group, 3)
    assert found.to_ext_info() == go_url  # byte-identical text form
    assert await reg.discover(refer(group=group)) == [found]


async def test_java_serialized_and_empty_node_data(
    raw: Any, group: str, make_registry: MakeRegistry
) -> None:
    reg = await make_registry()
    java_url = f"motan2://10.3.0.1:8100/{SERVICE}?group={group}&serialization=hessian2"
    raw.create(f"{server_dir(group)}/10.3.0.1:8100", java_string(java_url), makepath=True)
    raw.create(f"{server_dir(group)}/10.3.0.2:8200", b"", ephemeral=True)
    raw.create(f"{server_dir(group)}/10.3.0.3", b"", ephemeral=True)  # no port: 80
    raw.create(f"{server_dir(group)}/junk", b"not a url", ephemeral=True)  # skipped
    found = await reg.discover(refer(group=group))
    assert sorted((u.host, u.port) for u in found) == [
        ("10.3.0.1", 8100),
        ("10.3.0.2", 8200),
        ("10.3.0.3", 80),
    ]
    by_host = {u.host: u for u in found}
    assert by_host["10.3.0.1"].serialization == "hessian2"
    # Built from the node name on a copy of the refer: its group, path and parameters.
    assert by_host["10.3.0.2"] == refer(group=group).copy(host="10.3.0.2", port=8200)
    seen = Providers()
    await reg.subscribe(refer(group=group), seen)
    assert seen.ports() == [[80, 8100, 8200]]


async def test_subscribe_before_the_server_node_exists(
    raw: Any, group: str, make_registry: MakeRegistry
) -> None:
    consumer, producer = await make_registry(), await make_registry()
    seen = Providers()
    await consumer.subscribe(refer(group=group), seen)
    assert raw.exists(server_dir(group)) is None  # still no server node
    assert seen.calls == []
    await producer.register(provider(8001, group=group))
    await producer.available(provider(8001, group=group))
    await wait_until(lambda: seen.ports() == [[8001]], "the first provider")

    # The whole service directory removed and created again: still watched.
    await producer.unregister(provider(8001, group=group))
    raw.delete(f"/motan/{group}/{SERVICE}/server", recursive=True)
    await producer.available(provider(8003, group=group))
    await wait_until(lambda: seen.last_ports == [8003], "a provider in the re-created node")


async def test_vanished_providers_keep_the_last_list(
    raw: Any, group: str, make_registry: MakeRegistry
) -> None:
    reg = await make_registry()
    raw.create(f"{server_dir(group)}/10.0.0.1:1", b"", ephemeral=True, makepath=True)
    raw.create(f"{server_dir(group)}/10.0.0.2:2", b"", ephemeral=True)
    seen = Providers()
    await reg.subscribe(refer(group=group), seen)
    assert seen.ports() == [[1, 2]]
    raw.delete(f"{server_dir(group)}/10.0.0.1:1")
    await wait_until(lambda: seen.last_ports == [2], "a partial change")
    raw.delete(f"{server_dir(group)}/10.0.0.2:2")  # the last one vanishes: kept
    await reg.refresh()
    assert seen.ports() == [[1, 2], [2]]
    raw.create(f"{server_dir(group)}/10.0.0.4:4", b"", ephemeral=True)
    await wait_until(lambda: seen.last_ports == [4], "a new provider")
    assert [] not in seen.ports()
    assert await reg.discover(refer(group=group)) == [
        refer(group=group).copy(host="10.0.0.4", port=4)
    ]


async def test_unregistering_every_provider_here_notifies_the_empty_list(
    group: str, make_registry: MakeRegistry
) -> None:
    reg = await make_registry()
    seen = Providers()
    await reg.subscribe(refer(group=group), seen)
    await reg.available(provider(8001, group=group))
    await reg.available(provider(8002, group=group))
    await wait_until(lambda: seen.last_ports == [8001, 8002], "both providers")
    await reg.unavailable(provider(8001, group=group))  # soft: a partial change
    await wait_until(lambda: seen.last_ports == [8002], "one offline")
    await reg.unavailable(provider(8002, group=group))  # the last one offline: kept
    await reg.refresh()
    assert seen.last_ports == [8002]
    await reg.available(provider(8002, group=group))
    await reg.unregister(provider(8002, group=group))  # deliberately removed: empty
    await wait_until(lambda: seen.last_ports == [], "the empty list")
    assert seen.ports().count([]) == 1


async def test_listeners_and_discover_on_two_services(
    group: str, make_registry: MakeRegistry
) -> None:
    reg = await make_registry()
    echo, other = Providers(), Providers()
    await reg.subscribe(refer(group=group), echo)
    await reg.subscribe(refer(path="com.example.Other", group=group), other)
    await reg.available(provider(8001, group=group))
    await reg.available(provider(8002, path="com.example.Other", group=group))
    await wait_until(lambda: echo.last_ports == [8001], "echo provider")
    await wait_until(lambda: other.last_ports == [8002], "other provider")
    await reg.unsubscribe(refer(group=group), echo)
    await reg.available(provider(8003, group=group))
    assert await reg.discover(refer(group=group)) == [
        provider(8001, group=group),
        provider(8003, group=group),
    ]
    await reg.available(provider(8004, path="com.example.Other", group=group))
    await wait_until(lambda: other.last_ports == [8002, 8004], "other's second provider")
    assert echo.ports() == [[8001]]  # no longer notified
    assert await reg.discover(refer(path="com.example.Missing", group=group)) == []
