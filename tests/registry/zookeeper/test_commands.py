"""Service and agent command nodes in ZooKeeper."""

from __future__ import annotations

from typing import Any

import pytest
from kazoo.security import make_acl, make_digest_acl

from motanmesh.registry import RegistryError
from tests.registry.conftest import Commands, wait_until
from tests.registry.zookeeper.conftest import MakeRegistry, tree
from tests.registry.zookeeper.test_config import java_string

TRAFFIC = '{"clientCommandList":[{"index":1,"commandType":0,"pattern":"*"}]}'
CLEARED = '{"clientCommandList":[]}'


async def test_subscribe_creates_the_node_and_follows_its_data(
    raw: Any, group: str, make_registry: MakeRegistry
) -> None:
    agent, ctl = await make_registry(), await make_registry()
    seen = Commands()
    await agent.subscribe_command(group, seen)
    path = f"/motan/{group}/command"
    assert tree(raw, f"/motan/{group}") == {path: ("", 0)}  # persistent and empty
    assert seen.calls == []

    await ctl.set_command(group, TRAFFIC)
    await wait_until(lambda: seen.calls == [TRAFFIC], "the command")
    assert raw.get(path)[0] == TRAFFIC.encode()  # plain UTF-8, as motan-go writes it
    assert await agent.get_command(group) == TRAFFIC

    await ctl.set_command(group, CLEARED)
    await wait_until(lambda: seen.calls == [TRAFFIC, CLEARED], "the cleared command")
    raw.set(path, b"")  # empty data counts as no command
    await wait_until(lambda: seen.calls == [TRAFFIC, CLEARED, None], "empty data")
    assert await agent.get_command(group) is None


async def test_deleted_command_notifies_none_and_is_watched_again(
    raw: Any, group: str, make_registry: MakeRegistry
) -> None:
    agent, ctl = await make_registry(), await make_registry()
    await ctl.set_command(group, TRAFFIC)  # created with its parents
    seen = Commands()
    await agent.subscribe_command(group, seen)
    assert seen.calls == [TRAFFIC]  # the current value, right away
    late = Commands()
    await agent.subscribe_command(group, late)
    assert late.calls == [TRAFFIC]

    await ctl.set_command(group, None)
    assert raw.exists(f"/motan/{group}/command") is None
    await wait_until(lambda: seen.calls == [TRAFFIC, None], "the deletion")
    assert await ctl.get_command(group) is None
    await ctl.set_command(group, CLEARED)  # created again: still watched
    await wait_until(lambda: seen.calls == [TRAFFIC, None, CLEARED], "the new node")

    await agent.unsubscribe_command(group, seen)
    await ctl.set_command(group, TRAFFIC)
    await wait_until(lambda: late.calls[-1] == TRAFFIC, "the remaining listener")
    assert seen.calls == [TRAFFIC, None, CLEARED]


async def test_agent_command(raw: Any, group: str, make_registry: MakeRegistry) -> None:
    agent, ctl = await make_registry(), await make_registry()
    seen = Commands()
    await agent.subscribe_agent_command(group, seen)
    path = f"/motan/agent/{group}/command"
    assert raw.exists(path) is not None
    await ctl.set_agent_command(group, TRAFFIC)
    await wait_until(lambda: seen.calls == [TRAFFIC], "the agent command")
    assert await agent.get_agent_command(group) == TRAFFIC
    assert await agent.get_command(group) is None  # a different node
    await agent.unsubscribe_agent_command(group, seen)
    await ctl.set_agent_command(group, None)
    assert await ctl.get_agent_command(group) is None
    assert raw.exists(path) is None


async def test_java_serialized_command(raw: Any, group: str, make_registry: MakeRegistry) -> None:
    reg = await make_registry()
    raw.create(f"/motan/{group}/command", java_string(TRAFFIC), makepath=True)
    assert await reg.get_command(group) == TRAFFIC
    seen = Commands()
    await reg.subscribe_command(group, seen)
    assert seen.calls == [TRAFFIC]


async def test_command_node_that_cannot_be_created_is_still_watched(
    raw: Any, group: str, make_registry: MakeRegistry
) -> None:
    raw.add_auth("digest", "admin:secret")
    raw.ensure_path("/motan")
    acl = [make_digest_acl("admin", "secret", all=True), make_acl("world", "anyone", read=True)]
    raw.create(f"/motan/{group}", acl=acl)  # others may read, not create
    reg = await make_registry()
    seen = Commands()
    await reg.subscribe_command(group, seen)
    assert raw.exists(f"/motan/{group}/command") is None
    raw.create(f"/motan/{group}/command", TRAFFIC.encode())
    await wait_until(lambda: seen.calls == [TRAFFIC], "the command created by its owner")
    with pytest.raises(RegistryError, match="NoAuth"):
        await reg.set_command(group, None)  # deleting needs a permission it lacks
