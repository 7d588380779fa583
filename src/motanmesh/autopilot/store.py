"""Telemetry as the autopilot keeps it: call counts over short intervals, per origin.

Every source turns what it reads into :class:`Delta` records: for one origin (an agent's
management address, a Go agent's host), one :class:`Key` (role, group, service) and one
interval, how many calls, errors and slow calls there were, and the latency histogram's bucket
counts or a reported p99. The :class:`TelemetryStore` keeps them for a while and answers rates
over a window: per origin the counts are divided by the time that origin's intervals cover,
then summed over the origins, so agents reporting at different periods add up correctly.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "CLIENT_ROLE",
    "SERVER_ROLE",
    "Delta",
    "Key",
    "Rates",
    "TelemetryStore",
    "histogram_quantile",
]

CLIENT_ROLE: Final = "motan-client-agent"
SERVER_ROLE: Final = "motan-server-agent"
CLUSTER_SUFFIX: Final = ".cluster"


@dataclass(frozen=True, slots=True)
class Key:
    """What a count is about: the agent role, the group (an IDC group), the service.

    ``cluster`` marks the cluster-level client counts (group suffix ``.cluster``)."""

    role: str
    group: str
    service: str
    cluster: bool = False


@dataclass(slots=True)
class Delta:
    """Counts of one origin and key over ``[start, end]`` (seconds, the autopilot's clock)."""

    origin: str
    key: Key
    start: float
    end: float
    calls: float = 0.0
    errors: float = 0.0
    slow: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound → count (cumulative)
    p99: float | None = None  # seconds, when the origin reports it directly


@dataclass(frozen=True, slots=True)
class Rates:
    """Per-second figures of one key over a window, summed over origins."""

    calls: float = 0.0
    errors: float = 0.0
    slow: float = 0.0
    p99: float | None = None
    origins: int = 0

    @property
    def error_ratio(self) -> float:
        return self.errors / self.calls if self.calls > 0 else 0.0


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The ``q`` quantile of a cumulative histogram (upper bound → count), interpolated
    linearly inside the bucket as Prometheus' ``histogram_quantile`` does; ``None`` when empty.
    A quantile in the ``+Inf`` bucket is the highest finite bound."""
    bounds = sorted(buckets)
    if not bounds:
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    counts = [buckets[b] for b in bounds]
    i = bisect.bisect_left(counts, rank)
    i = min(i, len(bounds) - 1)
    upper = bounds[i]
    if math.isinf(upper):
        finite = [b for b in bounds if not math.isinf(b)]
        return finite[-1] if finite else None
    lower = bounds[i - 1] if i > 0 else 0.0
    below = counts[i - 1] if i > 0 else 0.0
    inside = counts[i] - below
    if inside <= 0:
        return upper
    return lower + (upper - lower) * (rank - below) / inside


class TelemetryStore:
    """Deltas of the last ``keep`` seconds, by key and origin."""

    def __init__(self, keep: float = 60.0) -> None:
        self.keep = keep
        self._deltas: dict[Key, dict[str, deque[Delta]]] = {}

    def add(self, deltas: Iterable[Delta]) -> None:
        for delta in deltas:
            by_origin = self._deltas.setdefault(delta.key, {})
            queue = by_origin.setdefault(delta.origin, deque())
            queue.append(delta)

    def prune(self, now: float) -> None:
        horizon = now - self.keep
        for key in list(self._deltas):
            by_origin = self._deltas[key]
            for origin in list(by_origin):
                queue = by_origin[origin]
                while queue and queue[0].end < horizon:
                    queue.popleft()
                if not queue:
                    del by_origin[origin]
            if not by_origin:
                del self._deltas[key]

    def keys(self) -> list[Key]:
        return list(self._deltas)

    def rates(self, key: Key, now: float, window: float, max_age: float | None = None) -> Rates:
        """Rates of ``key`` per origin over the ``window`` seconds up to that origin's newest
        data, summed over the origins whose newest data is at most ``max_age`` (default:
        ``window``) seconds old. An origin that falls silent keeps its last rate until then:
        missing data is not read as "no calls" (the autopilot freezes instead). An origin
        whose intervals cover less than half the window is left out (not counted as calls):
        the rate of a short interval is mostly noise."""
        by_origin = self._deltas.get(key)
        if not by_origin:
            return Rates()
        oldest = now - (window if max_age is None else max_age)
        calls = errors = slow = 0.0
        merged: dict[float, float] = {}
        p99s: list[float] = []
        origins = 0
        for queue in by_origin.values():
            newest = next((d.end for d in reversed(queue) if d.end <= now), None)
            if newest is None or newest < oldest:
                continue
            since = newest - window
            inside: list[Delta] = []
            covered = 0.0
            for delta in reversed(queue):
                if delta.end <= since:
                    break
                if delta.end <= now:
                    inside.append(delta)
                    covered += max(delta.end - delta.start, 1e-3)
            if not inside or covered < window / 2:
                # a sample over less than half the window (an origin's first interval) is
                # no rate: a backlog served in a burst would read as a spike of demand
                continue
            c = e = s = 0.0
            for delta in inside:
                c += delta.calls
                e += delta.errors
                s += delta.slow
                for bound, count in delta.buckets.items():
                    merged[bound] = merged.get(bound, 0.0) + count
                if delta.p99 is not None and delta.calls > 0:
                    p99s.append(delta.p99)
            origins += 1
            calls += c / covered
            errors += e / covered
            slow += s / covered
        p99 = histogram_quantile(0.99, merged) if merged else None
        if p99s:
            p99 = max(p99s) if p99 is None else max(p99, *p99s)
        return Rates(calls, errors, slow, p99, origins)

    def demand(
        self, group: str, service: str, now: float, window: float, max_age: float | None = None
    ) -> Rates:
        """Calls sent by the client agents that asked for ``group`` (the cluster-level counts
        when the agents report them, else the plain client counts)."""
        cluster = self.rates(Key(CLIENT_ROLE, group, service, True), now, window, max_age)
        if cluster.origins:
            return cluster
        return self.rates(Key(CLIENT_ROLE, group, service), now, window, max_age)

    def senders(self, group: str, service: str) -> set[str]:
        """The origins (client agents) whose calls to ``group`` for ``service`` are kept."""
        found: set[str] = set()
        for cluster in (True, False):
            found.update(self._deltas.get(Key(CLIENT_ROLE, group, service, cluster), {}))
        return found

    def served(
        self, group: str, service: str, now: float, window: float, max_age: float | None = None
    ) -> Rates:
        """Calls the server agents of ``group`` served."""
        return self.rates(Key(SERVER_ROLE, group, service), now, window, max_age)
