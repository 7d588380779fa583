"""The agent's call metrics: one :class:`CallStats` per (role, application, group, service,
method), held by a :class:`MetricStore`.

Each series keeps two views of the same calls:

* cumulative counters and a latency histogram in seconds (for Prometheus, which computes
  rates itself);
* per-period counters and a latency sample in milliseconds, snapshotted *and cleared* every
  ``metrics.period`` (as the Go agent does), for the metric datagrams, Graphite and
  ``/status``.

Recording a call is a handful of integer additions on a pre-resolved object: no lock (the
agent runs on one event loop), no allocation except the latency sample's list growth.
"""

from __future__ import annotations

import logging
import math
import random
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from motanmesh.filters.base import ERROR_BIZ

__all__ = [
    "DURATION_BUCKETS",
    "ELAPSE_SUFFIXES",
    "MAX_SERIES",
    "METRICS_SERVICE",
    "PERCENTILES",
    "SAMPLE_SIZE",
    "SLOW_MS",
    "CallStats",
    "MetricStore",
    "PeriodSnapshot",
    "SeriesKey",
    "elapse_index",
    "percentiles",
]

log = logging.getLogger("motanmesh.telemetry")

#: the name of the store among the filters' shared objects (``FilterContext.services``)
METRICS_SERVICE: Final = "metrics"
#: calls slower than this many milliseconds are "slow" (the Go agent: cost > 200)
SLOW_MS: Final = 200
#: the Go agent's latency buckets, by whole milliseconds
ELAPSE_SUFFIXES: Final = (".Less50ms", ".Less100ms", ".Less200ms", ".Less500ms", ".More500ms")
_ELAPSE_BOUNDS: Final = (50, 100, 200, 500)
#: upper bounds (seconds, ``le``) of the Prometheus duration histogram; +Inf is implied
DURATION_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: latencies kept per series and period for percentiles (the Go agent's sample size)
SAMPLE_SIZE: Final = 1024
#: the percentiles of the metric datagrams: name → quantile
PERCENTILES: Final = (
    ("p50", 0.5),
    ("p75", 0.75),
    ("p95", 0.95),
    ("p99", 0.99),
    ("p999", 0.999),
    ("p9999", 0.9999),
)
#: series a store keeps at most; calls of further keys count under :data:`OVERFLOW_METHOD`
MAX_SERIES: Final = 10_000
OVERFLOW_METHOD: Final = "_other_"


def elapse_index(ms: int) -> int:
    """Index into :data:`ELAPSE_SUFFIXES` of a latency in whole milliseconds."""
    if ms < 50:
        return 0
    if ms < 100:
        return 1
    if ms < 200:
        return 2
    if ms < 500:
        return 3
    return 4


def percentiles(values: list[int], quantiles: tuple[float, ...]) -> list[float]:
    """Percentiles of ``values`` as go-metrics computes them (sorted, position
    ``q * (n + 1)``, linear between neighbours, clamped to the ends). Sorts ``values``."""
    n = len(values)
    if n == 0:
        return [0.0 for _ in quantiles]
    values.sort()
    out: list[float] = []
    for q in quantiles:
        pos = q * (n + 1)
        if pos < 1.0:
            out.append(float(values[0]))
        elif pos >= n:
            out.append(float(values[-1]))
        else:
            lower = float(values[int(pos) - 1])
            upper = float(values[int(pos)])
            out.append(lower + (pos - math.floor(pos)) * (upper - lower))
    return out


@dataclass(frozen=True)
class SeriesKey:
    """What identifies a series. ``group_suffix`` is ``""`` or ``".cluster"``."""

    role: str
    application: str
    group: str
    group_suffix: str
    service: str
    method: str

    @property
    def labelled_group(self) -> str:
        return self.group + self.group_suffix


@dataclass
class PeriodSnapshot:
    """One series' calls over one period."""

    key: SeriesKey
    calls: int
    biz_errors: int
    other_errors: int
    slow: int
    elapse: list[int]
    #: latencies in whole milliseconds (at most :data:`SAMPLE_SIZE`, a uniform sample)
    sample: list[int]
    sum_ms: int

    @property
    def mean_ms(self) -> float:
        return self.sum_ms / self.calls if self.calls else 0.0


class CallStats:
    """The counters of one series."""

    __slots__ = (
        "biz_errors",
        "buckets",
        "calls",
        "duration_sum",
        "key",
        "other_errors",
        "p_biz",
        "p_calls",
        "p_elapse",
        "p_other",
        "p_sample",
        "p_slow",
        "p_sum_ms",
        "slow",
    )

    def __init__(self, key: SeriesKey) -> None:
        self.key = key
        # cumulative
        self.calls = 0
        self.biz_errors = 0
        self.other_errors = 0
        self.slow = 0
        #: per bucket of :data:`DURATION_BUCKETS` (+Inf last), not cumulative across buckets
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        # this period
        self.p_calls = 0
        self.p_biz = 0
        self.p_other = 0
        self.p_slow = 0
        self.p_elapse = [0, 0, 0, 0, 0]
        self.p_sample: list[int] = []
        self.p_sum_ms = 0

    def record(self, seconds: float, error: str | None) -> None:
        """One call that took ``seconds`` and ended with ``error`` (None, "biz", "other")."""
        self.calls += 1
        self.p_calls += 1
        if error is not None:
            if error == ERROR_BIZ:
                self.biz_errors += 1
                self.p_biz += 1
            else:
                self.other_errors += 1
                self.p_other += 1
        ms = int(seconds * 1000)
        if ms > SLOW_MS:
            self.slow += 1
            self.p_slow += 1
        self.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.duration_sum += seconds
        self.p_elapse[elapse_index(ms)] += 1
        self.p_sum_ms += ms
        sample = self.p_sample
        if len(sample) < SAMPLE_SIZE:
            sample.append(ms)
        else:  # uniform reservoir (go-metrics' decaying sample with alpha 0)
            j = random.randrange(self.p_calls)
            if j < SAMPLE_SIZE:
                sample[j] = ms

    def snapshot_and_clear(self) -> PeriodSnapshot | None:
        """This period's calls (``None`` when there were none), and a new period."""
        if not self.p_calls:
            return None
        snap = PeriodSnapshot(
            self.key,
            self.p_calls,
            self.p_biz,
            self.p_other,
            self.p_slow,
            self.p_elapse,
            self.p_sample,
            self.p_sum_ms,
        )
        self.p_calls = self.p_biz = self.p_other = self.p_slow = self.p_sum_ms = 0
        self.p_elapse = [0, 0, 0, 0, 0]
        self.p_sample = []
        return snap


@dataclass
class MetricStore:
    """Every series of one agent, and the last period's snapshot of them."""

    max_series: int = MAX_SERIES
    series: dict[SeriesKey, CallStats] = field(default_factory=dict)
    #: the previous period's snapshots (``/status``); empty before the first period ends
    last_period: list[PeriodSnapshot] = field(default_factory=list)
    _overflow_warned: bool = False

    def stats(
        self,
        role: str,
        application: str,
        group: str,
        group_suffix: str,
        service: str,
        method: str,
    ) -> CallStats:
        """The series of this key, made on first use. Past :attr:`max_series`, new keys
        share one series per (role, application, group, service) with method
        :data:`OVERFLOW_METHOD`, so a caller inventing method names cannot grow memory."""
        key = SeriesKey(role, application, group, group_suffix, service, method)
        found = self.series.get(key)
        if found is not None:
            return found
        if len(self.series) >= self.max_series:
            if not self._overflow_warned:
                self._overflow_warned = True
                log.warning(
                    "metrics: %d series reached; further methods count as %r",
                    self.max_series,
                    OVERFLOW_METHOD,
                )
            key = SeriesKey(role, application, group, group_suffix, service, OVERFLOW_METHOD)
            found = self.series.get(key)
            if found is not None:
                return found
        found = self.series[key] = CallStats(key)
        return found

    def __iter__(self) -> Iterator[CallStats]:
        return iter(list(self.series.values()))

    def snapshot_and_clear(self) -> list[PeriodSnapshot]:
        """End the period: every series with calls in it, in key order; kept as
        :attr:`last_period`."""
        snaps = [s for s in (c.snapshot_and_clear() for c in self.series.values()) if s]
        self.last_period = snaps
        return snaps

    def close(self) -> None:
        """Nothing to release (the agent's shared-service protocol)."""
