"""The ``tracing.*`` keys of ``motan-agent``, read and checked without importing
OpenTelemetry.

=========================  ================================================================
key                        meaning (default)
=========================  ================================================================
``tracing.exporter``       ``otlp``, ``console``, ``file`` or ``none`` (``otlp`` when
                           ``tracing.endpoint`` is set, else ``none``: context is still
                           propagated, nothing is exported)
``tracing.endpoint``       OTLP collector (``http://127.0.0.1:4318/v1/traces``; for
                           ``grpc`` ``http://127.0.0.1:4317``)
``tracing.protocol``       ``http/protobuf`` or ``grpc`` (``http/protobuf``)
``tracing.headers``        OTLP request headers, ``k=v,k2=v2`` (none)
``tracing.timeout``        OTLP export timeout in ms (10000)
``tracing.file``           JSON-lines file of the ``file`` exporter (``./traces.jsonl``)
``tracing.sampleRatio``    share of new traces recorded, 0..1 (1); a caller's decision
                           (the ``traceparent`` sampled flag) is always followed
``tracing.serviceName``    ``service.name`` of the spans (the agent's application)
``tracing.batchDelay``     ms between exports of the batch processor (1000)
``tracing.maxQueue``       spans kept for export; more are dropped, never waited for (2048)
=========================  ================================================================
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "EXPORTERS",
    "OTLP_PACKAGES",
    "PREFIX",
    "TRACING_SERVICE",
    "TracingConfig",
    "TracingConfigError",
]

#: the name of the shared tracer in a ``FilterContext``
TRACING_SERVICE: Final = "tracing"
PREFIX: Final = "tracing."
EXPORTERS: Final = ("otlp", "console", "file", "none")
PROTOCOLS: Final = ("http/protobuf", "grpc")
DEFAULT_HTTP_ENDPOINT: Final = "http://127.0.0.1:4318/v1/traces"
DEFAULT_GRPC_ENDPOINT: Final = "http://127.0.0.1:4317"
#: protocol → (module of the exporter, package that provides it)
OTLP_PACKAGES: Final = {
    "http/protobuf": (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry-exporter-otlp-proto-http",
    ),
    "grpc": (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "opentelemetry-exporter-otlp-proto-grpc",
    ),
}
_KEYS: Final = frozenset(
    {
        "exporter",
        "endpoint",
        "protocol",
        "headers",
        "timeout",
        "file",
        "sampleRatio",
        "serviceName",
        "batchDelay",
        "maxQueue",
    }
)


class TracingConfigError(ValueError):
    """A ``tracing.*`` key has a value that cannot be used."""


@dataclass(frozen=True)
class TracingConfig:
    exporter: str = "none"
    endpoint: str = DEFAULT_HTTP_ENDPOINT
    protocol: str = "http/protobuf"
    headers: dict[str, str] = field(default_factory=dict)
    timeout_ms: int = 10_000
    file: str = "./traces.jsonl"
    sample_ratio: float = 1.0
    service_name: str = ""
    batch_delay_ms: int = 1000
    max_queue: int = 2048

    @property
    def configured(self) -> bool:
        return self.exporter != "none"

    @classmethod
    def from_params(cls, params: Mapping[str, str], application: str = "") -> TracingConfig:
        """Read the ``tracing.*`` keys of ``params`` (the ``motan-agent`` keys as strings).
        Raises :class:`TracingConfigError` naming the key."""
        values = {k[len(PREFIX) :]: v.strip() for k, v in params.items() if k.startswith(PREFIX)}
        unknown = sorted(set(values) - _KEYS)
        if unknown:
            raise TracingConfigError(
                f"motan-agent.{PREFIX}{unknown[0]}: unknown key "
                f"(known: {', '.join(PREFIX + k for k in sorted(_KEYS))})"
            )
        protocol = values.get("protocol") or "http/protobuf"
        if protocol not in PROTOCOLS:
            raise _bad("protocol", protocol, f"one of {', '.join(PROTOCOLS)}")
        endpoint = values.get("endpoint", "")
        exporter = values.get("exporter") or ("otlp" if endpoint else "none")
        if exporter not in EXPORTERS:
            raise _bad("exporter", exporter, f"one of {', '.join(EXPORTERS)}")
        if not endpoint:
            endpoint = DEFAULT_GRPC_ENDPOINT if protocol == "grpc" else DEFAULT_HTTP_ENDPOINT
        if exporter == "otlp":
            module, package = OTLP_PACKAGES[protocol]
            if not _importable(module):
                raise TracingConfigError(
                    f"motan-agent.{PREFIX}exporter: otlp over {protocol} needs the package "
                    f"{package} (pip install 'motanmesh[otlp]')"
                )
        return cls(
            exporter=exporter,
            endpoint=endpoint,
            protocol=protocol,
            headers=_headers(values.get("headers", "")),
            timeout_ms=_int(values, "timeout", 10_000, 1),
            file=values.get("file") or "./traces.jsonl",
            sample_ratio=_ratio(values.get("sampleRatio", "")),
            service_name=values.get("serviceName") or application or "motanmesh",
            batch_delay_ms=_int(values, "batchDelay", 1000, 1),
            max_queue=_int(values, "maxQueue", 2048, 1),
        )


def _bad(key: str, value: str, expected: str) -> TracingConfigError:
    return TracingConfigError(f"motan-agent.{PREFIX}{key}: {value!r} is not {expected}")


def _int(values: Mapping[str, str], key: str, default: int, minimum: int) -> int:
    text = values.get(key, "")
    if not text:
        return default
    try:
        number = int(text)
    except ValueError:
        raise _bad(key, text, "a whole number") from None
    if number < minimum:
        raise _bad(key, text, f"at least {minimum}")
    return number


def _ratio(text: str) -> float:
    if not text:
        return 1.0
    try:
        ratio = float(text)
    except ValueError:
        raise _bad("sampleRatio", text, "a number from 0 to 1") from None
    if not 0.0 <= ratio <= 1.0:
        raise _bad("sampleRatio", text, "a number from 0 to 1")
    return ratio


def _headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise _bad("headers", text, "a list of name=value")
        headers[name.strip()] = value.strip()
    return headers


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
