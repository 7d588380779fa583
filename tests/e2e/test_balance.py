"""Three instances, each behind its own server agent (``python`` provider naming its
instance), share the calls of one client agent as its load balancer says."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.e2e.harness import (
    INSTANCE_GROUP,
    INSTANCE_SERVICE,
    AgentProcess,
    Mesh,
    client_agent_config,
    instance_client,
    refer,
    start_instances,
    wait_endpoints,
)

NAMES = ("a", "b", "c")
#: the refer's requestTimeout (ms) and the test client's timeout (s). With the default 1 s, a
#: busy machine times calls out, ten errors mark an instance down (as designed) and the split
#: is no longer the balancer's; the test is about the split, so no call may time out
REQUEST_TIMEOUT_MS = 60_000
CLIENT_TIMEOUT = 60.0


async def calls(agent: AgentProcess, total: int, batch: int) -> Counter[str]:
    """``total`` calls of ``whoami``, ``batch`` at a time: who answered, how often."""
    seen: Counter[str] = Counter()
    async with instance_client(agent, timeout=CLIENT_TIMEOUT) as client:
        for start in range(0, total, batch):
            replies = await asyncio.gather(
                *(client.call(INSTANCE_SERVICE, "whoami") for _ in range(start, start + batch))
            )
            seen.update(replies)
    return seen


async def balanced_mesh(mesh: Mesh, loadbalance: str) -> AgentProcess:
    instances = start_instances(mesh, NAMES)
    refers = {
        "instance": refer(
            INSTANCE_SERVICE,
            INSTANCE_GROUP,
            loadbalance=loadbalance,
            requestTimeout=REQUEST_TIMEOUT_MS,
        )
    }
    client = mesh.agent("client", client_agent_config("client", mesh.registry, refers))
    addresses = {i.export for i in instances.values()}
    await asyncio.to_thread(wait_endpoints, client, "instance", addresses)
    return client


@pytest.mark.parametrize("batch", [1, 30])
async def test_roundrobin_splits_evenly(mesh: Mesh, batch: int) -> None:
    client = await balanced_mesh(mesh, "roundrobin")

    seen = await calls(client, 300, batch)

    assert sum(seen.values()) == 300
    assert set(seen) == set(NAMES)
    for name in NAMES:
        assert abs(seen[name] - 100) <= 3, seen
    mesh.check_alive()


async def test_random_reaches_every_instance(mesh: Mesh) -> None:
    client = await balanced_mesh(mesh, "random")

    seen = await calls(client, 300, 30)

    assert sum(seen.values()) == 300
    # each instance's share is binomial(300, 1/3): far from 0 and from 300
    assert all(40 <= seen[name] <= 160 for name in NAMES), seen
