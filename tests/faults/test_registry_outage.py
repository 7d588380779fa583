"""The registry goes away (ZooKeeper, etcd): calls keep flowing, agents find their way back,
and an agent restarted meanwhile serves from its discovery snapshot."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

from motanmesh.sdk.client import MotanClient
from tests.e2e.harness import (
    DEMO_GROUP,
    DEMO_SERVICE,
    AgentProcess,
    Mesh,
    wait_endpoints,
    wait_for,
)
from tests.faults.conftest import Backend
from tests.faults.support import Traffic, agent_config, demo_refer, demo_servers, wait_nodes

pytestmark = pytest.mark.slow

#: how long the registry stays down
OUTAGE_SECONDS = 30.0


def demo_client(agent: AgentProcess) -> MotanClient:
    return MotanClient(agent.address, application="faults-app", group=DEMO_GROUP, timeout=5.0)


async def test_registry_outage_loses_no_call(mesh: Mesh, backend: Backend) -> None:
    _servers, exports = demo_servers(mesh, backend, 2)
    await wait_nodes(backend, DEMO_GROUP, DEMO_SERVICE, exports)
    client = mesh.agent(
        "client", agent_config("client", backend.registry(), refers={"demo": demo_refer()})
    )
    await asyncio.to_thread(wait_endpoints, client, "demo", exports)
    async with demo_client(client) as app:
        traffic = Traffic(lambda: app.call(DEMO_SERVICE, "hello", "outage"))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(backend.stop)
        await asyncio.sleep(OUTAGE_SECONDS)
        during = traffic.load.calls
        await asyncio.to_thread(backend.start)
        # every server agent's node is back (re-registered on a new session or lease)
        await wait_nodes(backend, DEMO_GROUP, DEMO_SERVICE, exports)
        await asyncio.to_thread(wait_endpoints, client, "demo", exports)
        traffic.load.marked = True
        await asyncio.sleep(2.0)
        load = await traffic.stop()

    mesh.check_alive()
    assert load.failures == [], f"{len(load.failures)} of {load.calls} failed: {load.failures[:3]}"
    assert during > 0 and load.after_mark["hello outage"] > 0, (during, load.after_mark)
    assert set(load.replies) == {"hello outage"}


async def test_agent_restarted_during_outage_serves_from_snapshot(
    mesh: Mesh, backend: Backend
) -> None:
    _servers, exports = demo_servers(mesh, backend, 1)
    config = agent_config("client", backend.registry(), refers={"demo": demo_refer()})
    client = mesh.agent("client", config)
    await asyncio.to_thread(wait_endpoints, client, "demo", exports)
    snapshot = mesh.workdir / "client-snapshot" / f"{DEMO_GROUP}_{DEMO_SERVICE}"

    def saved() -> set[str]:
        try:
            doc = json.loads(snapshot.read_text())
        except (OSError, ValueError):
            return set()
        return {node["address"] for node in doc["nodes"]}

    await asyncio.to_thread(wait_for, lambda: saved() == exports, "the client's snapshot")
    await asyncio.to_thread(backend.stop)
    client.send(signal.SIGKILL)
    await asyncio.to_thread(client.wait, 10)

    restarted = mesh.agent("client-restarted", config)
    # nothing but the snapshot can name the provider now
    await asyncio.to_thread(wait_endpoints, restarted, "demo", exports)
    async with demo_client(restarted) as app:
        replies = [await app.call(DEMO_SERVICE, "hello", i) for i in range(20)]
    assert replies == [f"hello {i}" for i in range(20)]

    # the registry comes back: its list replaces the snapshot's, calls keep working
    await asyncio.to_thread(backend.start)
    await wait_nodes(backend, DEMO_GROUP, DEMO_SERVICE, exports)
    async with demo_client(restarted) as app:
        assert await app.call(DEMO_SERVICE, "hello", "back") == "hello back"
    assert "serving 1 providers from snapshot" in restarted.output()
