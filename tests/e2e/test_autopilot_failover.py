"""Two ``motanmesh autopilot`` processes on ZooKeeper, then on etcd: one leads and writes;
when it is killed (SIGKILL: no clean-up, its ZooKeeper session or etcd lease must expire) the
other takes over and finishes the job, and every write in the registry's audit trail was made
by the leader of the moment."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from motanmesh.autopilot.decisions import read_decisions
from motanmesh.control.audit import AuditTrail, CommandTarget
from motanmesh.registry.base import Registry
from motanmesh.registry.etcd import EtcdRegistry
from motanmesh.registry.zookeeper import ZookeeperRegistry
from motanmesh.url import URL
from tests.autopilot.helpers import (
    GROUP_A,
    GROUP_B,
    SERVICE,
    MetricsAgent,
    client_series,
    wait_for,
)
from tests.e2e.harness import Mesh, Process, free_port
from tests.servers import missing_server
from tests.servers.etcd import EtcdServer, etcd_binary
from tests.servers.zookeeper import ZooKeeperServer, zookeeper_missing

pytestmark = pytest.mark.slow


@pytest.fixture(params=["zookeeper", "etcd"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, URL]]:
    """A real registry server: (the autopilot's ``registry`` value, its URL)."""
    if request.param == "zookeeper":
        reason = zookeeper_missing()
        if reason is not None:
            missing_server(f"ZooKeeper is required here: {reason}")
        zookeeper = ZooKeeperServer()
        zookeeper.start()
        yield f"zookeeper://{zookeeper.hosts}", URL("zookeeper", "127.0.0.1", zookeeper.port)
        zookeeper.close()
        return
    if etcd_binary() is None:
        missing_server("etcd is required here (Debian's etcd-server or MOTANMESH_ETCD)")
    etcd = EtcdServer(tmp_path / "etcd")
    etcd.start()
    yield f"etcd://{etcd.address}", URL("etcd", "127.0.0.1", etcd.client_port)
    etcd.stop()


def open_registry(url: URL) -> Registry:
    if url.protocol == "zookeeper":
        return ZookeeperRegistry(url)
    return EtcdRegistry(url)


@pytest.fixture
async def agent() -> AsyncIterator[MetricsAgent]:
    metrics = MetricsAgent(client_series(GROUP_A, 50.0), client_series(GROUP_B, 10.0))
    await metrics.start()
    yield metrics
    await metrics.close()


def config(tmp: Path, name: str, registry: str, agent: MetricsAgent, port: int) -> Path:
    doc: dict[str, Any] = {
        "registry": registry,
        "name": "failover",
        "interval": 0.3,
        "window": 1.5,
        "staleAfter": 5,
        "leaderTtl": 4,
        "decisionLog": str(tmp / f"{name}.jsonl"),
        "console": {"port": port},
        "telemetry": [
            {"type": "agents", "interval": 0.3, "discover": False, "targets": [agent.address]}
        ],
        "services": [
            {
                "service": SERVICE,
                "groups": [GROUP_A, GROUP_B],
                "capacity": {"perInstance": 100, "instances": {GROUP_A: 1, GROUP_B: 1}},
                "policy": {"hold": 2, "cooldown": 1},
            }
        ],
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def leader(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=2) as r:
            return bool(json.loads(r.read())["leader"])
    except OSError:
        return False


async def moved(registry: Registry) -> int:
    raw = await registry.get_command(GROUP_A)
    if not raw:
        return 0
    commands = json.loads(raw)["clientCommandList"]
    return sum(
        int(g.rpartition(":")[2])
        for c in commands
        for g in c["mergeGroups"]
        if g.startswith(GROUP_B + ":")
    )


async def test_the_follower_takes_over_when_the_leader_is_killed(
    tmp_path: Path, server: tuple[str, URL], agent: MetricsAgent
) -> None:
    mesh = Mesh(tmp_path)
    address, url = server
    registry = open_registry(url)
    await registry.start()
    ports = {"one": free_port(), "two": free_port()}
    procs: dict[str, Process] = {}
    try:
        for name in ("one", "two"):
            path = config(tmp_path, name, address, agent, ports[name])
            procs[name] = mesh.spawn(f"autopilot-{name}", "autopilot", "-c", str(path))
            await asyncio.to_thread(procs[name].wait_output, "motanmesh autopilot ready:")
            if name == "one":
                await wait_for(lambda: asyncio.to_thread(leader, ports["one"]), "one to lead")
        assert not await asyncio.to_thread(leader, ports["two"])

        agent.series[0].rate = 130.0
        await wait_for(lambda: _at_least(registry, 25), "the leader's shift")
        await wait_for(lambda: _logged(tmp_path / "one.jsonl"), "the shift in one's log")
        procs["one"].send(signal.SIGKILL)
        procs["one"].wait(10)
        agent.series[0].rate = 20.0
        await wait_for(lambda: asyncio.to_thread(leader, ports["two"]), "two to lead", 30)
        await wait_for(lambda: _home(registry), "traffic home, written by two", 40)
        # the node is written before the decision is logged: wait for the log too
        await wait_for(lambda: _logged_home(tmp_path / "two.jsonl"), "two's log of the return")
    finally:
        mesh.close()
        trail = AuditTrail(registry)
        audit = await trail.history(CommandTarget("group", GROUP_A))
        await registry.close()
    one = [d for d in read_decisions(tmp_path / "one.jsonl") if d.written]
    two = [d for d in read_decisions(tmp_path / "two.jsonl") if d.written]
    assert one and two
    assert two[-1].after == {GROUP_A: 100}
    assert all(d.time < two[0].time for d in one)
    assert len(audit) == len(one) + len(two)
    follower_rounds = [d for d in read_decisions(tmp_path / "two.jsonl") if not d.leader]
    assert follower_rounds and not any(d.written for d in follower_rounds)


async def _at_least(registry: Registry, share: int) -> bool:
    return await moved(registry) >= share


async def _logged(path: Path) -> bool:
    return any(d.written for d in read_decisions(path))


async def _logged_home(path: Path) -> bool:
    return any(d.written and d.after == {GROUP_A: 100} for d in read_decisions(path))


async def _home(registry: Registry) -> bool:
    return await registry.get_command(GROUP_A) == '{"clientCommandList":[]}'
