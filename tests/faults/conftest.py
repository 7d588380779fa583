"""Fault tests: real agent processes (``tests.e2e.harness``) on a real ZooKeeper or etcd server
that the test stops, restarts, or writes to directly.

A :class:`Backend` is one registry server plus what a test needs around it: the
``motan-registry`` entry the agents use (short session timeout / lease TTL, so that a dead
agent's nodes go away quickly), ``stop``/``start`` for outages, and a raw read of the
``server`` nodes of a service that does not go through motanmesh's registry code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from tests.e2e.harness import Mesh
from tests.servers import servers_required
from tests.servers.etcd import EtcdServer, etcd_binary
from tests.servers.zookeeper import ZooKeeperServer, zookeeper_missing

#: the registry id every agent config of these tests uses (the harness helpers assume it)
REGISTRY_ID = "local"
#: seconds: ZooKeeper session timeout (Go meaning: seconds) and etcd lease TTL of the agents
NODE_TIMEOUT = 2


class Backend:
    """A registry server for the agents of one test (see module doc)."""

    name = ""

    def registry(self) -> dict[str, Any]:
        """The ``motan-registry`` entry of the agents."""
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def servers(self, group: str, service: str) -> dict[str, str]:
        """``address → node data`` of the service's ``server`` nodes, read raw."""
        raise NotImplementedError


class ZooKeeperBackend(Backend):
    name = "zookeeper"

    def __init__(self) -> None:
        self.server = ZooKeeperServer(min_session_ms=1000, max_session_ms=60_000)
        self.server.start()

    def registry(self) -> dict[str, Any]:
        return {
            "protocol": "zookeeper",
            "address": self.server.hosts,
            "registrySessionTimeout": NODE_TIMEOUT,
            "connectTimeout": 2000,
            "requestTimeout": 2000,
        }

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def close(self) -> None:
        self.server.close()

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """A plain kazoo client, as the Go agent or an operator's tool would use."""
        client = KazooClient(hosts=self.server.hosts, timeout=10.0)
        client.start(timeout=15)
        try:
            yield client
        finally:
            client.stop()
            client.close()

    def servers(self, group: str, service: str) -> dict[str, str]:
        path = f"/motan/{group}/{service}/server"
        with self.client() as client:
            try:
                names = client.get_children(path)
            except NoNodeError:
                return {}
            found: dict[str, str] = {}
            for name in names:
                with contextlib.suppress(NoNodeError):
                    data, _stat = client.get(f"{path}/{name}")
                    found[name] = data.decode()
            return found


class EtcdBackend(Backend):
    name = "etcd"

    def __init__(self, data_dir: Path) -> None:
        self.server = EtcdServer(data_dir)
        self.server.start()

    def registry(self) -> dict[str, Any]:
        return {
            "protocol": "etcd",
            "address": self.server.address,
            "ttl": NODE_TIMEOUT,
            "timeout": 1,
            "retryInterval": 0.2,
        }

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def close(self) -> None:
        self.server.stop()

    def servers(self, group: str, service: str) -> dict[str, str]:
        prefix = f"/motan/{group}/{service}/server/"
        return {key[len(prefix) :]: value for key, (value, _) in self.server.range(prefix).items()}


def _unavailable(reason: str) -> None:
    if servers_required():
        pytest.fail(f"a registry server is required here: {reason}")
    pytest.skip(reason)


def make_backend(kind: str, tmp_path: Path) -> Backend:
    if kind == "zookeeper":
        reason = zookeeper_missing()
        if reason is not None:
            _unavailable(reason)
        return ZooKeeperBackend()
    if etcd_binary() is None:
        _unavailable("etcd binary not found (install Debian's etcd-server)")
    return EtcdBackend(tmp_path / "etcd")


@pytest.fixture(params=["zookeeper", "etcd"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A started registry server of each kind, closed after the test."""
    made = make_backend(str(request.param), tmp_path)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def zookeeper(tmp_path: Path) -> Iterator[ZooKeeperBackend]:
    made = make_backend("zookeeper", tmp_path)
    assert isinstance(made, ZooKeeperBackend)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    m = Mesh(tmp_path)
    try:
        yield m
    finally:
        m.close()
