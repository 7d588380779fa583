"""One agent's telemetry: the metric store the ``metrics`` filters fill, the runtime gauges,
the periodic reporter (``metrics.period``) and the readers (``/metrics``, ``/status``).

Configuration (the Go agent's ``metrics`` section, plus ``carbon`` and ``sampleInterval``)::

    metrics:
      period: 5                 # seconds between reports (snapshot and clear)
      sampleInterval: 30        # seconds between runtime gauge samples in the datagrams
      graphite:                 # the Go agent's UDP datagrams
        - {name: collector, host: 127.0.0.1, port: 8125}
      carbon:                   # Graphite plaintext over TCP
        - {name: carbon, host: 127.0.0.1, port: 2003, prefix: mesh}

The reporter costs one timer per period; with no metrics filter configured there is nothing
to snapshot and nothing is sent but the runtime gauges, and only when writers are set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol

from motanmesh.telemetry.graphite import CarbonWriter, DatagramWriter, Gauge
from motanmesh.telemetry.runtime import RuntimeSample, SampleSource, process_samples
from motanmesh.telemetry.store import METRICS_SERVICE, MetricStore, PeriodSnapshot

__all__ = [
    "DEFAULT_PERIOD",
    "DEFAULT_SAMPLE_INTERVAL",
    "MetricsWriter",
    "Telemetry",
    "TelemetryConfigError",
]

log = logging.getLogger("motanmesh.telemetry")

DEFAULT_PERIOD: Final = 5
DEFAULT_SAMPLE_INTERVAL: Final = 30
#: where the accessLog filters keep their writer among the shared objects
ACCESS_LOG_SERVICE: Final = "accessLog"
#: where the circuitBreaker filters keep their circuits (identity → circuit)
CIRCUITS_SERVICE: Final = "circuitBreakers"


def _breaker_samples(circuits: Any) -> list[RuntimeSample]:
    """The state (0 closed, 1 open, 2 half-open) and the openings of each circuit."""
    if not isinstance(circuits, dict):
        return []
    out: list[RuntimeSample] = []
    for name, circuit in list(circuits.items()):
        state = getattr(circuit, "state_value", None)
        if not isinstance(state, int):
            continue
        labels = (("name", str(name)),)
        out.append(
            RuntimeSample(
                "motan_circuit_breaker_state",
                "gauge",
                state,
                "Circuit breaker state: 0 closed, 1 open, 2 half-open",
                labels,
            )
        )
        opens = getattr(circuit, "opens", None)
        if isinstance(opens, int):
            out.append(
                RuntimeSample(
                    "motan_circuit_breaker_opens_total",
                    "counter",
                    opens,
                    "Times the circuit opened",
                    labels,
                )
            )
    return out


class TelemetryConfigError(ValueError):
    """The ``metrics`` section cannot be used as written."""


class MetricsWriter(Protocol):
    name: str

    async def write(
        self, snaps: list[PeriodSnapshot], gauges: list[Gauge], timestamp: int
    ) -> None: ...


def _positive(section: Mapping[str, Any], key: str, default: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TelemetryConfigError(f"metrics.{key}: expected a number of seconds")
    try:
        number = int(value)
    except ValueError:
        raise TelemetryConfigError(f"metrics.{key}: expected a number, got {value!r}") from None
    if number < 1:
        raise TelemetryConfigError(f"metrics.{key}: must be at least 1, got {number}")
    return number


def _targets(section: Mapping[str, Any], key: str) -> list[tuple[str, str, int, str]]:
    entries = section.get(key) or []
    if not isinstance(entries, list):
        raise TelemetryConfigError(f"metrics.{key}: expected a list of {{name, host, port}}")
    out: list[tuple[str, str, int, str]] = []
    for i, entry in enumerate(entries):
        where = f"metrics.{key}[{i}]"
        if not isinstance(entry, dict):
            raise TelemetryConfigError(f"{where}: expected a mapping {{name, host, port}}")
        host = str(entry.get("host") or "")
        if not host:
            raise TelemetryConfigError(f"{where}.host: missing")
        port = entry.get("port")
        try:
            port_number = int(port)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise TelemetryConfigError(f"{where}.port: expected a port, got {port!r}") from None
        if not 0 < port_number < 65536 or isinstance(port, bool):
            raise TelemetryConfigError(f"{where}.port: expected 1..65535, got {port!r}")
        name = str(entry.get("name") or f"{host}:{port_number}")
        out.append((name, host, port_number, str(entry.get("prefix") or "")))
    return out


class Telemetry:
    """The telemetry of one agent. ``services`` is the dict of objects the filters share
    (``FilterContext.services``): the metric store lives there under ``"metrics"``, and
    any shared object with ``runtime_samples()`` contributes runtime gauges."""

    def __init__(
        self,
        application: str,
        section: Mapping[str, Any] | None = None,
        services: dict[str, Any] | None = None,
        started: float | None = None,
    ) -> None:
        section = section or {}
        self.application = application
        self.services: dict[str, Any] = services if services is not None else {}
        self.period = _positive(section, "period", DEFAULT_PERIOD)
        self.sample_interval = _positive(section, "sampleInterval", DEFAULT_SAMPLE_INTERVAL)
        self.writers: list[MetricsWriter] = [
            DatagramWriter(name, host, port)
            for name, host, port, _ in _targets(section, "graphite")
        ]
        self.writers.extend(
            CarbonWriter(name, host, port, prefix)
            for name, host, port, prefix in _targets(section, "carbon")
        )
        self.started = started if started is not None else time.time()
        self._sources: list[SampleSource] = []
        self._task: asyncio.Task[None] | None = None
        self._last_sample = 0.0
        #: counters' values at the last datagram sample (their increase is sent)
        self._last_counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    # ------------------------------------------------------------------ sources

    @property
    def store(self) -> MetricStore | None:
        """The store, once a ``metrics`` filter has made it."""
        found = self.services.get(METRICS_SERVICE)
        return found if isinstance(found, MetricStore) else None

    def add_source(self, source: SampleSource) -> None:
        """Add runtime gauges (the agent's connections, not-found providers...)."""
        self._sources.append(source)

    def samples(self) -> list[RuntimeSample]:
        """Every runtime sample now: the process, the added sources, the shared objects."""
        out = process_samples(self.started)
        for source in self._sources:
            try:
                out.extend(source())
            except Exception:
                log.exception("a runtime gauge source failed")
        discarded = getattr(self.services.get(ACCESS_LOG_SERVICE), "discarded", None)
        if isinstance(discarded, int):  # the accessLog filters' writer
            out.append(
                RuntimeSample(
                    "motan_accesslog_discarded_total",
                    "counter",
                    discarded,
                    "Access-log entries dropped because the buffer was full",
                    go_name="accesslog_discard_count",
                )
            )
        out.extend(_breaker_samples(self.services.get(CIRCUITS_SERVICE)))
        for name, service in list(self.services.items()):
            report = getattr(service, "runtime_samples", None)
            if report is None:
                continue
            try:
                out.extend(report())
            except Exception:
                log.exception("runtime samples of %s failed", name)
        return out

    # ------------------------------------------------------------------ readers

    def prometheus(self) -> tuple[bytes, str]:
        """``/metrics``: the text exposition and its content type."""
        from motanmesh.telemetry import prometheus  # noqa: PLC0415 (first scrape only)

        store = self.store
        series = list(store) if store is not None else []
        body = prometheus.exposition(series, self.samples(), self.application)
        return body, prometheus.CONTENT_TYPE

    def status(self, services: Iterable[tuple[str, str]], agent_status: int) -> dict[str, Any]:
        """``/status``'s body: per exported ``(group, path)``, the calls of each method in
        the last period (the server side's ``metrics`` filter counts them)."""
        store = self.store
        last = store.last_period if store is not None else []
        total = 0
        out: list[dict[str, Any]] = []
        for group, path in services:
            methods: list[dict[str, Any]] = []
            for snap in last:
                k = snap.key
                if k.group == group and k.service == path and not k.group_suffix:
                    methods.append({"name": k.method, "period_call_count": snap.calls})
                    total += snap.calls
            out.append({"group": group, "name": path, "methods": methods})
        return {"status": agent_status, "service_period_call_count": total, "services": out}

    # ------------------------------------------------------------------ reporting

    def gauges(self) -> list[Gauge]:
        """The datagram gauges of one sample (counters as their increase since the last)."""
        out: list[Gauge] = []
        for s in self.samples():
            if not s.go_name:
                continue
            value = s.value
            if s.kind == "counter":
                key = (s.name, s.labels)
                value, self._last_counters[key] = value - self._last_counters.get(key, 0), value
            out.append(Gauge(self.application, s.go_name, int(value // s.go_divisor)))
        return out

    async def report(self, now: float | None = None) -> list[PeriodSnapshot]:
        """End one period: snapshot and clear the store, sample the gauges when due, and
        hand both to every writer (a failing writer is logged; the others still run)."""
        now = time.time() if now is None else now
        store = self.store
        snaps = store.snapshot_and_clear() if store is not None else []
        gauges: list[Gauge] = []
        if now - self._last_sample >= self.sample_interval:
            self._last_sample = now
            gauges = self.gauges()
        if self.writers and (snaps or gauges):
            results = await asyncio.gather(
                *(w.write(snaps, gauges, int(now)) for w in self.writers), return_exceptions=True
            )
            for writer, result in zip(self.writers, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("metrics writer %s failed: %s", writer.name, result)
        return snaps

    async def start(self) -> None:
        if self._task is None:
            self._last_sample = time.time()  # the first gauges after one interval, as Go
            self._task = asyncio.create_task(self._run(), name="motanmesh-metrics")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self.period
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += self.period
            try:
                await self.report()
            except Exception:
                log.exception("metrics report failed")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
