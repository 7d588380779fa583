"""Telemetry from Prometheus text: the agents' ``/metrics`` scraped directly, or a Prometheus
server's HTTP API queried with PromQL.

The agents export (per role, application, group, service, method)::

    motan_calls_total            counter   every call
    motan_call_errors_total      counter   failed calls, label kind = biz | other
    motan_slow_calls_total       counter   calls over 200 ms
    motan_call_duration_seconds  histogram

On the client side ``group`` is the group the application asked for (its IDC group); the
cluster-level counts carry the suffix ``.cluster``. Only ``kind="other"`` errors count as
failures for the SLO guard: a business error is an answer, not a sign of overload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from motanmesh.autopilot.store import CLUSTER_SUFFIX, Delta, Key, TelemetryStore

__all__ = ["AgentScraper", "PromQLSource", "Scrape", "parse_metrics"]

log = logging.getLogger("motanmesh.autopilot.telemetry")

CALLS: Final = "motan_calls_total"
ERRORS: Final = "motan_call_errors_total"
SLOW: Final = "motan_slow_calls_total"
DURATION_BUCKET: Final = "motan_call_duration_seconds_bucket"

# (key, field, bucket bound or NaN) → cumulative value
Scrape = dict[tuple[Key, str, float], float]


def _key(labels: dict[str, str]) -> Key | None:
    role, group, service = labels.get("role"), labels.get("group"), labels.get("service")
    if not role or not group or not service:
        return None
    cluster = group.endswith(CLUSTER_SUFFIX)
    if cluster:
        group = group[: -len(CLUSTER_SUFFIX)]
    return Key(role, group, service, cluster)


def parse_metrics(text: str) -> Scrape:
    """The motan series of a ``/metrics`` page, summed over applications and methods.
    ``ValueError`` when the text is not the Prometheus text format."""
    found: Scrape = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("motan_"):
            continue
        for sample in family.samples:
            name, labels = sample.name, sample.labels
            if name == CALLS:
                what, bound = "calls", math.nan
            elif name == ERRORS:
                if labels.get("kind", "other") != "other":
                    continue
                what, bound = "errors", math.nan
            elif name == SLOW:
                what, bound = "slow", math.nan
            elif name == DURATION_BUCKET:
                what, bound = "bucket", float(labels.get("le", "+Inf"))
            else:
                continue
            key = _key(labels)
            if key is None:
                continue
            slot = (key, what, bound)
            found[slot] = found.get(slot, 0.0) + float(sample.value)
    return found


def deltas_between(
    origin: str, before: Scrape, after: Scrape, start: float, end: float
) -> list[Delta]:
    """What happened between two scrapes of one origin (a counter that went down was reset:
    its new value is the increase)."""
    by_key: dict[Key, Delta] = {}
    for slot, value in after.items():
        key, what, bound = slot
        previous = before.get(slot, 0.0)
        increase = value - previous if value >= previous else value
        delta = by_key.get(key)
        if delta is None:
            delta = by_key[key] = Delta(origin, key, start, end)
        if what == "calls":
            delta.calls += increase
        elif what == "errors":
            delta.errors += increase
        elif what == "slow":
            delta.slow += increase
        else:
            delta.buckets[bound] = delta.buckets.get(bound, 0.0) + increase
    return list(by_key.values())


@dataclass
class _Target:
    address: str
    last: Scrape | None = None
    last_at: float = 0.0
    ok_at: float | None = None
    error: str = ""
    added: float = field(default_factory=time.monotonic)


class AgentScraper:
    """Scrapes ``http://<agent>/metrics`` of every agent every ``interval`` seconds.

    Targets are the static ``targets`` plus, when ``discover`` is given, the agent nodes it
    returns (refreshed every ``discover_every`` seconds). A target whose scrapes failed for
    longer than the store's staleness limit makes the telemetry stale (:meth:`problem`)."""

    name = "agents"

    def __init__(
        self,
        store: TelemetryStore,
        *,
        targets: Iterable[str] = (),
        discover: Callable[[], Awaitable[list[str]]] | None = None,
        path: str = "/metrics",
        interval: float = 1.0,
        timeout: float = 2.0,
        discover_every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.static = list(targets)
        self.discover = discover
        self.path = path
        self.interval = interval
        self.timeout = timeout
        self.discover_every = discover_every
        self.clock = clock
        self.targets: dict[str, _Target] = {}
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._discovered_at = -math.inf
        self.discovery_error = ""

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        for address in self.static:
            self.targets[address] = _Target(address, added=self.clock())
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            started = self.clock()
            try:
                await self.round()
            except Exception:
                log.exception("telemetry: scrape round failed")
            await asyncio.sleep(max(0.05, self.interval - (self.clock() - started)))

    async def _refresh_targets(self) -> None:
        if self.discover is None or self.clock() - self._discovered_at < self.discover_every:
            return
        self._discovered_at = self.clock()
        try:
            found = set(await self.discover())
        except Exception as exc:
            self.discovery_error = f"cannot list agents: {exc}"
            log.warning("telemetry: %s", self.discovery_error)
            return
        self.discovery_error = ""
        wanted = found | set(self.static)
        for address in wanted - set(self.targets):
            self.targets[address] = _Target(address, added=self.clock())
        for address in set(self.targets) - wanted:
            del self.targets[address]  # the agent left the registry

    async def round(self) -> None:
        """Scrape every target once (concurrently) and store what changed."""
        await self._refresh_targets()
        await asyncio.gather(*(self._scrape(t) for t in list(self.targets.values())))

    async def _scrape(self, target: _Target) -> None:
        assert self._session is not None
        url = f"http://{target.address}{self.path}"
        try:
            async with self._session.get(url) as resp:
                body = await resp.text()
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
            scrape = parse_metrics(body)
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
            target.error = f"{url}: {exc or type(exc).__name__}"
            return
        now = self.clock()
        if target.last is not None:
            self.store.add(deltas_between(target.address, target.last, scrape, target.last_at, now))
        target.last, target.last_at, target.ok_at, target.error = scrape, now, now, ""

    def problem(self, now: float, stale_after: float) -> str:
        """Why the telemetry cannot be trusted right now ("" when it can)."""
        if self.discovery_error and not self.targets:
            return self.discovery_error
        if not self.targets:
            return "no agents to scrape (none in the registry, none configured)"
        for target in self.targets.values():
            since = target.ok_at if target.ok_at is not None else target.added
            if now - since > stale_after:
                return f"no metrics from {target.address} for {now - since:.0f}s ({target.error})"
        return ""


class PromQLSource:
    """Queries a Prometheus server (``/api/v1/query``) for the rates of the motan series,
    summed by role, group and service, every ``interval`` seconds."""

    name = "prometheus"

    def __init__(
        self,
        store: TelemetryStore,
        url: str,
        *,
        interval: float = 5.0,
        timeout: float = 2.0,
        range_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.url = url.rstrip("/")
        self.interval = interval
        self.timeout = timeout
        self.range_seconds = max(1, round(range_seconds))
        self.range = f"{self.range_seconds}s"
        self.clock = clock
        self.ok_at: float | None = None
        self.error = ""
        self._started = clock()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    def queries(self) -> dict[str, str]:
        by = "sum by (role, group, service)"
        return {
            "calls": f"{by} (rate({CALLS}[{self.range}]))",
            "errors": f'{by} (rate({ERRORS}{{kind="other"}}[{self.range}]))',
            "slow": f"{by} (rate({SLOW}[{self.range}]))",
            "p99": "histogram_quantile(0.99, sum by (role, group, service, le) "
            f"(rate({DURATION_BUCKET}[{self.range}])))",
        }

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except Exception:
                log.exception("telemetry: prometheus query round failed")
            await asyncio.sleep(self.interval)

    async def _query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        assert self._session is not None
        async with self._session.get(f"{self.url}/api/v1/query", params={"query": promql}) as r:
            answer: Any = await r.json(content_type=None)
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise ValueError(f"query failed: {str(answer)[:200]}")
        rows = []
        for item in answer.get("data", {}).get("result", []):
            value = float(item["value"][1])
            if not math.isnan(value):
                rows.append(({str(k): str(v) for k, v in item["metric"].items()}, value))
        return rows

    async def round(self) -> None:
        now = self.clock()
        found: dict[Key, Delta] = {}
        try:
            for what, promql in self.queries().items():
                for labels, value in await self._query(promql):
                    key = _key(labels)
                    if key is None:
                        continue
                    delta = found.get(key)
                    if delta is None:
                        # Prometheus' rates cover the query's range, not our interval
                        start = now - self.range_seconds
                        delta = found[key] = Delta(self.url, key, start, now)
                    if what == "p99":
                        delta.p99 = value
                    else:
                        setattr(delta, what, value * self.range_seconds)
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, OSError) as exc:
            self.error = f"{self.url}: {exc or type(exc).__name__}"
            return
        self.store.add(found.values())
        self.ok_at, self.error = now, ""

    def problem(self, now: float, stale_after: float) -> str:
        since = self.ok_at if self.ok_at is not None else self._started
        if now - since > stale_after:
            return f"no answer from Prometheus for {now - since:.0f}s ({self.error})"
        return ""
