"""Fixtures of the autopilot tests: an embedded registry file and a registry on it; real
ZooKeeper and etcd servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from motanmesh.registry.embedded import EmbeddedRegistry
from tests.autopilot.helpers import embedded_url
from tests.servers import servers_required
from tests.servers.etcd import EtcdServer, etcd_binary
from tests.servers.zookeeper import ZooKeeperServer, zookeeper_missing


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "registry.db"


@pytest.fixture
async def registry(db: Path) -> AsyncIterator[EmbeddedRegistry]:
    """The test's own view of the registry the autopilot writes to."""
    reg = EmbeddedRegistry(embedded_url(db))
    await reg.start()
    yield reg
    await reg.close()


@pytest.fixture(scope="session")
def zk_server() -> Iterator[ZooKeeperServer]:
    reason = zookeeper_missing()
    if reason is not None:
        if servers_required():
            pytest.fail(f"ZooKeeper is required here: {reason}")
        pytest.skip(reason)
    server = ZooKeeperServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    if etcd_binary() is None and servers_required():
        pytest.fail("etcd is required here")
    server = EtcdServer(tmp_path_factory.mktemp("etcd") / "data")
    server.start()
    yield server
    server.stop()
