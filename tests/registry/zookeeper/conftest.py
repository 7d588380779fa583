"""Fixtures for the ZooKeeper registry tests: real servers, plain kazoo clients, registries."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from motanmesh.registry.zookeeper import ZookeeperRegistry
from motanmesh.url import URL
from tests.servers import servers_required
from tests.servers.zookeeper import ZooKeeperServer, zookeeper_missing

MakeRegistry = Callable[..., Awaitable[ZookeeperRegistry]]


def skip_without_zookeeper() -> None:
    """Skip (or fail, when servers are required) if no ZooKeeper server can run here."""
    reason = zookeeper_missing()
    if reason is not None:
        if servers_required():
            pytest.fail(f"ZooKeeper is required here: {reason}")
        pytest.skip(reason)


def new_server(**options: int) -> ZooKeeperServer:
    """A started server (see ``skip_without_zookeeper``)."""
    skip_without_zookeeper()
    server = ZooKeeperServer(**options)
    server.start()
    return server


def registry_url(server: ZooKeeperServer, **params: str) -> URL:
    """A registry URL on ``server`` with test-friendly timeouts (overridable)."""
    defaults = {"requestTimeout": "5000", "connectTimeout": "15000"}
    return URL("zookeeper", "127.0.0.1", server.port, parameters={**defaults, **params})


def raw_client(server: ZooKeeperServer) -> KazooClient:
    """A plain kazoo client, as the Go agent or an operator's tool would use."""
    client = KazooClient(hosts=server.hosts, timeout=10.0)
    client.start(timeout=15)
    return client


def stop_client(client: Any) -> None:
    client.stop()
    client.close()


def tree(client: Any, root: str) -> dict[str, tuple[str, int]]:
    """``path → (data, ephemeral owner)`` of every node below ``root`` (not ``root`` itself)."""
    found: dict[str, tuple[str, int]] = {}
    try:
        names = client.get_children(root)
    except NoNodeError:
        return found
    for name in names:
        path = f"{root}/{name}"
        try:
            data, stat = client.get(path)
        except NoNodeError:  # gone meanwhile
            continue
        found[path] = ((data or b"").decode(), stat.ephemeralOwner)
        found.update(tree(client, path))
    return found


def leaves(client: Any, root: str) -> dict[str, str]:
    """``path → data`` of the ephemeral nodes below ``root``."""
    return {path: data for path, (data, owner) in tree(client, root).items() if owner}


@pytest.fixture(scope="session")
def zk_server() -> Iterator[ZooKeeperServer]:
    """One server shared by the tests that do not stop it (each test uses its own group)."""
    server = new_server()
    yield server
    server.close()


@pytest.fixture
def own_server() -> Iterator[ZooKeeperServer]:
    """A server of this test alone, which it may stop and restart."""
    server = new_server(max_session_ms=60_000)
    yield server
    server.close()


@pytest.fixture
def idle_server() -> Iterator[ZooKeeperServer]:
    """A server of this test with a port and data directory, not started yet."""
    skip_without_zookeeper()
    server = ZooKeeperServer()
    yield server
    server.close()


@pytest.fixture
def group() -> str:
    """A group name no other test uses."""
    return f"g{uuid.uuid4().hex[:12]}"


@pytest.fixture
def raw(zk_server: ZooKeeperServer) -> Iterator[Any]:
    client = raw_client(zk_server)
    yield client
    stop_client(client)


@pytest.fixture
async def make_registry(zk_server: ZooKeeperServer) -> AsyncIterator[MakeRegistry]:
    """``await make_registry(server=None, **params)``: a started registry, closed afterwards."""
    made: list[ZookeeperRegistry] = []

    async def make(server: ZooKeeperServer | None = None, **params: str) -> ZookeeperRegistry:
        registry = ZookeeperRegistry(registry_url(server or zk_server, **params))
        made.append(registry)
        await registry.start()
        return registry

    yield make
    for registry in made:
        await registry.close()
