"""A real, standalone ZooKeeper server on 127.0.0.1 for tests.

The server runs from the installed jars (Debian: packages ``zookeeper`` / ``zookeeperd`` put
``/usr/share/java/zookeeper.jar`` in place, whose manifest lists its dependencies; a tarball
install is found through ``ZOOKEEPER_HOME``; ``MOTANMESH_ZOOKEEPER_CLASSPATH`` overrides both)
and a Java runtime (``JAVA_HOME`` or ``java`` on ``PATH``)::

    server = ZooKeeperServer(max_session_ms=30_000)
    server.start()                # waits until the server answers and serves requests
    server.hosts                  # "127.0.0.1:<port>"
    server.stop()                 # the port goes dead; the data directory is kept
    server.start()                # same port, same data: sessions and nodes survive
    server.close()                # stop and delete the data directory

``zookeeper_missing()`` says why a server cannot run here (``None`` when it can).
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.servers import free_port

__all__ = ["ZooKeeperServer", "free_port", "zookeeper_classpath", "zookeeper_missing"]

CLASSPATH_ENV = "MOTANMESH_ZOOKEEPER_CLASSPATH"
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
DEBIAN_JAR = Path("/usr/share/java/zookeeper.jar")
TARBALL_HOMES = (Path("/usr/share/zookeeper"), Path("/opt/zookeeper"))
JVM_OPTIONS = (
    "-Xms32m",
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.net.preferIPv4Stack=true",
    "-Dzookeeper.admin.enableServer=false",
    "-Dzookeeper.jmx.log4j.disable=true",
)

_running: set[ZooKeeperServer] = set()


def port_free(port: int) -> bool:
    """Whether nothing holds ``port`` on 127.0.0.1."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def java_binary() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return os.path.join(home, "bin", "java")
    return shutil.which("java")


def zookeeper_classpath() -> str | None:
    """The class path that holds the ZooKeeper server, or ``None`` when it is not installed."""
    override = os.environ.get(CLASSPATH_ENV)
    if override:
        return override
    if DEBIAN_JAR.is_file():
        return str(DEBIAN_JAR)
    homes = [Path(h) for h in (os.environ.get("ZOOKEEPER_HOME"),) if h]
    for home in [*homes, *TARBALL_HOMES]:
        jars = sorted(home.glob("zookeeper-*.jar")) + sorted((home / "lib").glob("*.jar"))
        if any(j.name.startswith("zookeeper-") for j in jars):
            return os.pathsep.join(str(j) for j in jars)
    return None


def zookeeper_missing() -> str | None:
    """Why a ZooKeeper server cannot be started here, or ``None`` when it can."""
    if java_binary() is None:
        return "no Java runtime (install the Debian package 'default-jre-headless')"
    if zookeeper_classpath() is None:
        return (
            "ZooKeeper is not installed (install the Debian package 'zookeeper', or set "
            f"ZOOKEEPER_HOME or {CLASSPATH_ENV})"
        )
    return None


def four_letter(port: int, word: str, timeout: float = 1.0) -> str:
    """Send a ZooKeeper four-letter command; the reply, or '' when nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(word.encode())
            chunks: list[bytes] = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


class ZooKeeperServer:
    """One standalone ZooKeeper process with its own data directory (see module doc)."""

    def __init__(
        self,
        *,
        port: int = 0,
        tick_ms: int = 200,
        min_session_ms: int = 1000,
        max_session_ms: int = 60_000,
    ) -> None:
        self.port = port or free_port()
        #: a port picked here may be replaced when the first start finds it taken
        self._port_given = bool(port)
        self._started_once = False
        self.workdir = Path(tempfile.mkdtemp(prefix="motanmesh-zk-"))
        self.data_dir = self.workdir / "data"
        self.config = self.workdir / "zoo.cfg"
        self.log_file = self.workdir / "server.log"
        self.max_session_ms = max_session_ms
        self._proc: subprocess.Popen[bytes] | None = None
        self._settings: dict[str, object] = {
            "tickTime": tick_ms,
            "dataDir": self.data_dir,
            "clientPort": self.port,
            "clientPortAddress": "127.0.0.1",
            "minSessionTimeout": min_session_ms,
            "maxSessionTimeout": max_session_ms,
            "maxClientCnxns": 0,
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "*",
            "forceSync": "no",
            "preAllocSize": 1024,
            "autopurge.purgeInterval": 0,
        }
        self._write_config()

    def _write_config(self) -> None:
        self._settings["clientPort"] = self.port
        self.config.write_text("".join(f"{k}={v}\n" for k, v in self._settings.items()))

    @property
    def hosts(self) -> str:
        """The connect string: ``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it answers; ``RuntimeError`` if it does not."""
        if self.running:
            return
        reason = zookeeper_missing()
        java, classpath = java_binary(), zookeeper_classpath()
        if reason is not None or java is None or classpath is None:
            raise RuntimeError(f"cannot start ZooKeeper: {reason}")
        # a first start on a port of our own pick moves to another one if the bind fails
        attempts = 1 if self._port_given or self._started_once else 3
        for attempt in range(attempts):
            if self._start_once(java, classpath, timeout):
                self._started_once = True
                return
            # the server logs nothing by default: the port is taken if we cannot bind it either
            if port_free(self.port) or attempt + 1 == attempts:
                break
            self.port = free_port()
            self._write_config()
        tail = self.log_file.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"ZooKeeper did not come up on {self.hosts}:\n{tail}")

    def _start_once(self, java: str, classpath: str, timeout: float) -> bool:
        """One start; False (the process stopped) when it does not answer within ``timeout``."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                [java, *JVM_OPTIONS, "-cp", classpath, MAIN_CLASS, str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        _running.add(self)
        deadline = time.monotonic() + timeout
        while "Mode: " not in four_letter(self.port, "srvr"):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        """Stop the server process (the data directory is kept for a restart)."""
        proc, self._proc = self._proc, None
        _running.discard(self)
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # The port is free again once nothing answers on it.
        deadline = time.monotonic() + 10
        while four_letter(self.port, "ruok", 0.2) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> None:
        """Stop, then start again on the same port with the same data."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and delete its files."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_running):
        server.close()
