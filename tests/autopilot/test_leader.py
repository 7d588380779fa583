"""Leader election on real backends, and agent nodes listed by every registry."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from motanmesh.autopilot.leader import EtcdLeadership, FileLeadership, ZooKeeperLeadership
from motanmesh.registry.etcd import EtcdRegistry
from motanmesh.registry.zookeeper import ZookeeperRegistry
from motanmesh.url import URL
from tests.autopilot.helpers import wait_until
from tests.servers.etcd import EtcdServer
from tests.servers.zookeeper import ZooKeeperServer


def agent(port: int, app: str) -> URL:
    return URL("motan2", "127.0.0.1", port, "", app, {"application": app, "nodeType": "agent"})


async def test_file_lock_has_one_holder_and_passes_on(tmp_path: Path) -> None:
    path = str(tmp_path / "registry.db.autopilot-default.lock")
    one, two = FileLeadership(path, "one", retry=0.05), FileLeadership(path, "two", retry=0.05)
    await one.start()
    await two.start()
    try:
        await asyncio.sleep(0.3)
        assert one.is_leader and not two.is_leader
        await one.close()
        await wait_until(lambda: two.is_leader, "the second to hold the lock")
        assert Path(path).read_text() == "two"
    finally:
        await one.close()
        await two.close()


async def test_zookeeper_election_passes_on_when_the_leader_goes(
    zk_server: ZooKeeperServer,
) -> None:
    path = f"/motanmesh/autopilot/t{uuid.uuid4().hex[:8]}/leader"
    one = ZooKeeperLeadership(zk_server.hosts, path, "one", timeout=4.0)
    two = ZooKeeperLeadership(zk_server.hosts, path, "two", timeout=4.0)
    await one.start()
    await wait_until(lambda: one.is_leader, "the first to lead")
    await two.start()
    try:
        await asyncio.sleep(0.5)
        assert not two.is_leader
        await one.close()
        await wait_until(lambda: two.is_leader, "the second to lead")
    finally:
        await one.close()
        await two.close()


async def test_etcd_election_passes_on_when_the_lease_ends(etcd_server: EtcdServer) -> None:
    key = f"/motanmesh/autopilot/t{uuid.uuid4().hex[:8]}/leader"
    endpoints = [f"http://{etcd_server.address}"]
    one = EtcdLeadership(endpoints, key, "one", ttl=3)
    two = EtcdLeadership(endpoints, key, "two", ttl=3)
    await one.start()
    await wait_until(lambda: one.is_leader, "the first to lead")
    await two.start()
    try:
        await asyncio.sleep(1.0)
        assert not two.is_leader
        assert etcd_server.get(key) == "one"
        # the leader stops renewing (a hung process): it steps down before the key expires
        assert one._task is not None
        one._task.cancel()
        await wait_until(lambda: not one.is_leader, "the first to step down", timeout=5)
        assert not two.is_leader
        await wait_until(lambda: two.is_leader, "the second to lead", timeout=15)
        assert etcd_server.get(key) == "two"
    finally:
        await one.close()
        await two.close()


async def test_zookeeper_lists_agent_nodes(zk_server: ZooKeeperServer) -> None:
    url = URL("zookeeper", "127.0.0.1", zk_server.port, parameters={"requestTimeout": "5000"})
    registry = ZookeeperRegistry(url)
    await registry.start()
    try:
        app = f"app{uuid.uuid4().hex[:8]}"
        await registry.register_agent(agent(8002, app))
        await registry.register_agent(agent(8003, app))
        found = [u for u in await registry.agent_nodes() if u.application == app]
        assert sorted(u.address for u in found) == ["127.0.0.1:8002", "127.0.0.1:8003"]
    finally:
        await registry.close()


async def test_etcd_lists_agent_nodes(etcd_server: EtcdServer) -> None:
    host, _, port = etcd_server.address.rpartition(":")
    registry = EtcdRegistry(URL("etcd", host, int(port), parameters={"ttl": "5"}))
    await registry.start()
    try:
        app = f"app{uuid.uuid4().hex[:8]}"
        await registry.register_agent(agent(8002, app))
        found = [u for u in await registry.agent_nodes() if u.application == app]
        assert [u.address for u in found] == ["127.0.0.1:8002"]
    finally:
        await registry.close()
