"""Distributed tracing with OpenTelemetry: W3C trace context carried in Motan2 metadata,
client and server spans, OTLP / console / file export.

:mod:`motanmesh.tracing.config` reads the ``tracing.*`` keys of ``motan-agent`` without
importing OpenTelemetry; :mod:`motanmesh.tracing.otel` builds the tracer and the exporters and
is imported only when a ``trace`` filter is built, so an agent without tracing pays nothing
for it. See ``docs/tracing.md``.
"""

from motanmesh.tracing.config import TRACING_SERVICE, TracingConfig, TracingConfigError

__all__ = ["TRACING_SERVICE", "TracingConfig", "TracingConfigError"]
