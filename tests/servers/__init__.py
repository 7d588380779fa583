"""Real backend servers (ZooKeeper, ...) started on 127.0.0.1 for the integration tests.

Each helper runs the server from its installed binaries with a throw-away data directory and
a free port, and reports why when the binaries are missing so that tests can skip with a
clear reason. Set ``MOTANMESH_REQUIRE_SERVERS=1`` (CI does) to turn such skips into failures.
"""

from __future__ import annotations

import os
import signal
import subprocess
from types import TracebackType
from typing import NoReturn, Self

import pytest

from motanmesh.demo.ports import reserve_port

REQUIRE_ENV = "MOTANMESH_REQUIRE_SERVERS"


def servers_required() -> bool:
    """Whether a missing server must fail the tests instead of skipping them."""
    return os.environ.get(REQUIRE_ENV, "") not in {"", "0", "false", "no"}


def missing_server(message: str) -> NoReturn:
    """Skip the test for a missing server, or fail it when servers are required."""
    if servers_required():
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 for a server process, reserved for this test session on
    the whole host (:func:`motanmesh.demo.ports.reserve_port`: no other process can be given
    it between the pick and the server's bind, and it stays ours for a restart)."""
    return reserve_port()


def kill_group(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL the process group ``proc`` leads (when still running) and reap it."""
    if proc is None:
        return
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


class ServerProcess:
    """A test server used as a context manager: ``start()`` on entry, ``stop()`` on exit."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
