"""Telemetry sources for the autopilot tests: real HTTP and UDP endpoints on 127.0.0.1 that
emit exactly what the agents emit.

* :class:`MetricsAgent` serves ``/metrics`` in the agents' Prometheus text format
  (``motan_calls_total``, ``motan_call_errors_total``, ``motan_slow_calls_total``,
  ``motan_call_duration_seconds``) for counters that grow at rates a test sets, and registers
  itself as an agent node so the autopilot finds it through the registry.
* :func:`graphite_datagram` builds a Go agent's metric datagram (inventory §8.3).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from motanmesh.autopilot.config import AutopilotConfig, parse_config
from motanmesh.autopilot.graphite import escape
from motanmesh.autopilot.store import CLIENT_ROLE, SERVER_ROLE
from motanmesh.url import URL

SERVICE = "com.weibo.motan.demo.service.MotanDemoService"
GROUP_A = "demo-rpc-a"
GROUP_B = "demo-rpc-b"
FAST = {"pollInterval": "0.05", "leaseInterval": "0.1", "ttl": "0.6"}
BUCKETS = (0.05, 0.1, 0.2, 0.5, 1.0)
WAIT_SECONDS = 20.0


def embedded_url(db: Path) -> URL:
    return URL("embedded", parameters={"file": str(db), **FAST})


async def wait_until(
    condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_for(
    probe: Callable[[], Awaitable[bool]], what: str, timeout: float = WAIT_SECONDS
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await probe():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Series:
    role: str
    group: str
    service: str = SERVICE
    rate: float = 0.0  # calls/s
    error_ratio: float = 0.0
    latency: float = 0.01  # seconds, every call
    calls: float = 0.0
    errors: float = 0.0
    slow: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)

    def advance(self, seconds: float) -> None:
        n = self.rate * seconds
        self.calls += n
        self.errors += n * self.error_ratio
        if self.latency > 0.2:
            self.slow += n
        for bound in (*BUCKETS, float("inf")):
            if self.latency <= bound:
                self.buckets[bound] = self.buckets.get(bound, 0.0) + n


def _labels(s: Series, extra: str = "") -> str:
    return (
        f'role="{s.role}",application="app-{s.group}",group="{s.group}",'
        f'service="{s.service}",method="hello"{extra}'
    )


class MetricsAgent:
    """An HTTP server on 127.0.0.1 serving ``/metrics`` for its series."""

    def __init__(self, *series: Series, graph: Any = None) -> None:
        self.series = list(series)
        self.graph = graph
        self.port = 0
        self.scrapes = 0
        self._last = time.monotonic()
        self._runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self) -> URL:
        """The agent node URL an agent registers (host and management port)."""
        app = f"metrics-{self.port}"
        return URL("motan2", "127.0.0.1", self.port, "", app, {"application": app})

    def text(self) -> str:
        now = time.monotonic()
        for s in self.series:
            s.advance(now - self._last)
        self._last = now
        out = [
            "# HELP motan_calls_total calls",
            "# TYPE motan_calls_total counter",
            *(f"motan_calls_total{{{_labels(s)}}} {s.calls}" for s in self.series),
            "# HELP motan_call_errors_total failed calls",
            "# TYPE motan_call_errors_total counter",
            *(
                f"motan_call_errors_total{{{_labels(s, ',kind=' + chr(34) + 'other' + chr(34))}}}"
                f" {s.errors}"
                for s in self.series
            ),
            "# HELP motan_slow_calls_total slow calls",
            "# TYPE motan_slow_calls_total counter",
            *(f"motan_slow_calls_total{{{_labels(s)}}} {s.slow}" for s in self.series),
            "# HELP motan_call_duration_seconds call duration",
            "# TYPE motan_call_duration_seconds histogram",
        ]
        for s in self.series:
            for bound in (*BUCKETS, float("inf")):
                le = "+Inf" if bound == float("inf") else repr(bound)
                label = _labels(s, f',le="{le}"')
                out.append(
                    f"motan_call_duration_seconds_bucket{{{label}}} {s.buckets.get(bound, 0.0)}"
                )
            out.append(f"motan_call_duration_seconds_count{{{_labels(s)}}} {s.calls}")
            out.append(f"motan_call_duration_seconds_sum{{{_labels(s)}}} {s.calls * s.latency}")
        return "\n".join(out) + "\n"

    async def _metrics(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        return web.Response(text=self.text(), content_type="text/plain")

    async def _graph(self, request: web.Request) -> web.Response:
        if self.graph is None:
            return web.Response(status=404, text="not found")
        return web.json_response(self.graph)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/debug/graph", self._graph)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def client_series(group: str, rate: float) -> Series:
    return Series(CLIENT_ROLE, group, rate=rate)


def server_series(group: str, rate: float, latency: float = 0.01) -> Series:
    return Series(SERVER_ROLE, group, rate=rate, latency=latency)


def graphite_lines(role: str, group: str, host: str, counts: dict[str, float]) -> list[str]:
    """Go agent lines for one (role, group, host) of :data:`SERVICE`."""
    prefix = f"{role}.{escape('app-' + group)}.{escape(group)}.byhost.{escape(host)}"
    return [
        f"{prefix}.{escape(SERVICE)}.hello.{item}:{value:g}|{'kv' if item == 'p99' else 'c'}"
        for item, value in counts.items()
    ]


def send_udp(port: int, lines: list[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto("\n".join(lines).encode(), ("127.0.0.1", port))


def registry_mapping(url: URL) -> dict[str, Any]:
    entry: dict[str, Any] = {"protocol": url.protocol, **url.parameters}
    if url.host:
        entry["host"], entry["port"] = url.host, url.port
    return entry


def autopilot_config(
    registry: URL | str,
    tmp: Path,
    *,
    telemetry: list[dict[str, Any]],
    policy: dict[str, Any] | None = None,
    slo: dict[str, Any] | None = None,
    per_instance: float = 100.0,
    instances: dict[str, int] | None = None,
    **top: Any,
) -> AutopilotConfig:
    """A config steering :data:`SERVICE` between :data:`GROUP_A` and :data:`GROUP_B`."""
    service: dict[str, Any] = {
        "service": SERVICE,
        "groups": [GROUP_A, GROUP_B],
        "capacity": {
            "perInstance": per_instance,
            "instances": instances or {GROUP_A: 1, GROUP_B: 1},
        },
        "policy": {"hold": 2, "cooldown": 1, **(policy or {})},
    }
    if slo:
        service["slo"] = slo
    data = {
        "registry": registry if isinstance(registry, str) else registry_mapping(registry),
        "interval": 0.2,
        "window": 1.0,
        "staleAfter": 2.0,
        "decisionLog": str(tmp / "decisions.jsonl"),
        "telemetry": telemetry,
        "services": [service],
        **top,
    }
    return parse_config(data, "test.yaml")
