"""A real Graphite carbon-cache for tests, on 127.0.0.1 with free ports and a throw-away
config and whisper storage directory.

Usage::

    with CarbonServer(tmp_path / "carbon") as carbon:  # skips without it
        carbon.port                                    # plaintext protocol on 127.0.0.1
        carbon.points("a.b.c")                         # stored (timestamp, value) pairs

The binaries are Debian's ``graphite-carbon`` (``carbon-cache``) and ``whisper-fetch``
(``python3-whisper``), or ``$MOTANMESH_CARBON_CACHE`` / ``$MOTANMESH_WHISPER_FETCH``. Every
metric is stored at one-second resolution for an hour; whisper files are written at once.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.servers import ServerProcess, free_port, kill_group, missing_server

__all__ = ["CarbonServer", "require_carbon"]

START_SECONDS = 60.0


def _binary(env: str, name: str) -> str | None:
    configured = os.environ.get(env)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which(name)


def require_carbon() -> tuple[str, str]:
    """(carbon-cache, whisper-fetch); skips without them (fails when servers are required)."""
    cache = _binary("MOTANMESH_CARBON_CACHE", "carbon-cache")
    fetch = _binary("MOTANMESH_WHISPER_FETCH", "whisper-fetch")
    if cache is None or fetch is None:
        message = "carbon-cache or whisper-fetch not found (install Debian's graphite-carbon)"
        missing_server(message)
    return cache, fetch


class CarbonServer(ServerProcess):
    """One carbon-cache in the foreground with its own config and storage."""

    def __init__(self, base: Path) -> None:
        self.cache_binary, self.fetch_binary = require_carbon()
        self.base = base
        self.port = free_port()
        self.whisper_dir = base / "storage" / "whisper"
        self.log_file = base / "carbon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        conf = self.base / "conf"
        for d in (conf, self.whisper_dir, self.base / "log", self.base / "run"):
            d.mkdir(parents=True, exist_ok=True)
        (conf / "storage-schemas.conf").write_text("[all]\npattern = .*\nretentions = 1s:1h\n")
        (conf / "carbon.conf").write_text(
            "[cache]\n"
            f"STORAGE_DIR = {self.base / 'storage'}/\n"
            f"LOCAL_DATA_DIR = {self.whisper_dir}/\n"
            f"WHITELISTS_DIR = {self.base / 'storage' / 'lists'}/\n"
            f"CONF_DIR = {conf}/\n"
            f"LOG_DIR = {self.base / 'log'}/\n"
            f"PID_DIR = {self.base / 'run'}/\n"
            "DATABASE = whisper\n"
            "ENABLE_LOGROTATION = False\n"
            "ENABLE_TAGS = False\n"
            "MAX_CACHE_SIZE = inf\n"
            "MAX_UPDATES_PER_SECOND = 100000\n"
            "MAX_CREATES_PER_MINUTE = inf\n"
            "WHISPER_AUTOFLUSH = True\n"
            "LINE_RECEIVER_INTERFACE = 127.0.0.1\n"
            f"LINE_RECEIVER_PORT = {self.port}\n"
            "ENABLE_UDP_LISTENER = False\n"
            "PICKLE_RECEIVER_INTERFACE = 127.0.0.1\n"
            f"PICKLE_RECEIVER_PORT = {free_port()}\n"
            "CACHE_QUERY_INTERFACE = 127.0.0.1\n"
            f"CACHE_QUERY_PORT = {free_port()}\n"
        )
        return conf / "carbon.conf"

    def start(self) -> None:
        config = self._write_config()
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(
                [self.cache_binary, f"--config={config}", "--nodaemon", "start"],
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"carbon-cache exited: {self.log_file.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"carbon-cache not listening: {self.log_file.read_text()}")
            time.sleep(0.2)

    def points(self, metric: str, seconds: int = 3600) -> list[tuple[int, float]]:
        """The stored (timestamp, value) pairs of ``metric`` over the last ``seconds``,
        read with ``whisper-fetch``; empty while the metric has no file."""
        path = self.whisper_dir.joinpath(*metric.split(".")).with_suffix(".wsp")
        if not path.exists():
            return []
        out = subprocess.run(
            [self.fetch_binary, f"--from={int(time.time()) - seconds}", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        points: list[tuple[int, float]] = []
        for line in out.splitlines():
            stamp, _, value = line.partition("\t")
            if value and value != "None":
                points.append((int(stamp), float(value)))
        return points

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        kill_group(proc)
