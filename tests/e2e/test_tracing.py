"""Tracing through real processes: app (this test, the SDK) → client agent → server agent →
a service process that answers with the trace context it received. Both agents run the
``trace`` filter and export their spans to JSON-lines files; the spans must form one trace."""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from motanmesh.sdk.client import MotanClient
from motanmesh.sdk.errors import MotanBizError
from tests.e2e.harness import (
    DATA_DIR,
    AgentProcess,
    Mesh,
    Process,
    agent_section,
    child_env,
    embedded_registry,
    free_port,
    refer,
    set_available,
    wait_endpoints,
    wait_for,
)

SERVICE = "com.weibo.motanmesh.e2e.TraceService"
GROUP = "motanmesh-trace"
READY = "trace-service listening on"


@dataclass
class Traced:
    client_agent: AgentProcess
    server_agent: AgentProcess
    export: str
    client_spans: Path
    server_spans: Path


def tracing_keys(spans: Path) -> dict[str, Any]:
    return {
        "globalFilter": "trace",
        "tracing.exporter": "file",
        "tracing.file": str(spans),
        "tracing.batchDelay": 50,
    }


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    mesh = Mesh(tmp_path_factory.mktemp("tracing"))
    try:
        port = free_port()
        service = Process(
            "trace-service",
            [sys.executable, str(DATA_DIR / "trace_service.py"), str(port)],
            mesh.workdir,
            child_env(),
            mesh.log("trace-service"),
        )
        mesh.procs.append(service)
        service.wait_output(READY)
        export = f"127.0.0.1:{free_port()}"
        server_spans = mesh.workdir / "server-spans.jsonl"
        server = mesh.agent(
            "server-agent",
            {
                "motan-agent": agent_section(
                    "server", drainTime=1, application="trace-server", **tracing_keys(server_spans)
                ),
                "motan-registry": {"local": embedded_registry(mesh.registry)},
                "motan-service": {
                    "trace": {
                        "registry": "local",
                        "path": SERVICE,
                        "group": GROUP,
                        "export": f"motan2:{export.rpartition(':')[2]}",
                        "proxy": f"motan2:{port}",
                    }
                },
            },
        )
        set_available(server)
        client_spans = mesh.workdir / "client-spans.jsonl"
        client = mesh.agent(
            "client-agent",
            {
                "motan-agent": agent_section(
                    "client", application="trace-client", **tracing_keys(client_spans)
                ),
                "motan-registry": {"local": embedded_registry(mesh.registry)},
                "motan-refer": {"trace": refer(SERVICE, GROUP, requestTimeout=3000)},
            },
        )
        wait_endpoints(client, "trace", {export})
        yield Traced(client, server, export, client_spans, server_spans)
        mesh.check_alive()
    finally:
        mesh.close()


def app(traced: Traced) -> MotanClient:
    return MotanClient(traced.client_agent.address, application="trace-app", group=GROUP)


def spans_of(path: Path, trace_id: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    spans = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [s for s in spans if s["traceId"] == trace_id]


def one_span(path: Path, trace_id: str) -> dict[str, Any]:
    wait_for(lambda: bool(spans_of(path, trace_id)), f"a span of trace {trace_id} in {path.name}")
    (span,) = spans_of(path, trace_id)
    return span


def traceparent(trace_id: str, span_id: str, sampled: bool = True) -> str:
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def parse_traceparent(value: str) -> tuple[str, str, str]:
    version, trace_id, span_id, flags = value.split("-")
    assert version == "00"
    return trace_id, span_id, flags


async def test_one_trace_from_the_app_through_both_agents_to_the_service(traced: Traced) -> None:
    trace_id, app_span = secrets.token_hex(16), secrets.token_hex(8)
    sent = {"traceparent": traceparent(trace_id, app_span), "tracestate": "app=1"}
    async with app(traced) as client:
        got = await client.call(SERVICE, "context", attachments=sent)
    client_span = one_span(traced.client_spans, trace_id)
    server_span = one_span(traced.server_spans, trace_id)

    # one trace: app span → client agent span → server agent span → the service
    assert client_span["parentSpanId"] == app_span
    assert server_span["parentSpanId"] == client_span["spanId"]
    assert parse_traceparent(got["traceparent"]) == (trace_id, server_span["spanId"], "01")
    assert got["tracestate"] == "app=1"

    assert client_span["kind"] == "CLIENT"
    assert server_span["kind"] == "SERVER"
    for span in (client_span, server_span):
        attrs = span["attributes"]
        assert span["name"] == f"{SERVICE}/context"
        assert attrs["rpc.system"] == "motan"
        assert attrs["rpc.service"] == SERVICE
        assert attrs["rpc.method"] == "context"
        assert attrs["motan.group"] == GROUP
        assert attrs["motan.application"] == "trace-app"
        assert span["status"]["code"] == "UNSET"
        assert span["startTimeUnixNano"] <= span["endTimeUnixNano"]
    host, port = traced.export.rsplit(":", 1)
    assert client_span["attributes"]["server.address"] == host
    assert client_span["attributes"]["server.port"] == int(port)
    assert server_span["attributes"]["client.address"] == "127.0.0.1"
    assert client_span["resource"]["service.name"] == "trace-client"
    assert server_span["resource"]["service.name"] == "trace-server"
    # the server span lies within the client span
    assert client_span["startTimeUnixNano"] <= server_span["startTimeUnixNano"]
    assert server_span["endTimeUnixNano"] <= client_span["endTimeUnixNano"]


async def test_a_call_without_context_starts_a_trace_in_the_client_agent(traced: Traced) -> None:
    async with app(traced) as client:
        got = await client.call(SERVICE, "context")
    trace_id, span_id, flags = parse_traceparent(got["traceparent"])
    assert int(flags, 16) & 1  # sampled (newer SDKs also set the "random trace id" bit)
    client_span = one_span(traced.client_spans, trace_id)
    server_span = one_span(traced.server_spans, trace_id)
    assert client_span["parentSpanId"] == ""
    assert server_span["parentSpanId"] == client_span["spanId"]
    assert span_id == server_span["spanId"]


async def test_errors_mark_both_spans(traced: Traced) -> None:
    trace_id = secrets.token_hex(16)
    sent = {"traceparent": traceparent(trace_id, secrets.token_hex(8))}
    async with app(traced) as client:
        with pytest.raises(MotanBizError, match="no such thing"):
            await client.call(SERVICE, "fail", "no such thing", attachments=sent)
    for path in (traced.client_spans, traced.server_spans):
        span = one_span(path, trace_id)
        assert span["status"] == {"code": "ERROR", "description": "no such thing"}
        assert span["attributes"]["error.type"] == "biz"
        assert span["attributes"]["motan.error_code"] == 409


async def test_an_unsampled_caller_is_followed_and_nothing_is_exported(traced: Traced) -> None:
    unsampled, sampled = secrets.token_hex(16), secrets.token_hex(16)
    async with app(traced) as client:
        got = await client.call(
            SERVICE,
            "context",
            attachments={"traceparent": traceparent(unsampled, secrets.token_hex(8), False)},
        )
        # a sampled call after it: once its spans are out, the unsampled one's would be too
        await client.call(
            SERVICE,
            "context",
            attachments={"traceparent": traceparent(sampled, secrets.token_hex(8))},
        )
    trace_id, _span, flags = parse_traceparent(got["traceparent"])
    assert (trace_id, flags) == (unsampled, "00")
    one_span(traced.client_spans, sampled)
    one_span(traced.server_spans, sampled)
    assert spans_of(traced.client_spans, unsampled) == []
    assert spans_of(traced.server_spans, unsampled) == []


def test_the_filter_shows_in_runtime_info(traced: Traced) -> None:
    info = traced.client_agent.management_json("/runtime/info")
    text = json.dumps(info)
    assert '"name": "trace"' in text
    assert '"exporter": "file"' in text
