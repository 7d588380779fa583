"""The agent's OpenTelemetry tracer: one ``TracerProvider`` per agent (never the global one),
a parent-based sampler, a batch span processor in front of the configured exporter, and the
W3C trace-context propagator. The ``trace`` filter decides itself, before the SDK is involved,
which calls are not sampled (an unsampled caller, or a new trace outside ``sampleRatio``):
those cost a few string operations, not an SDK span.

Imported only when a ``trace`` filter is built. Exports happen on the batch processor's own
thread; a full queue drops spans, so the event loop never waits for a collector.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import random
import threading
from collections.abc import Sequence
from typing import IO, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from motanmesh import __version__
from motanmesh.tracing.config import OTLP_PACKAGES, TracingConfig

__all__ = ["JsonLinesSpanExporter", "Tracing", "span_record"]


class Tracing:
    """What every ``trace`` filter of one agent shares (``FilterContext`` service
    ``tracing``): the tracer, the propagator, and the export pipeline."""

    def __init__(self, config: TracingConfig) -> None:
        self.config = config
        resource = Resource.create(
            {"service.name": config.service_name, "telemetry.sdk.name": "opentelemetry"}
        )
        # the ratio is applied by the filter (Tracing.sample_new_trace); what reaches the SDK
        # is sampled, or has an unsampled parent (dropped, as ParentBased does)
        sampler = ParentBased(ALWAYS_ON)
        self.provider = TracerProvider(resource=resource, sampler=sampler)
        exporter = make_exporter(config)
        if exporter is not None:
            self.provider.add_span_processor(
                BatchSpanProcessor(
                    exporter,
                    max_queue_size=config.max_queue,
                    schedule_delay_millis=config.batch_delay_ms,
                    max_export_batch_size=min(512, config.max_queue),
                    export_timeout_millis=config.timeout_ms,
                )
            )
        self.tracer: Tracer = self.provider.get_tracer("motanmesh", __version__)
        self.propagator = TraceContextTextMapPropagator()

    def sample_new_trace(self) -> bool:
        """Whether a call that starts a trace is recorded (``tracing.sampleRatio``)."""
        ratio = self.config.sample_ratio
        return ratio >= 1.0 or (ratio > 0.0 and random.random() < ratio)

    def info(self) -> dict[str, Any]:
        c = self.config
        where = c.endpoint if c.exporter == "otlp" else c.file if c.exporter == "file" else ""
        return {"exporter": c.exporter, "to": where, "sampleRatio": c.sample_ratio}

    def flush(self, timeout_ms: int = 5000) -> bool:
        return bool(self.provider.force_flush(timeout_ms))

    async def close(self) -> None:
        """Export what is queued and stop (on a thread: an exporter may block)."""
        await asyncio.to_thread(self.provider.shutdown)


def make_exporter(config: TracingConfig) -> SpanExporter | None:
    if config.exporter == "console":
        return ConsoleSpanExporter()
    if config.exporter == "file":
        return JsonLinesSpanExporter(config.file)
    if config.exporter == "otlp":
        module = importlib.import_module(OTLP_PACKAGES[config.protocol][0])
        kwargs: dict[str, Any] = {
            "endpoint": config.endpoint,
            "headers": config.headers or None,
            "timeout": config.timeout_ms / 1000,
        }
        if config.protocol == "grpc":
            kwargs["insecure"] = config.endpoint.startswith("http://")
        exporter: SpanExporter = module.OTLPSpanExporter(**kwargs)
        return exporter
    return None


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """One finished span as a flat JSON object (ids in lowercase hex, as in ``traceparent``)."""
    ctx = span.get_span_context()
    parent = span.parent
    status = span.status
    return {
        "traceId": f"{ctx.trace_id:032x}" if ctx else "",
        "spanId": f"{ctx.span_id:016x}" if ctx else "",
        "parentSpanId": f"{parent.span_id:016x}" if parent else "",
        "name": span.name,
        "kind": span.kind.name,
        "startTimeUnixNano": span.start_time,
        "endTimeUnixNano": span.end_time,
        "attributes": dict(span.attributes or {}),
        "status": {"code": status.status_code.name, "description": status.description or ""},
        "resource": dict(span.resource.attributes),
    }


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span to a file as one JSON object per line (for debugging and
    for tests; see :func:`span_record`)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: IO[str] | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(s), default=str) + "\n" for s in spans)
        with self._lock:
            try:
                if self._file is None:
                    self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
                self._file.write(lines)
                self._file.flush()
            except OSError:
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
