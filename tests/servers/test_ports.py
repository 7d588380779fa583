"""The ports handed to child processes: reserved on the host, and a server fixture that finds
its port taken anyway moves to another one."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from motanmesh.demo.ports import FIRST_PORT, LOCK_DIR, ephemeral_low, reserve_port
from tests.servers import free_port, servers_required
from tests.servers.etcd import EtcdServer, etcd_binary
from tests.servers.zookeeper import ZooKeeperServer, zookeeper_missing

HOLDS_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    print("held")
else:
    print("free")
"""


def lock_state(lock: Path) -> str:
    """``held`` or ``free``, as another process sees the lock file ``lock``."""
    out = subprocess.run(
        [sys.executable, "-c", HOLDS_LOCK, str(lock)], capture_output=True, check=True
    )
    return out.stdout.decode().strip()


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    ports = [reserve_port() for _ in range(50)]
    assert len(set(ports)) == 50
    low = ephemeral_low()
    if low is not None and low - FIRST_PORT >= 2000:
        assert all(FIRST_PORT <= p < low for p in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_another_process_cannot_take_a_reserved_port() -> None:
    port = reserve_port()
    assert lock_state(LOCK_DIR / str(port)) == "held"
    # and the other process, asking for ports itself, is never given this one
    ask = (
        "from motanmesh.demo.ports import reserve_port\n"
        "print(' '.join(str(reserve_port()) for _ in range(300)))"
    )
    got = subprocess.run([sys.executable, "-c", ask], capture_output=True, check=True)
    assert port not in {int(p) for p in got.stdout.split()}


def _unreserved_listener() -> tuple[socket.socket, int]:
    """A listener on a port of the reserved range that no process holds."""
    low = ephemeral_low() or FIRST_PORT
    for port in range(FIRST_PORT, low):
        lock = LOCK_DIR / str(port)
        if lock.exists() and lock_state(lock) != "free":
            continue
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen()
        return sock, port
    pytest.fail("no unreserved port to listen on")


def test_a_port_something_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    low = ephemeral_low()
    if low is None or low - FIRST_PORT < 2000:
        pytest.skip("no port range below the ephemeral ports here")
    sock, port = _unreserved_listener()
    with sock:
        # the search starts at the port we listen on
        monkeypatch.setattr("motanmesh.demo.ports.random.randrange", lambda _: port - FIRST_PORT)
        assert reserve_port() != port


@pytest.fixture
def squatter() -> Iterator[socket.socket]:
    """A listener to put on a port a server was given."""
    sock = socket.socket()
    try:
        yield sock
    finally:
        sock.close()


def test_zookeeper_moves_when_its_port_is_taken(squatter: socket.socket) -> None:
    reason = zookeeper_missing()
    if reason is not None:
        if servers_required():
            pytest.fail(reason)
        pytest.skip(reason)
    server = ZooKeeperServer()
    taken = server.port
    squatter.bind(("127.0.0.1", taken))
    squatter.listen()
    try:
        server.start()
        assert server.port != taken
        assert server.running
    finally:
        server.close()


def test_etcd_moves_when_its_port_is_taken(squatter: socket.socket, tmp_path: Path) -> None:
    if etcd_binary() is None:
        if servers_required():
            pytest.fail("no etcd binary")
        pytest.skip("no etcd binary")
    server = EtcdServer(tmp_path / "etcd")
    taken = server.client_port
    squatter.bind(("127.0.0.1", taken))
    squatter.listen()
    with server:
        assert server.client_port != taken
        assert server.get("/nothing") is None


def test_free_port_is_a_reserved_port() -> None:
    assert lock_state(LOCK_DIR / str(free_port())) == "held"
