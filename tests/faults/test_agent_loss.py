"""A server agent is SIGKILLed under load (ZooKeeper, etcd): its node goes away when its
session or lease expires, traffic moves to the remaining instance, and with one failover retry
not a single call fails."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.e2e.harness import (
    INSTANCE_GROUP,
    INSTANCE_SERVICE,
    Mesh,
    instance_client,
    wait_endpoints,
)
from tests.faults.conftest import Backend
from tests.faults.support import (
    Traffic,
    agent_config,
    instance_refer,
    instance_servers,
    wait_nodes,
)

pytestmark = pytest.mark.slow

#: each call stays this long in the instance, so some are in flight when it dies
CALL_MS = 20


async def test_killed_server_agent_leaves_and_no_call_fails(mesh: Mesh, backend: Backend) -> None:
    instances = instance_servers(mesh, backend.registry(), ("a", "b"))
    everyone = {i.export for i in instances.values()}
    await wait_nodes(backend, INSTANCE_GROUP, INSTANCE_SERVICE, everyone)
    config = agent_config("client", backend.registry(), refers={"instance": instance_refer()})
    client = mesh.agent("client", config)
    await asyncio.to_thread(wait_endpoints, client, "instance", everyone)
    victim, survivor = instances["b"], instances["a"]

    async with instance_client(client) as app:
        traffic = Traffic(lambda: app.call(INSTANCE_SERVICE, "slow", CALL_MS), workers=16)
        await asyncio.sleep(1.0)
        victim.agent.send(signal.SIGKILL)
        assert await asyncio.to_thread(victim.agent.wait, 5) == -signal.SIGKILL
        # the node goes away with the session / lease, and the client follows the registry
        await wait_nodes(backend, INSTANCE_GROUP, INSTANCE_SERVICE, {survivor.export})
        await asyncio.to_thread(wait_endpoints, client, "instance", {survivor.export})
        traffic.load.marked = True
        await asyncio.sleep(1.0)
        load = await traffic.stop()

    assert load.failures == [], f"{len(load.failures)} of {load.calls} failed: {load.failures[:3]}"
    assert load.replies["b"] > 0, load.replies  # the victim served before it died
    assert load.after_mark["b"] == 0 and load.after_mark["a"] > 0, load.after_mark
