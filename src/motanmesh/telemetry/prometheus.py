"""``/metrics``: the call metrics and runtime gauges in the Prometheus text format, written
by the ``prometheus-client`` library from the store at scrape time (no client-library
objects on the request path).

Names (cumulative; labels ``role, application, group, service, method``; ``group`` carries
the ``.cluster`` suffix for ``clusterMetrics``)::

    motan_calls_total
    motan_call_errors_total{...,kind="biz"|"other"}
    motan_slow_calls_total
    motan_call_duration_seconds (histogram)

This module imports ``prometheus_client``; it is imported on the first scrape only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from motanmesh.telemetry.runtime import RuntimeSample
from motanmesh.telemetry.store import DURATION_BUCKETS, CallStats

__all__ = ["CONTENT_TYPE", "LABELS", "exposition"]

#: the text format version 0.0.4 (what every Prometheus server reads); charset added by the server
CONTENT_TYPE: Final = "text/plain; version=0.0.4"
LABELS: Final = ["role", "application", "group", "service", "method"]
_LE: Final = [floatToGoString(b) for b in DURATION_BUCKETS] + ["+Inf"]  # type: ignore[no-untyped-call]


class _Collector(Collector):
    def __init__(
        self, series: Sequence[CallStats], samples: Sequence[RuntimeSample], application: str
    ) -> None:
        self.series = series
        self.samples = samples
        self.application = application

    def collect(self) -> Iterator[Metric]:
        calls = CounterMetricFamily("motan_calls", "Calls", labels=LABELS)
        errors = CounterMetricFamily(
            "motan_call_errors", "Calls that ended with an error", labels=[*LABELS, "kind"]
        )
        slow = CounterMetricFamily("motan_slow_calls", "Calls over 200 ms", labels=LABELS)
        duration = HistogramMetricFamily(
            "motan_call_duration_seconds", "Call duration", labels=LABELS
        )
        for s in self.series:
            k = s.key
            labels = [k.role, k.application, k.labelled_group, k.service, k.method]
            calls.add_metric(labels, s.calls)
            errors.add_metric([*labels, "biz"], s.biz_errors)
            errors.add_metric([*labels, "other"], s.other_errors)
            slow.add_metric(labels, s.slow)
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for le, n in zip(_LE, s.buckets, strict=True):
                cumulative += n
                buckets.append((le, cumulative))
            duration.add_metric(labels, buckets, s.duration_sum)
        yield calls
        yield errors
        yield slow
        yield duration
        yield from _runtime_families(self.samples, self.application)


def _runtime_families(samples: Iterable[RuntimeSample], application: str) -> Iterator[Metric]:
    families: dict[str, Metric] = {}
    for sample in samples:
        extra = dict(sample.labels)
        names = ["application", *extra]
        family = families.get(sample.name)
        if family is None:
            if sample.kind == "counter":
                family = CounterMetricFamily(
                    sample.name.removesuffix("_total"), sample.help, labels=names
                )
            else:
                family = GaugeMetricFamily(sample.name, sample.help, labels=names)
            families[sample.name] = family
        if isinstance(family, CounterMetricFamily | GaugeMetricFamily):
            family.add_metric([application, *extra.values()], sample.value)
    yield from families.values()


def exposition(
    series: Sequence[CallStats], samples: Sequence[RuntimeSample], application: str
) -> bytes:
    """The text exposition of ``series`` and ``samples``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(series, samples, application))
    return generate_latest(registry)
