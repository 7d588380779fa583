"""The ``trace`` filter in real agents (in this process, on loopback sockets) exporting over
OTLP/HTTP to a small collector run here with aiohttp, which decodes the protobuf requests;
its configuration errors; and an agent without tracing never importing OpenTelemetry."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from motanmesh.agent.agent import Agent
from motanmesh.agent.state import AgentError
from motanmesh.config.loader import load_config
from motanmesh.demo.service import DEMO_GROUP, DEMO_SERVICE
from motanmesh.filters.base import ROLE_CLIENT, Call, FilterContext
from motanmesh.filters.trace import TraceFilter
from motanmesh.sdk import MotanClient
from motanmesh.tracing.config import TracingConfig, TracingConfigError
from motanmesh.url import URL
from motanmesh.wire.frame import FLAG_RESPONSE, STATUS_NORMAL, Frame
from tests.inprocess import demo_service, export_port, start_agent

pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")


class Collector:
    """An OTLP/HTTP trace receiver: keeps every span it is sent, with its resource."""

    def __init__(self) -> None:
        self.spans: list[tuple[dict[str, Any], Any]] = []
        self.requests = 0
        self.content_types: set[str] = set()
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.content_types.add(request.content_type)
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource_spans in message.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append((resource, span))
        self.changed.set()
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def wait_spans(self, count: int, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.spans) < count:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    found = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield found, f"http://127.0.0.1:{port}/v1/traces"
    finally:
        await runner.cleanup()


def _section(tmp_path: Path, name: str, endpoint: str) -> dict[str, Any]:
    return {
        "application": name,
        "pidfile": str(tmp_path / f"{name}.pid"),
        "runtime_dir": str(tmp_path / f"{name}-runtime"),
        "snapshot_dir": str(tmp_path / f"{name}-snapshot"),
        "initClusterTimeout": 2000,
        "drainTime": 0,
        "globalFilter": "trace",
        "tracing.endpoint": endpoint,
        "tracing.batchDelay": 50,
        "tracing.headers": "x-tenant=mesh",
    }


async def test_spans_of_both_agents_reach_an_otlp_collector_as_one_trace(
    tmp_path: Path, collector: tuple[Collector, str]
) -> None:
    found, endpoint = collector
    server = await start_agent(
        tmp_path / "server.yaml",
        {
            "motan-agent": _section(tmp_path, "otlp-server", endpoint),
            "motan-registry": {"local": {"protocol": "embedded", "file": str(tmp_path / "r.db")}},
            "motan-service": {"demo": demo_service()},
        },
    )
    eport = export_port(server)
    client_agent = await start_agent(
        tmp_path / "client.yaml",
        {
            "motan-agent": _section(tmp_path, "otlp-client", endpoint),
            "motan-registry": {"d": {"protocol": "direct", "address": f"127.0.0.1:{eport}"}},
            "motan-refer": {"demo": {"path": DEMO_SERVICE, "group": DEMO_GROUP, "registry": "d"}},
        },
    )
    try:
        assert client_agent.client_address is not None
        host, port = client_agent.client_address
        async with MotanClient(f"{host}:{port}", application="otlp-app") as client:
            assert await client.call(DEMO_SERVICE, "hello", "otel", group=DEMO_GROUP) == (
                "hello otel"
            )
        await found.wait_spans(2)
    finally:
        await client_agent.stop(drain=False)
        await server.stop(drain=False)
    assert found.content_types == {"application/x-protobuf"}
    by_service = {resource["service.name"]: span for resource, span in found.spans}
    assert sorted(by_service) == ["otlp-client", "otlp-server"]
    client_span, server_span = by_service["otlp-client"], by_service["otlp-server"]
    assert client_span.trace_id == server_span.trace_id
    assert client_span.parent_span_id == b""
    assert server_span.parent_span_id == client_span.span_id
    assert client_span.kind == client_span.SPAN_KIND_CLIENT
    assert server_span.kind == server_span.SPAN_KIND_SERVER
    attrs = {a.key: a.value for a in server_span.attributes}
    assert attrs["rpc.system"].string_value == "motan"
    assert attrs["rpc.method"].string_value == "hello"
    assert attrs["motan.application"].string_value == "otlp-app"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tracing.exporter": "zipkin"}, "tracing.exporter: 'zipkin' is not one of"),
        ({"tracing.sampleRatio": "1.5"}, "tracing.sampleRatio: '1.5' is not a number from 0"),
        ({"tracing.protocol": "thrift"}, "tracing.protocol"),
        ({"tracing.batchDelay": "soon"}, "tracing.batchDelay: 'soon' is not a whole number"),
        ({"tracing.headers": "novalue"}, "tracing.headers"),
        ({"tracing.sampleratio": "1"}, "tracing.sampleratio: unknown key"),
    ],
)
def test_bad_tracing_keys_are_named(params: dict[str, str], message: str) -> None:
    with pytest.raises(TracingConfigError, match=re.escape(message)):
        TracingConfig.from_params(params)


def test_defaults() -> None:
    config = TracingConfig.from_params({}, "my-app")
    assert (config.exporter, config.service_name, config.sample_ratio) == ("none", "my-app", 1.0)
    assert not config.configured
    otlp = TracingConfig.from_params({"tracing.endpoint": "http://127.0.0.1:1/v1/traces"})
    assert otlp.exporter == "otlp"
    grpc = {"tracing.exporter": "otlp", "tracing.protocol": "grpc"}
    try:
        assert TracingConfig.from_params(grpc).endpoint == "http://127.0.0.1:4317"
    except TracingConfigError as e:  # the grpc exporter is not a dependency
        assert "opentelemetry-exporter-otlp-proto-grpc" in str(e)


async def test_a_bad_tracing_key_stops_the_agent_at_start(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    section = _section(tmp_path, "bad", "")
    section["tracing.exporter"] = "jaeger"
    path.write_text(yaml.safe_dump({"motan-agent": section}))
    with pytest.raises(AgentError, match=r"tracing\.exporter: 'jaeger'"):
        Agent(load_config(path))


@pytest.mark.parametrize("traced", [False, True])
def test_an_agent_without_tracing_never_imports_opentelemetry(tmp_path: Path, traced: bool) -> None:
    """A started agent with a refer and a service, and no trace filter: no module of
    OpenTelemetry is loaded (a child process, so this test's own imports do not count).
    With the filter, it is."""
    script = textwrap.dedent(
        f"""
        import asyncio, dataclasses, sys
        from motanmesh.agent.agent import Agent
        from motanmesh.config.loader import load_config

        async def main():
            config = load_config({str(tmp_path / "agent.yaml")!r})
            section = dataclasses.replace(config.agent, port=0, eport=0, mport=0)
            services = {{k: [u.copy(port=0) for u in v] for k, v in config.services.items()}}
            agent = Agent(dataclasses.replace(config, agent=section, services=services))
            await agent.start()
            await agent.stop(drain=False)
            loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
            print("loaded:", loaded)

        asyncio.run(main())
        """
    )
    section = _section(tmp_path, "plain", "")
    del section["tracing.endpoint"], section["tracing.headers"]
    if not traced:
        del section["globalFilter"], section["tracing.batchDelay"]
    doc = {
        "motan-agent": section,
        "motan-registry": {"local": {"protocol": "embedded", "file": str(tmp_path / "r.db")}},
        "motan-service": {"demo": demo_service()},
        "motan-refer": {"demo": {"path": DEMO_SERVICE, "group": DEMO_GROUP, "registry": "local"}},
    }
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(doc))
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert ("loaded: []" not in out.stdout) is traced, out.stdout + out.stderr
    assert "loaded: [" in out.stdout


def _filter(tmp_path: Path, ratio: str) -> tuple[TraceFilter, FilterContext, Path]:
    spans = tmp_path / f"spans-{ratio}.jsonl"
    params = {"tracing.exporter": "file", "tracing.file": str(spans), "tracing.sampleRatio": ratio}
    context = FilterContext(application="unit", params=params)
    url = URL("motan2", "127.0.0.1", 0, DEMO_SERVICE, DEMO_GROUP, {})
    return TraceFilter(url, context), context, spans


def _run(f: TraceFilter, metadata: dict[str, str]) -> Call:
    request = Frame(0, STATUS_NORMAL, 6, 1, {"M_p": DEMO_SERVICE, "M_m": "hello", **metadata}, b"")
    answer = Frame(FLAG_RESPONSE, STATUS_NORMAL, 6, 1, {}, b"")
    call = Call(request, f.url, ROLE_CLIENT, "127.0.0.1:9982", {}, lambda r, e: None)
    seen: list[Call] = []

    def proceed(c: Call) -> None:
        seen.append(c)
        c.complete(answer)

    f.invoke(call, proceed)
    assert seen == [call] and call.done()
    return call


def _exported(context: FilterContext, spans: Path) -> list[dict[str, Any]]:
    context.services["tracing"].flush()
    if not spans.exists():
        return []
    return [json.loads(line) for line in spans.read_text().splitlines()]


async def test_unsampled_calls_skip_the_sdk_but_carry_a_context(tmp_path: Path) -> None:
    never, context, spans = _filter(tmp_path, "0")
    call = _run(never, {})
    version, trace_id, span_id, flags = call.changes["traceparent"].split("-")
    assert (version, flags, len(trace_id), len(span_id)) == ("00", "00", 32, 16)
    assert _exported(context, spans) == []
    await context.close()

    always, context, spans = _filter(tmp_path, "1")
    unsampled = f"00-{'ab' * 16}-{'cd' * 8}-00"
    assert _run(always, {"traceparent": unsampled}).changes == {}  # passed on as it came
    sampled = _run(always, {"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})
    assert sampled.changes["traceparent"].startswith(f"00-{'ab' * 16}-")
    # an unreadable context is not trusted: a new sampled trace starts
    fresh = _run(always, {"traceparent": "00-nothex-00"})
    assert not fresh.changes["traceparent"].startswith("00-nothex")
    exported = _exported(context, spans)
    assert [s["parentSpanId"] for s in exported] == ["cd" * 8, ""]
    await context.close()
