"""Telemetry: what the agent measures and where it sends it.

* :mod:`~motanmesh.telemetry.store`: call metrics per (role, application, group, service,
  method), cumulative and per period;
* :mod:`~motanmesh.telemetry.runtime`: runtime gauges (memory, CPU, connections...);
* :mod:`~motanmesh.telemetry.graphite`: the Go agent's metric datagrams and Graphite
  plaintext;
* :mod:`~motanmesh.telemetry.prometheus`: the ``/metrics`` text exposition (imported on the
  first scrape);
* :mod:`~motanmesh.telemetry.reporter`: :class:`Telemetry`, one agent's reporter and readers.

The ``metrics`` and ``clusterMetrics`` filters (:mod:`motanmesh.filters.metrics`) fill the
store. See ``docs/telemetry.md``.
"""

from motanmesh.telemetry.reporter import Telemetry, TelemetryConfigError
from motanmesh.telemetry.runtime import RuntimeSample
from motanmesh.telemetry.store import METRICS_SERVICE, CallStats, MetricStore

__all__ = [
    "METRICS_SERVICE",
    "CallStats",
    "MetricStore",
    "RuntimeSample",
    "Telemetry",
    "TelemetryConfigError",
]
