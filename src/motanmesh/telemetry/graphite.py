"""Metrics out as the Go agent's datagrams, and as Graphite's plaintext protocol.

**Datagrams** (``metrics.graphite``, the Go agent's format, read by the collectors of Go
agents): statsd-style lines ::

    <role>.<application>.<group><suffix>.byhost.<local ip, dots as _>.<service>.<method><key>
        :<value>|<type>   (on the same line)

counters ``|c`` (``.total_count``, ``.biz_error_count``, ``.other_error_count``,
``.slow_count``, ``.Less50ms`` ... ``.More500ms``), the latency sample as ``.p50`` ...
``.p9999`` ``|kv`` with two decimals and ``.avg_time`` ``|ms``, runtime gauges ``|kv``. Every
name part but the suffixes is escaped: any character other than ``[A-Za-z0-9-]`` becomes
``_``. Lines are packed into datagrams of at most 5 KB (a series' histogram lines stay
together), sent over UDP from a fresh socket each period.

**Carbon** (``metrics.carbon``): the same names (with an optional prefix) as Graphite
plaintext lines ``<path> <value> <unix time>`` over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from motanmesh.telemetry.store import ELAPSE_SUFFIXES, PERCENTILES, PeriodSnapshot, percentiles

__all__ = [
    "MESSAGE_MAX_LEN",
    "STAT_GROUP",
    "STAT_ROLE",
    "STAT_SERVICE",
    "CarbonWriter",
    "DatagramWriter",
    "Gauge",
    "carbon_lines",
    "escape",
    "metric_segments",
    "pack",
]

log = logging.getLogger("motanmesh.telemetry")

#: a datagram carries at most this many bytes (unless one series alone is longer)
MESSAGE_MAX_LEN: Final = 5 * 1024
#: where the Go agent's runtime gauges live: role, group, service
STAT_ROLE: Final = "motan-agent"
STAT_GROUP: Final = "motan-stat"
STAT_SERVICE: Final = "status"
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9-]")
_QUANTILES: Final = tuple(q for _, q in PERCENTILES)
_escaped: dict[str, str] = {}


def escape(text: str) -> str:
    """``text`` with every character other than ``[A-Za-z0-9-]`` replaced by ``_``."""
    found = _escaped.get(text)
    if found is None:
        found = _UNSAFE.sub("_", text)
        if len(_escaped) < 100_000:
            _escaped[text] = found
    return found


def host_part(ip: str) -> str:
    """The ``byhost`` part: the local address with its dots as ``_`` (escaped)."""
    return escape(ip.replace(".", "_"))


@dataclass(frozen=True)
class Gauge:
    """One runtime gauge value (``motan-agent.<application>.motan-stat...status.<name>``)."""

    application: str
    name: str
    value: int


def _prefix(snap: PeriodSnapshot, host: str) -> str:
    k = snap.key
    return (
        f"{escape(k.role)}.{escape(k.application)}.{escape(k.group)}{k.group_suffix}"
        f".byhost.{host}.{escape(k.service)}.{escape(k.method)}"
    )


def _series_values(snap: PeriodSnapshot) -> tuple[list[tuple[str, int]], list[tuple[str, float]]]:
    """A series' counters (name suffix, count; only those that counted) and its
    histogram values (suffix, value)."""
    counters = [(".total_count", snap.calls)]
    if snap.biz_errors:
        counters.append((".biz_error_count", snap.biz_errors))
    if snap.other_errors:
        counters.append((".other_error_count", snap.other_errors))
    if snap.slow:
        counters.append((".slow_count", snap.slow))
    counters.extend((s, n) for s, n in zip(ELAPSE_SUFFIXES, snap.elapse, strict=True) if n)
    values = percentiles(list(snap.sample), _QUANTILES)
    histogram = [(f".{name}", v) for (name, _), v in zip(PERCENTILES, values, strict=True)]
    histogram.append((".avg_time", snap.mean_ms))
    return counters, histogram


def metric_segments(
    snaps: Iterable[PeriodSnapshot], gauges: Iterable[Gauge], local_ip: str
) -> list[str]:
    """The datagram text of each metric (one line; a histogram: seven lines together)."""
    host = host_part(local_ip)
    segments: list[str] = []
    for snap in snaps:
        prefix = _prefix(snap, host)
        counters, histogram = _series_values(snap)
        segments.extend(f"{prefix}{suffix}:{n}|c\n" for suffix, n in counters)
        lines = [f"{prefix}{suffix}:{v:.2f}|kv\n" for suffix, v in histogram[:-1]]
        lines.append(f"{prefix}{histogram[-1][0]}:{histogram[-1][1]:.2f}|ms\n")
        segments.append("".join(lines))
    for g in gauges:
        segments.append(
            f"{STAT_ROLE}.{escape(g.application)}.{STAT_GROUP}.byhost.{host}."
            f"{STAT_SERVICE}.{escape(g.name)}:{g.value}|kv\n"
        )
    return segments


def pack(segments: Iterable[str], limit: int = MESSAGE_MAX_LEN) -> list[bytes]:
    """Segments joined into messages of at most ``limit`` bytes (a longer segment goes
    alone), as the Go agent packs them."""
    messages: list[bytes] = []
    buf: list[bytes] = []
    size = 0
    for segment in segments:
        data = segment.encode()
        if size and size + len(data) > limit:
            messages.append(b"".join(buf))
            buf, size = [], 0
        buf.append(data)
        size += len(data)
    if size:
        messages.append(b"".join(buf))
    return messages


def carbon_lines(
    snaps: Iterable[PeriodSnapshot],
    gauges: Iterable[Gauge],
    local_ip: str,
    timestamp: int,
    prefix: str = "",
) -> list[str]:
    """Graphite plaintext lines for one period: ``<prefix><name> <value> <timestamp>``."""
    host = host_part(local_ip)
    lead = f"{prefix.rstrip('.')}." if prefix else ""
    lines: list[str] = []
    for snap in snaps:
        base = lead + _prefix(snap, host)
        counters, histogram = _series_values(snap)
        lines.extend(f"{base}{suffix} {n} {timestamp}\n" for suffix, n in counters)
        lines.extend(f"{base}{suffix} {v:.2f} {timestamp}\n" for suffix, v in histogram)
    for g in gauges:
        lines.append(
            f"{lead}{STAT_ROLE}.{escape(g.application)}.{STAT_GROUP}.byhost.{host}."
            f"{STAT_SERVICE}.{escape(g.name)} {g.value} {timestamp}\n"
        )
    return lines


class DatagramWriter:
    """``metrics.graphite`` entry: the Go agent's UDP datagrams to ``host:port``."""

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.sent = 0

    def __repr__(self) -> str:
        return f"DatagramWriter({self.name!r}, {self.host}:{self.port})"

    async def write(
        self, snaps: Sequence[PeriodSnapshot], gauges: Sequence[Gauge], timestamp: int
    ) -> None:
        if not snaps and not gauges:
            return
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.connect(address)
            local_ip = str(sock.getsockname()[0])
            for message in pack(metric_segments(snaps, gauges, local_ip)):
                try:
                    sock.send(message)
                except BlockingIOError:  # the kernel's buffer is full: this message is lost
                    log.warning("metrics datagram to %s:%d dropped", self.host, self.port)
                    continue
                self.sent += 1
        finally:
            sock.close()


class CarbonWriter:
    """``metrics.carbon`` entry: Graphite plaintext over TCP to ``host:port``."""

    def __init__(
        self, name: str, host: str, port: int, prefix: str = "", timeout: float = 5.0
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.prefix = prefix
        self.timeout = timeout
        self._last_timestamp = 0

    def __repr__(self) -> str:
        return f"CarbonWriter({self.name!r}, {self.host}:{self.port})"

    async def write(
        self, snaps: Sequence[PeriodSnapshot], gauges: Sequence[Gauge], timestamp: int
    ) -> None:
        if not snaps and not gauges:
            return
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout
        )
        del reader
        # one whisper slot per period, even when a late period ends in the same second
        timestamp = max(timestamp, self._last_timestamp + 1)
        self._last_timestamp = timestamp
        try:
            local_ip = str(writer.get_extra_info("sockname")[0])
            lines = carbon_lines(snaps, gauges, local_ip, timestamp, self.prefix)
            writer.write("".join(lines).encode())
            await asyncio.wait_for(writer.drain(), self.timeout)
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), self.timeout)
