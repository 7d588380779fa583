"""The agent's call metrics: one :class:`CallStats` per (role, application, group, service,
method), held by a :class:`MetricStore`.

Each series keeps two views of the same calls:

* cumulative counters and a latency histogram in seconds (for Prometheus, which computes
  rates itself);
* per-period counters and a latency sample in milliseconds, snapshotted *and cleared* every
  ``metrics.period`` (as the Go agent does), for the metric datagrams, Graphite and
  ``/status``.

Recording a call is a handful of integer additions on a pre-resolved object: no lock (the
agent runs on one event loop), no allocation except the latency sample's list growth. The
module is compiled by mypyc with the call path (``motanmesh.filters.COMPILED_MODULES``).
"""

from __future__ import annotations

import logging
import math
import random
from bisect import bisect_right
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
#: a call at least this long has more than 200 whole milliseconds
_SLOW_SECONDS: Final = (SLOW_MS + 1) / 1000
#: the Go agent's latency buckets, by whole milliseconds
ELAPSE_SUFFIXES: Final = (".Less50ms", ".Less100ms", ".Less200ms", ".Less500ms", ".More500ms")
_ELAPSE_BOUNDS: Final = (50, 100, 200, 500)
#: upper bounds (seconds, ``le``) of the Prometheus duration histogram; +Inf is implied (a
#: list, which a compiled loop reads without boxing a tuple of floats)
_BOUNDS: Final[list[float]] = [
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
]
DURATION_BUCKETS: Final[tuple[float, ...]] = tuple(_BOUNDS)
# the Go buckets as slices of the duration buckets (whose bounds include theirs)
_ELAPSE_SLICES: Final = tuple(
    zip(
        (0, *(DURATION_BUCKETS.index(b / 1000) + 1 for b in _ELAPSE_BOUNDS)),
        (
            *(DURATION_BUCKETS.index(b / 1000) + 1 for b in _ELAPSE_BOUNDS),
            len(DURATION_BUCKETS) + 1,
        ),
        strict=True,
    )
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
    return bisect_right(_ELAPSE_BOUNDS, ms)


def _unit() -> float:
    """A random number in (0, 1)."""
    return random.random() or 5e-324


def _skip(w: float) -> int:
    """How many calls the reservoir skips before keeping one, at weight ``w``."""
    return math.floor(math.log(_unit()) / math.log(max(1.0 - w, 1e-300)))


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
    #: the mean latency in milliseconds
    mean_ms: float


class CallStats:
    """The counters of one series. A call is counted in the period counters (``p_*``) only;
    ending a period folds them into the totals, so the cumulative values (:attr:`calls`,
    :attr:`buckets`...) are the totals plus the current period."""

    __slots__ = (
        "_biz",
        "_buckets",
        "_calls",
        "_other",
        "_seconds",
        "_slow",
        "key",
        "p_biz",
        "p_buckets",
        "p_calls",
        "p_next",
        "p_other",
        "p_sample",
        "p_seconds",
        "p_slow",
        "p_w",
    )

    def __init__(self, key: SeriesKey) -> None:
        self.key = key
        # totals of the ended periods
        self._calls = 0
        self._biz = 0
        self._other = 0
        self._slow = 0
        self._buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self._seconds = 0.0
        # this period
        self.p_calls = 0
        self.p_biz = 0
        self.p_other = 0
        self.p_slow = 0
        #: per bucket of :data:`DURATION_BUCKETS` (+Inf last), not cumulative across buckets
        self.p_buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.p_sample: list[int] = []
        self.p_seconds = 0.0
        #: past :data:`SAMPLE_SIZE` calls: the count of the next call to keep, and the
        #: reservoir's weight (Li's "algorithm L": one comparison for the calls skipped)
        self.p_next = 0
        self.p_w = 0.0

    def record(self, seconds: float, error: str | None) -> None:
        """One call that took ``seconds`` and ended with ``error`` (None, "biz", "other")."""
        self.p_calls += 1
        if error is not None:
            if error == ERROR_BIZ:
                self.p_biz += 1
            else:
                self.p_other += 1
        if seconds >= _SLOW_SECONDS:
            self.p_slow += 1
        # bisect_left(DURATION_BUCKETS, seconds), most calls stopping at the first bound
        # (a plain loop over a list: compiled, it calls and allocates nothing)
        bounds = _BOUNDS
        n = len(bounds)
        i = 0
        while i < n and seconds > bounds[i]:
            i += 1
        self.p_buckets[i] += 1
        self.p_seconds += seconds
        if self.p_calls <= SAMPLE_SIZE:
            self.p_sample.append(int(seconds * 1000))
        elif self.p_calls >= self.p_next:
            self._keep(int(seconds * 1000))

    def _keep(self, ms: int) -> None:
        """A uniform sample of the period's calls (as go-metrics' decaying sample with
        alpha 0): the first past :data:`SAMPLE_SIZE` draws the first skip; each kept call
        replaces a random one and draws the next skip."""
        if self.p_next == 0:
            self.p_w = math.exp(math.log(_unit()) / SAMPLE_SIZE)
            self.p_next = SAMPLE_SIZE + _skip(self.p_w) + 1
            if self.p_calls < self.p_next:
                return
        self.p_sample[min(int(random.random() * SAMPLE_SIZE), SAMPLE_SIZE - 1)] = ms
        self.p_w *= math.exp(math.log(_unit()) / SAMPLE_SIZE)
        self.p_next = self.p_calls + _skip(self.p_w) + 1

    # cumulative views (Prometheus)

    @property
    def calls(self) -> int:
        return self._calls + self.p_calls

    @property
    def biz_errors(self) -> int:
        return self._biz + self.p_biz

    @property
    def other_errors(self) -> int:
        return self._other + self.p_other

    @property
    def slow(self) -> int:
        return self._slow + self.p_slow

    @property
    def buckets(self) -> list[int]:
        return [a + b for a, b in zip(self._buckets, self.p_buckets, strict=True)]

    @property
    def duration_sum(self) -> float:
        return self._seconds + self.p_seconds

    def snapshot_and_clear(self) -> PeriodSnapshot | None:
        """This period's calls (``None`` when there were none), and a new period."""
        calls = self.p_calls
        if not calls:
            return None
        sample = self.p_sample
        # the mean of the whole milliseconds (Go: of its sample, the same up to 1024 calls)
        mean = sum(sample) / len(sample) if calls <= SAMPLE_SIZE else self.p_seconds * 1000 / calls
        b = self.p_buckets
        elapse = [sum(b[lo:hi]) for lo, hi in _ELAPSE_SLICES]
        snap = PeriodSnapshot(
            self.key, calls, self.p_biz, self.p_other, self.p_slow, elapse, sample, mean
        )
        self._calls += calls
        self._biz += self.p_biz
        self._other += self.p_other
        self._slow += self.p_slow
        self._buckets = self.buckets
        self._seconds += self.p_seconds
        self.p_calls = self.p_biz = self.p_other = self.p_slow = 0
        self.p_buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.p_sample = []
        self.p_seconds = 0.0
        self.p_next = 0
        return snap


@dataclass
class MetricStore:
    """Every series of one agent, and the last period's snapshot of them."""

    max_series: int = MAX_SERIES
    series: dict[SeriesKey, CallStats] = field(default_factory=dict)
    #: the previous period's snapshots (``/status``); empty before the first period ends
    last_period: list[PeriodSnapshot] = field(default_factory=list)
    #: the switcher ``metricsReqApp`` (kept current by the metrics filters)
    req_app: bool = False
    req_app_watched: bool = False
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
