"""A real etcd server for tests, on 127.0.0.1 with free ports and a throw-away data dir.

Usage::

    server = EtcdServer(tmp_path / "etcd")   # skips the test when no etcd binary exists
    server.start()                           # blocks until /health answers
    server.address                           # "127.0.0.1:<client port>"
    server.put("/motan/k", "v"); server.get("/motan/k"); server.range("/motan/")
    await server.astop(); await server.astart()   # outage: same ports, same data dir
    server.stop()

The binary is ``$MOTANMESH_ETCD``, else ``etcd`` on ``PATH``, else ``/usr/bin/etcd``
(Debian's ``etcd-server``). The raw helpers speak the v3 JSON gateway with ``urllib`` and
are independent of the registry code under test.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.servers import ServerProcess, free_port

__all__ = ["EtcdServer", "etcd_binary", "free_port", "require_etcd"]

START_SECONDS = 20.0


def etcd_binary() -> str | None:
    """The etcd executable to run, or ``None``."""
    configured = os.environ.get("MOTANMESH_ETCD")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    found = shutil.which("etcd")
    if found:
        return found
    return "/usr/bin/etcd" if os.access("/usr/bin/etcd", os.X_OK) else None


def require_etcd() -> str:
    """The etcd executable; skips the calling test when there is none."""
    binary = etcd_binary()
    if binary is None:
        pytest.skip("etcd binary not found (install Debian's etcd-server or set MOTANMESH_ETCD)")
    return binary


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _text(value: str) -> str:
    return base64.b64decode(value).decode()


class EtcdServer(ServerProcess):
    """One single-member etcd cluster; ``stop``/``start`` keep its ports and data."""

    def __init__(self, data_dir: Path, *, binary: str | None = None) -> None:
        self.binary = binary or require_etcd()
        self.data_dir = data_dir
        self.log_file = data_dir.with_name(data_dir.name + ".log")
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._started_once = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def endpoint(self) -> str:
        return f"http://{self.address}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _command(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [
            self.binary,
            "--name=motanmesh-test",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.endpoint}",
            f"--advertise-client-urls={self.endpoint}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=motanmesh-test={peer}",
            "--initial-cluster-state=new",
            "--heartbeat-interval=50",
            "--election-timeout=500",
            "--logger=zap",
            "--log-level=warn",
        ]

    def start(self) -> None:
        """Start (or restart) the server and wait until it is healthy."""
        if self.running:
            return
        attempts = 1 if self._started_once else 3  # new ports if the free ones were taken
        for attempt in range(attempts):
            self.data_dir.mkdir(parents=True, exist_ok=True)
            with self.log_file.open("ab") as log:
                self.proc = subprocess.Popen(
                    self._command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            if self._wait_healthy():
                self._started_once = True
                return
            self.stop(kill=True)
            if attempt + 1 < attempts:
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.client_port, self.peer_port = free_port(), free_port()
        tail = self.log_file.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"etcd did not become healthy on {self.address}:\n{tail}")

    def _wait_healthy(self) -> bool:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=1) as resp:
                    if json.loads(resp.read()).get("health") == "true":
                        return True
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        return False

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGTERM, or SIGKILL with ``kill``); the data dir stays."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    async def astart(self) -> None:
        """``start`` without blocking the event loop."""
        await asyncio.to_thread(self.start)

    async def astop(self, *, kill: bool = False) -> None:
        await asyncio.to_thread(self.stop, kill=kill)

    # ------------------------------------------------------------------ raw gateway calls

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST one JSON request to the v3 gateway (``/v3/kv/range`` ...) and decode it."""
        request = urllib.request.Request(
            self.endpoint + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                answer: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"etcd {path}: {err.code} {err.read()!r}") from err
        return answer

    def put(self, key: str, value: str, lease: int = 0) -> None:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        self.call("/v3/kv/put", body)

    def delete(self, key: str, *, prefix: bool = False) -> int:
        body = {"key": _b64(key)}
        if prefix:
            body["range_end"] = self._end(key)
        return int(self.call("/v3/kv/deleterange", body).get("deleted", 0))

    def range(self, prefix: str) -> dict[str, tuple[str, int]]:
        """``key → (value, lease)`` of every key starting with ``prefix``."""
        answer = self.call("/v3/kv/range", {"key": _b64(prefix), "range_end": self._end(prefix)})
        return {
            _text(kv["key"]): (_text(kv.get("value", "")), int(kv.get("lease", 0)))
            for kv in answer.get("kvs", [])
        }

    def get(self, key: str) -> str | None:
        kvs = self.call("/v3/kv/range", {"key": _b64(key)}).get("kvs", [])
        return _text(kvs[0].get("value", "")) if kvs else None

    def grant(self, ttl: int) -> int:
        return int(self.call("/v3/lease/grant", {"TTL": str(ttl)})["ID"])

    def revoke(self, lease: int) -> None:
        self.call("/v3/lease/revoke", {"ID": str(lease)})

    @staticmethod
    def _end(prefix: str) -> str:
        raw = bytearray(prefix.encode())
        raw[-1] += 1
        return base64.b64encode(bytes(raw)).decode()
