"""The ``metrics`` and ``clusterMetrics`` filters in real agents (a client agent and a server
agent on loopback sockets, the demo service behind them): ``/metrics``, ``/status`` and the
datagrams count exactly the calls made."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from motanmesh.agent.agent import Agent
from motanmesh.agent.state import AgentError
from motanmesh.demo.service import DEMO_GROUP, DEMO_SERVICE
from motanmesh.sdk import MotanClient
from motanmesh.sdk.errors import MotanBizError, MotanRemoteError
from motanmesh.telemetry.store import ELAPSE_SUFFIXES
from tests.inprocess import agent_section, demo_service, export_port, start_agent

CLIENT = "motan-client-agent"
SERVER = "motan-server-agent"


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture
async def mesh(
    tmp_path: Path, udp: socket.socket
) -> AsyncIterator[tuple[Agent, Agent, MotanClient]]:
    """(server agent with ``metrics`` on its service and datagrams to ``udp``, client
    agent with ``defaultFilter: metrics,clusterMetrics``, a client of the client agent)."""
    metrics = {
        "period": 3600,  # the tests end periods themselves
        "graphite": [{"name": "test", "host": "127.0.0.1", "port": udp.getsockname()[1]}],
    }
    server_doc = {
        "motan-agent": agent_section(tmp_path, "server-app"),
        "motan-registry": {"local": {"protocol": "embedded", "file": str(tmp_path / "s.db")}},
        "motan-service": {"demo": demo_service(filter="metrics")},
        "metrics": metrics,
    }
    server = await start_agent(tmp_path / "server.yaml", server_doc)
    eport = export_port(server)
    client_doc = {
        "motan-agent": agent_section(
            tmp_path, "client-app", defaultFilter="metrics,clusterMetrics"
        ),
        "motan-registry": {"direct": {"protocol": "direct", "address": f"127.0.0.1:{eport}"}},
        "motan-refer": {"demo": {"path": DEMO_SERVICE, "group": DEMO_GROUP, "registry": "direct"}},
    }
    client_agent = await start_agent(tmp_path / "client.yaml", client_doc)
    assert client_agent.client_address is not None
    host, port = client_agent.client_address
    async with MotanClient(f"{host}:{port}", application="client-app") as client:
        yield server, client_agent, client
    await client_agent.stop(drain=False)
    await server.stop(drain=False)


async def _scrape(agent: Agent) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert agent.management_address is not None
    host, port = agent.management_address
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://{host}:{port}/metrics") as r,
    ):
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _labels(role: str, app: str, group: str, method: str, **more: str) -> tuple[Any, ...]:
    labels = {
        "role": role,
        "application": app,
        "group": group,
        "service": DEMO_SERVICE,
        "method": method,
        **more,
    }
    return tuple(sorted(labels.items()))


async def _calls(client: MotanClient) -> None:
    for _ in range(3):
        assert await client.call(DEMO_SERVICE, "hello", "m", group=DEMO_GROUP) == "hello m"
    with pytest.raises(MotanBizError):
        await client.call(DEMO_SERVICE, "fail", "bad", group=DEMO_GROUP)
    with pytest.raises(MotanRemoteError):
        await client.call(DEMO_SERVICE, "noSuchMethod", group=DEMO_GROUP)
    assert await client.call(DEMO_SERVICE, "sleep", 250, group=DEMO_GROUP) == 250


async def test_metrics_count_every_call_on_both_sides(
    mesh: tuple[Agent, Agent, MotanClient],
) -> None:
    server, client_agent, client = mesh
    await _calls(client)
    await asyncio.sleep(0.05)  # the server side completes after writing the answer
    for agent, role, app, groups in (
        (client_agent, CLIENT, "client-app", (DEMO_GROUP, f"{DEMO_GROUP}.cluster")),
        (server, SERVER, "server-app", (DEMO_GROUP,)),
    ):
        got = await _scrape(agent)
        for group in groups:
            for method, calls, biz, other, slow in (
                ("hello", 3, 0, 0, 0),
                ("fail", 1, 1, 0, 0),
                ("noSuchMethod", 1, 0, 1, 0),
                ("sleep", 1, 0, 0, 1),
            ):
                labels = _labels(role, app, group, method)
                where = f"{agent.application} {group} {method}"
                assert got[("motan_calls_total", labels)] == calls, where
                assert got[("motan_slow_calls_total", labels)] == slow, where
                assert got[("motan_call_duration_seconds_count", labels)] == calls, where
                biz_labels = _labels(role, app, group, method, kind="biz")
                other_labels = _labels(role, app, group, method, kind="other")
                assert got[("motan_call_errors_total", biz_labels)] == biz, where
                assert got[("motan_call_errors_total", other_labels)] == other, where
            sleep = _labels(role, app, group, "sleep")
            bucket = "motan_call_duration_seconds_bucket"
            assert got[(bucket, _labels(role, app, group, "sleep", le="0.2"))] == 0
            assert got[(bucket, _labels(role, app, group, "sleep", le="+Inf"))] == 1
            hello = [
                got[(bucket, _labels(role, app, group, "hello", le=le))]
                for le in ("0.001", "0.01", "0.1", "1.0", "10.0", "+Inf")
            ]
            assert hello == sorted(hello) and hello[-1] == 3
            assert got[("motan_call_duration_seconds_sum", sleep)] >= 0.25
        # only the configured series: no cluster series on the server side
        roles = {dict(k[1]).get("role") for k in got if k[0] == "motan_calls_total"}
        assert roles == {role}
        app_label = (("application", app),)
        assert got[("motan_agent_resident_memory_bytes", app_label)] > 1 << 20
        assert got[("motan_server_connections", app_label)] >= 1
        assert got[("motan_not_found_provider_total", app_label)] == 0


async def test_status_and_datagrams_report_the_last_period(
    mesh: tuple[Agent, Agent, MotanClient], udp: socket.socket
) -> None:
    server, _client_agent, client = mesh
    assert server.management_address is not None
    host, port = server.management_address
    await _calls(client)
    await asyncio.sleep(0.05)
    await server.telemetry.report()
    async with aiohttp.ClientSession() as http, http.get(f"http://{host}:{port}/status") as r:
        doc = await r.json(content_type=None)
    body = doc["body"]
    assert body["service_period_call_count"] == 6
    (service,) = body["services"]
    assert (service["group"], service["name"]) == (DEMO_GROUP, DEMO_SERVICE)
    methods = {m["name"]: m["period_call_count"] for m in service["methods"]}
    assert methods == {"hello": 3, "fail": 1, "noSuchMethod": 1, "sleep": 1}

    datagram = (await asyncio.to_thread(udp.recv, 65536)).decode()
    lines = datagram.splitlines()
    prefix = (
        "motan-server-agent.server-app.motan-demo-rpc.byhost.127_0_0_1."
        "com_weibo_motan_demo_service_MotanDemoService"
    )
    for line in (
        f"{prefix}.hello.total_count:3|c",
        f"{prefix}.fail.total_count:1|c",
        f"{prefix}.fail.biz_error_count:1|c",
        f"{prefix}.noSuchMethod.other_error_count:1|c",
        f"{prefix}.sleep.slow_count:1|c",
    ):
        assert line in lines
    # the latency buckets hold every call (which ones depends on the machine's speed)
    for method, calls, buckets in (
        ("hello", 3, ELAPSE_SUFFIXES),
        ("sleep", 1, (".Less500ms", ".More500ms")),
    ):
        counted = 0
        for line in lines:
            name, _, value = line.partition(":")
            if name.removeprefix(f"{prefix}.{method}") in buckets:
                counted += int(value.removesuffix("|c"))
        assert counted == calls, method
    (p99,) = [line for line in lines if line.startswith(f"{prefix}.sleep.p99:")]
    assert p99.endswith("|kv")
    assert float(p99.split(":")[1].removesuffix("|kv")) >= 250

    # the next period starts empty
    await server.telemetry.report()
    async with aiohttp.ClientSession() as http, http.get(f"http://{host}:{port}/status") as r:
        doc = await r.json(content_type=None)
    assert doc["body"]["service_period_call_count"] == 0
    assert doc["body"]["services"][0]["methods"] == []


async def test_metrics_req_app_also_counts_under_the_caller(
    mesh: tuple[Agent, Agent, MotanClient],
) -> None:
    _server, client_agent, _client = mesh
    assert client_agent.client_address is not None
    host, port = client_agent.client_address
    assert client_agent.switchers.get("metricsReqApp") is False
    async with MotanClient(f"{host}:{port}", application="other-app") as other:
        await other.call(DEMO_SERVICE, "hello", "a", group=DEMO_GROUP)
        client_agent.switchers.set("metricsReqApp", True)
        await other.call(DEMO_SERVICE, "hello", "b", group=DEMO_GROUP)
    got = await _scrape(client_agent)
    for group in (DEMO_GROUP, f"{DEMO_GROUP}.cluster"):
        assert got[("motan_calls_total", _labels(CLIENT, "client-app", group, "hello"))] == 2
        assert got[("motan_calls_total", _labels(CLIENT, "other-app", group, "hello"))] == 1


async def test_a_bad_metrics_section_stops_the_agent_with_a_clear_error(tmp_path: Path) -> None:
    doc = {
        "motan-agent": agent_section(tmp_path, "bad"),
        "metrics": {"graphite": [{"name": "x", "host": "127.0.0.1", "port": "none"}]},
    }
    with pytest.raises(AgentError, match=r"metrics.graphite\[0\].port"):
        await start_agent(tmp_path / "bad.yaml", doc)


async def test_runtime_gauges_in_metrics_and_datagrams(tmp_path: Path, udp: socket.socket) -> None:
    doc = {
        "motan-agent": agent_section(
            tmp_path,
            "gauge-app",
            defaultFilter="accessLog,circuitBreaker",
            log_dir=str(tmp_path / "logs"),
        ),
        "motan-registry": {"local": {"protocol": "embedded", "file": str(tmp_path / "g.db")}},
        "motan-service": {"demo": demo_service()},
        "metrics": {
            "period": 3600,
            "sampleInterval": 30,
            "graphite": [{"name": "t", "host": "127.0.0.1", "port": udp.getsockname()[1]}],
        },
    }
    agent = await start_agent(tmp_path / "gauge.yaml", doc)
    try:
        host, port = next(iter(agent.export_addresses.values()))
        async with MotanClient(f"{host}:{port}", application="x") as client:
            with pytest.raises(MotanRemoteError):
                await client.call("com.example.NoSuchService", "m", group=DEMO_GROUP)
            assert await client.call(DEMO_SERVICE, "hello", "g", group=DEMO_GROUP) == "hello g"
            got = await _scrape(agent)
            app = (("application", "gauge-app"),)
            assert got[("motan_not_found_provider_total", app)] == 1
            connections = sum(s.connection_count for s in agent.export_servers.values())
            assert connections >= 1
            assert got[("motan_server_connections", app)] == connections
            assert got[("motan_accesslog_discarded_total", app)] == 0
            assert got[("motan_agent_cpu_seconds_total", app)] > 0
            # the service's circuit, closed, never opened
            (identity,) = [dict(k[1])["name"] for k in got if k[0] == "motan_circuit_breaker_state"]
            assert DEMO_SERVICE in identity
            breaker = tuple(sorted({"application": "gauge-app", "name": identity}.items()))
            assert got[("motan_circuit_breaker_state", breaker)] == 0
            assert got[("motan_circuit_breaker_opens_total", breaker)] == 0
            # no gauges before the sample interval has passed, then the Go samplers' values
            await agent.telemetry.report()
            await agent.telemetry.report(now=agent.telemetry.started + 3600)
            datagram = (await asyncio.to_thread(udp.recv, 65536)).decode()
        prefix = "motan-agent.gauge-app.motan-stat.byhost.127_0_0_1.status."
        gauges = {
            line[len(prefix) :].split(":")[0]: line.split(":")[1]
            for line in datagram.splitlines()
            if line.startswith(prefix)
        }
        assert gauges["not_found_provider_count"] == "1|kv"
        assert gauges["motan_server_connection_count"] == f"{connections}|kv"
        assert gauges["accesslog_discard_count"] == "0|kv"
        assert int(gauges["memory"].split("|")[0]) > 1
        assert set(gauges) == {
            "memory",
            "cpu",
            "motan_server_connection_count",
            "not_found_provider_count",
            "accesslog_discard_count",
        }
        # counters go out as their increase since the last sample
        second = {g.name: g.value for g in agent.telemetry.gauges()}
        assert second["not_found_provider_count"] == 0
    finally:
        await agent.stop(drain=False)
