"""A real Prometheus server for tests, on 127.0.0.1 with a free port, scraping the given
targets every second, with a throw-away config and storage directory.

Usage::

    with PrometheusServer(tmp_path / "prom", ["127.0.0.1:8002"]) as prom:  # skips without it
        prom.query('sum by (service) (rate(motan_calls_total[30s]))')     # the result list

The binary is ``$MOTANMESH_PROMETHEUS``, else ``prometheus`` on ``PATH`` (Debian's
``prometheus`` package). The queries use the HTTP API with ``urllib``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.servers import ServerProcess, free_port, kill_group, missing_server

__all__ = ["PrometheusServer", "prometheus_binary", "require_prometheus"]

START_SECONDS = 60.0


def prometheus_binary() -> str | None:
    configured = os.environ.get("MOTANMESH_PROMETHEUS")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("prometheus")


def require_prometheus() -> str:
    """The prometheus executable; skips without one (fails when servers are required)."""
    binary = prometheus_binary()
    if binary is None:
        message = "prometheus not found (install Debian's prometheus or set MOTANMESH_PROMETHEUS)"
        missing_server(message)
    return binary


class PrometheusServer(ServerProcess):
    """One Prometheus scraping ``targets`` (``host:port``, path ``/metrics``) every second."""

    def __init__(self, base: Path, targets: Sequence[str]) -> None:
        self.binary = require_prometheus()
        self.base = base
        self.targets = list(targets)
        self.port = free_port()
        self.log_file = base / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        config = self.base / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                    "scrape_configs": [
                        {"job_name": "motanmesh", "static_configs": [{"targets": self.targets}]}
                    ],
                }
            )
        )
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.base / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_file.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus not ready: {self.log_file.read_text()}")
            time.sleep(0.2)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result (a list of ``{metric, value}``)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.loads(r.read())
        if doc.get("status") != "success":
            raise AssertionError(f"query {promql!r} failed: {doc}")
        result: list[dict[str, Any]] = doc["data"]["result"]
        return result

    def targets_up(self) -> dict[str, bool]:
        """Scrape target address → whether its last scrape succeeded."""
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=10) as r:
            doc = json.loads(r.read())
        return {t["labels"]["instance"]: t["health"] == "up" for t in doc["data"]["activeTargets"]}

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        kill_group(proc)
