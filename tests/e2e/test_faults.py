"""Losing an instance under load: SIGKILL with failover retries, SIGTERM with a drain. Calls
flow all the time through the client agent; not one of them may fail."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.e2e.harness import (
    INSTANCE_GROUP,
    INSTANCE_SERVICE,
    LOAD_TIMEOUT_MS,
    AgentProcess,
    Instance,
    Load,
    Mesh,
    available_endpoints,
    client_agent_config,
    instance_client,
    refer,
    registry_nodes,
    run_load,
    start_instances,
    wait_endpoints,
    wait_for,
)

pytestmark = pytest.mark.slow

DRAIN_SECONDS = 2
#: how long each call stays in the instance, and how many run at once: many calls are in
#: flight on the instance when it goes away
CALL_MS = 20
WORKERS = 48


async def failover_mesh(
    mesh: Mesh, names: tuple[str, ...]
) -> tuple[dict[str, Instance], AgentProcess]:
    instances = start_instances(mesh, names, drainTime=DRAIN_SECONDS)
    refers = {
        "instance": refer(
            INSTANCE_SERVICE,
            INSTANCE_GROUP,
            loadbalance="roundrobin",
            haStrategy="failover",
            retries=1,
            requestTimeout=LOAD_TIMEOUT_MS,
        )
    }
    client = mesh.agent("client", client_agent_config("client", mesh.registry, refers))
    addresses = {i.export for i in instances.values()}
    await asyncio.to_thread(wait_endpoints, client, "instance", addresses)
    return instances, client


def wait_gone(client: AgentProcess, victim: Instance) -> None:
    wait_for(
        lambda: victim.export not in available_endpoints(client, "instance"),
        f"the client agent to notice that {victim.name} is gone",
    )


async def test_sigkill_under_load_loses_no_call(mesh: Mesh) -> None:
    """Two of four instances are killed, one after the other, while calls flow."""
    instances, client = await failover_mesh(mesh, ("a", "b", "c", "d"))
    victims = [instances["c"], instances["d"]]
    load = Load()
    stop = asyncio.Event()
    async with instance_client(client) as app:
        task = asyncio.ensure_future(
            run_load(lambda: app.call(INSTANCE_SERVICE, "slow", CALL_MS), stop, load, WORKERS)
        )
        for victim in victims:
            await asyncio.sleep(1.0)
            victim.agent.send(signal.SIGKILL)
            assert await asyncio.to_thread(victim.agent.wait, 5) == -signal.SIGKILL
            # One loss at a time, as the client agent sees it: a call that failed on one
            # victim is retried once (retries=1), and must not be retried on the other victim
            # while the agent has not yet read that it is gone. On a busy machine the agent
            # can read both resets in one go when the kills are only a second apart.
            await asyncio.to_thread(wait_gone, client, victim)
        load.marked = True
        # long enough for the dead nodes' registry leases to expire and the cluster to drop them
        survivors = {instances["a"].export, instances["b"].export}
        await asyncio.to_thread(wait_endpoints, client, "instance", survivors)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.wait_for(task, 10)

    assert load.failures == [], f"{len(load.failures)} of {load.calls} calls failed"
    assert load.replies["c"] > 0 and load.replies["d"] > 0, load.replies  # they were serving
    assert load.after_mark["c"] == load.after_mark["d"] == 0
    assert load.after_mark["a"] > 0 and load.after_mark["b"] > 0, load.after_mark
    assert client.alive, client.describe()


async def test_sigterm_drains_under_load(mesh: Mesh) -> None:
    instances, client = await failover_mesh(mesh, ("a", "b"))
    leaving = instances["b"]
    host, port = leaving.export.split(":")
    node = f"{host}:{port}"
    assert node in registry_nodes(mesh.registry, INSTANCE_GROUP, INSTANCE_SERVICE, "server")
    load = Load()
    stop = asyncio.Event()
    async with instance_client(client) as app:
        task = asyncio.ensure_future(
            run_load(lambda: app.call(INSTANCE_SERVICE, "slow", CALL_MS), stop, load, WORKERS)
        )
        await asyncio.sleep(1.0)
        leaving.agent.send(signal.SIGTERM)
        load.marked = True

        def unavailable() -> bool:
            nodes = registry_nodes(mesh.registry, INSTANCE_GROUP, INSTANCE_SERVICE, "server")
            down = registry_nodes(
                mesh.registry, INSTANCE_GROUP, INSTANCE_SERVICE, "unavailableServer"
            )
            return node not in nodes and node in down

        # during the drain the node is unavailable, and the process still runs
        await asyncio.to_thread(wait_for, unavailable, "the draining node to be unavailable", 5)
        draining = leaving.agent.alive
        code = await asyncio.to_thread(leaving.agent.wait, DRAIN_SECONDS + 5)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.wait_for(task, 10)

    assert draining, "the agent exited before its drain period"
    assert code == 0, leaving.agent.describe()
    assert load.failures == [], f"{len(load.failures)} of {load.calls} calls failed"
    assert load.replies["b"] > 0, load.replies
    assert load.after_mark["a"] > 0, load.after_mark
    for node_type in ("server", "unavailableServer"):
        assert node not in registry_nodes(
            mesh.registry, INSTANCE_GROUP, INSTANCE_SERVICE, node_type
        ), node_type
    assert "draining" in leaving.agent.output()
    assert client.alive and instances["a"].agent.alive
