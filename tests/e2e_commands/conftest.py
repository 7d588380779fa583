"""Fixtures of the end-to-end command tests: a :class:`Mesh` whose processes die with the test,
and the ZooKeeper server of the ZooKeeper variant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Mesh
from tests.servers import servers_required
from tests.servers.zookeeper import ZooKeeperServer, zookeeper_missing


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    m = Mesh(tmp_path)
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
def zookeeper() -> Iterator[ZooKeeperServer]:
    """A started ZooKeeper server; the test is skipped when none can run here (failed when
    servers are required)."""
    reason = zookeeper_missing()
    if reason is not None:
        if servers_required():
            pytest.fail(f"ZooKeeper is required here: {reason}")
        pytest.skip(reason)
    server = ZooKeeperServer()
    try:
        server.start()
        yield server
    finally:
        server.close()
