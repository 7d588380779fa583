"""Loopback ports for the child processes that the demos, the tests and the benchmarks start.

Picking a port by binding port 0, closing the socket and handing the number to a child races:
until the child binds it, the kernel may give the same port to any outgoing connection or
port-0 bind on the host (another test run, a browser, a JVM). :func:`reserve_port` takes its
ports from below the kernel's ephemeral range (``net.ipv4.ip_local_port_range``), where the
kernel never allocates on its own, and locks each one (``flock`` on a file per port in
:data:`LOCK_DIR`) for the life of the process that picked it, so that two runs on one host never
hand out the same port, and a child restarted on its port later finds it still free. A port
something already listens on is skipped. Where no such range exists (not Linux, or a range
reaching down to :data:`FIRST_PORT`), it falls back to a port-0 pick.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
from pathlib import Path
from typing import Final

#: the lowest port handed out (above the registered ports most servers default to)
FIRST_PORT: Final = 20000
#: fewer ports below the ephemeral range than this: use port-0 picks instead
MIN_SPAN: Final = 2000
LOCK_DIR: Final = Path(tempfile.gettempdir()) / "motanmesh-ports"
_RANGE_FILE: Final = Path("/proc/sys/net/ipv4/ip_local_port_range")

#: port -> the open lock file holding it (kept open, hence locked, until this process exits)
_held: dict[int, int] = {}


def ephemeral_low() -> int | None:
    """The first port of the kernel's ephemeral range, ``None`` when it cannot be read."""
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _bindable(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _lock(port: int) -> int | None:
    """The open, locked lock file of ``port``; ``None`` when another process holds it."""
    try:
        LOCK_DIR.mkdir(mode=0o1777, exist_ok=True)
        fd = os.open(LOCK_DIR / str(port), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _port_zero(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def reserve_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` and reserved for this process: never handed out again,
    here or in another process on this host, while this process lives."""
    low = ephemeral_low()
    if low is None or low - FIRST_PORT < MIN_SPAN:
        while (port := _port_zero(host)) in _held:
            pass
        _held[port] = -1
        return port
    span = low - FIRST_PORT
    start = random.randrange(span)
    for i in range(span):
        port = FIRST_PORT + (start + i) % span
        if port in _held:
            continue
        fd = _lock(port)
        if fd is None:
            continue
        if not _bindable(host, port):
            os.close(fd)
            continue
        _held[port] = fd
        return port
    raise OSError(f"no free port in {FIRST_PORT}-{low - 1} on {host}")
