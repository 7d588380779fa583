"""Telemetry from unmodified Go agents: their statsd-style metric datagrams over UDP.

A Go agent flushes every ``metrics.period`` seconds (default 5) the counts of that period,
one line per metric (inventory §8.3)::

    <role>.<application>.<group><suffix>.byhost.<ip>.<service>.<method>.<item>:<value>|<type>

with every name escaped (``[^A-Za-z0-9-]`` → ``_``) and ``suffix`` either empty or
``.cluster``. Counters (``|c``) used here: ``total_count``, ``other_error_count``,
``slow_count``; the histogram's ``p99`` (``|kv``, milliseconds). Names are matched against the
configured groups and services escaped the same way.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from motanmesh.autopilot.store import Delta, Key, TelemetryStore

__all__ = ["GraphiteLine", "GraphiteReceiver", "escape", "parse_line"]

log = logging.getLogger("motanmesh.autopilot.telemetry")

_ESCAPE_RE: Final = re.compile(r"[^A-Za-z0-9-]")
_ITEMS: Final = {"total_count": "calls", "other_error_count": "errors", "slow_count": "slow"}


def escape(name: str) -> str:
    """A name as the Go agent writes it in a metric key."""
    return _ESCAPE_RE.sub("_", name)


@dataclass(frozen=True, slots=True)
class GraphiteLine:
    role: str
    application: str
    group: str
    cluster: bool
    host: str
    service: str
    method: str
    item: str
    value: float
    type: str


def parse_line(line: str) -> GraphiteLine | None:
    """One metric line, or ``None`` when it is not a motan call metric."""
    name, sep, rest = line.strip().rpartition(":")
    if not sep:
        return None
    value_text, _, kind = rest.partition("|")
    try:
        value = float(value_text)
    except ValueError:
        return None
    parts = name.split(".")
    if "byhost" not in parts:
        return None
    at = parts.index("byhost")
    head, tail = parts[:at], parts[at + 1 :]
    if len(tail) != 4 or len(head) not in (3, 4):
        return None
    cluster = len(head) == 4
    if cluster and head[3] != "cluster":
        return None
    role, application, group = head[0], head[1], head[2]
    host, service, method, item = tail
    return GraphiteLine(role, application, group, cluster, host, service, method, item, value, kind)


class GraphiteReceiver(asyncio.DatagramProtocol):
    """Listens for the Go agents' datagrams and stores their counts.

    ``names`` maps escaped names back to the configured groups and services; lines about
    other names are ignored. Each datagram's counts cover the ``period`` before it arrived.
    """

    name = "graphite"

    def __init__(
        self,
        store: TelemetryStore,
        names: Iterable[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        period: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.names = {escape(n): n for n in names}
        self.host, self.port, self.period = host, port, period
        self.clock = clock
        self.last_at: float | None = None
        self.lines = 0
        self.ignored = 0
        self._started = clock()
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.host, self.port)
        )
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        now = self.clock()
        self.last_at = now
        found: dict[tuple[str, Key], Delta] = {}
        for raw in data.decode("utf-8", "replace").splitlines():
            line = parse_line(raw)
            if line is None:
                self.ignored += bool(raw.strip())
                continue
            group, service = self.names.get(line.group), self.names.get(line.service)
            if group is None or service is None:
                self.ignored += 1
                continue
            self.lines += 1
            key = Key(line.role, group, service, line.cluster)
            delta = found.get((line.host, key))
            if delta is None:
                delta = Delta(line.host, key, now - self.period, now)
                found[(line.host, key)] = delta
            if line.item in _ITEMS and line.type == "c":
                attribute = _ITEMS[line.item]
                setattr(delta, attribute, getattr(delta, attribute) + line.value)
            elif line.item == "p99":
                delta.p99 = max(delta.p99 or 0.0, line.value / 1000.0)
        self.store.add(found.values())

    def problem(self, now: float, stale_after: float) -> str:
        since = self.last_at if self.last_at is not None else self._started
        if now - since > stale_after:
            return f"no metric datagrams on udp {self.host}:{self.port} for {now - since:.0f}s"
        return ""
