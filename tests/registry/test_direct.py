"""The direct registry: static provider lists from the configuration."""

from __future__ import annotations

import pytest

from motanmesh.registry import DirectRegistry, RegistryError
from motanmesh.url import URL
from tests.registry.conftest import Commands, Providers, refer


def direct(address: str = "", host: str = "", port: int = 0) -> DirectRegistry:
    params = {"address": address} if address else {}
    return DirectRegistry(URL("direct", host, port, parameters=params))


async def test_address_list_gives_copies_of_the_refer() -> None:
    registry = direct(" 10.0.0.1:8001,10.0.0.2:8002 ,")
    found = await registry.discover(refer())
    assert found == [
        refer().copy(host="10.0.0.1", port=8001),
        refer().copy(host="10.0.0.2", port=8002),
    ]
    assert all(u.parameters == refer().parameters for u in found)
    assert registry.name == "direct://10.0.0.1:8001,10.0.0.2:8002"


async def test_group_prefix_unix_socket_and_ipv6_entries() -> None:
    registry = direct("other@10.0.0.1:8001,unix:///tmp/agent.sock,[::1]:8003,g2@unix:///x.sock")
    found = await registry.discover(refer())
    assert [(u.group, u.host, u.port) for u in found] == [
        ("other", "10.0.0.1", 8001),
        ("demo", "unix:///tmp/agent.sock", 0),
        ("demo", "::1", 8003),
        ("g2", "unix:///x.sock", 0),
    ]
    assert found[1].address == "unix:///tmp/agent.sock"
    assert registry.name == (
        "direct://other@10.0.0.1:8001,unix:///tmp/agent.sock,[::1]:8003,g2@unix:///x.sock"
    )


async def test_host_and_port_of_the_registry_url() -> None:
    found = await direct(host="127.0.0.1", port=9982).discover(refer())
    assert [u.address for u in found] == ["127.0.0.1:9982"]
    unix = await direct(host="unix:///tmp/s.sock").discover(refer())
    assert [u.host for u in unix] == ["unix:///tmp/s.sock"]


@pytest.mark.parametrize(
    "address",
    ["10.0.0.1", "10.0.0.1:x", "10.0.0.1:0", "10.0.0.1:70000", "@10.0.0.1:1", "::1:80", "[::1]"],
)
def test_bad_entries_are_refused(address: str) -> None:
    with pytest.raises(RegistryError, match="direct registry"):
        direct(address)


async def test_host_and_port_win_over_address_as_in_the_go_agent() -> None:
    registry = direct("10.0.0.1:8001", host="127.0.0.1", port=9982)
    assert [u.address for u in await registry.discover(refer())] == ["127.0.0.1:9982"]
    # a host without a port is no address: the list comes from ``address``
    registry = direct("10.0.0.1:8001", host="localhost")
    assert [u.address for u in await registry.discover(refer())] == ["10.0.0.1:8001"]


@pytest.mark.parametrize("address", ["", " , "])
async def test_a_registry_naming_no_provider_is_empty(address: str) -> None:
    registry = direct(address)
    async with registry:
        assert await registry.discover(refer()) == []
        seen = Providers()
        await registry.subscribe(refer(), seen)
        assert seen.ports() == [[]]
        await registry.register(refer())  # registers nowhere, and says nothing
        await registry.available()
        await registry.unregister(refer())


async def test_subscribe_hands_the_list_at_once_and_writes_nothing() -> None:
    registry = direct("10.0.0.1:8001")
    async with registry:
        seen = Providers()
        await registry.subscribe(refer(), seen)
        assert seen.ports() == [[8001]]
        await registry.register(refer())
        await registry.available()
        await registry.unavailable(refer())
        await registry.unregister(refer())
        await registry.register_agent(refer())
        await registry.unregister_agent(refer())
        await registry.unsubscribe(refer(), seen)
        assert registry.status() == []
        commands = Commands()
        await registry.subscribe_command("demo", commands)
        await registry.subscribe_agent_command("app", commands)
        await registry.unsubscribe_command("demo", commands)
        await registry.unsubscribe_agent_command("app", commands)
        assert commands.calls == []
        assert await registry.get_command("demo") is None
        assert await registry.get_agent_command("app") is None
        assert not registry.supports_commands
        with pytest.raises(RegistryError, match="does not store commands"):
            await registry.set_command("demo", "{}")
        with pytest.raises(RegistryError, match="does not store commands"):
            await registry.set_agent_command("app", "{}")
