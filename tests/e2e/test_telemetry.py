"""Telemetry of real agent processes read by real servers: a Prometheus scraping both agents'
``/metrics`` (PromQL through its HTTP API), and a Graphite carbon-cache receiving both agents'
plaintext reports (values read back from its whisper files). Counts equal the calls sent."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from motanmesh.sdk.client import MotanClient
from tests.e2e.harness import (
    DEMO_GROUP,
    DEMO_SERVICE,
    AgentProcess,
    Mesh,
    client_agent_config,
    demo_export,
    export_port,
    refer,
    server_agent_config,
    set_available,
    wait_endpoints,
)
from tests.servers.carbon import CarbonServer, require_carbon
from tests.servers.prometheus import PrometheusServer, require_prometheus

CLIENT_APP = "e2e-client"
SERVER_APP = "e2e-server"
ESCAPED_SERVICE = DEMO_SERVICE.replace(".", "_")
WAIT_SECONDS = 60.0


def _agents(mesh: Mesh, metrics: dict[str, Any] | None = None) -> tuple[AgentProcess, AgentProcess]:
    """A server agent (``metrics`` on its service) in front of the demo service, and a client
    agent (``defaultFilter: metrics,clusterMetrics``) referring to it."""
    _backend, backend_port = mesh.demo_service("backend")
    export = {**demo_export(backend_port), "filter": "metrics"}
    server_config = server_agent_config("server", mesh.registry, {"demo": export})
    server_config["motan-agent"]["application"] = SERVER_APP
    client_config = client_agent_config(
        "client", mesh.registry, {"demo": refer(DEMO_SERVICE, DEMO_GROUP)}
    )
    client_config["motan-agent"].update(
        application=CLIENT_APP, defaultFilter="metrics,clusterMetrics"
    )
    if metrics:
        server_config["metrics"] = metrics
        client_config["metrics"] = metrics
    server = mesh.agent("server", server_config)
    set_available(server)
    client = mesh.agent("client", client_config)
    wait_endpoints(client, "demo", {f"127.0.0.1:{export_port(export)}"})
    return server, client


async def _call(client: AgentProcess, count: int) -> None:
    async with MotanClient(client.address, application="caller", group=DEMO_GROUP) as c:
        for i in range(count):
            assert await c.call(DEMO_SERVICE, "hello", str(i)) == f"hello {i}"


def _wait(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    last = None
    while time.monotonic() < deadline:
        ok, last = predicate()
        if ok:
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last}")


def test_prometheus_scrapes_both_agents_and_promql_gives_the_rate_by_service_and_group(
    mesh: Mesh, tmp_path: Path
) -> None:
    require_prometheus()
    server, client = _agents(mesh)
    targets = [f"127.0.0.1:{server.mport}", f"127.0.0.1:{client.mport}"]
    with PrometheusServer(tmp_path / "prometheus", targets) as prom:
        _wait(
            lambda: (all(prom.targets_up().get(t) for t in targets), prom.targets_up()), "scrapes"
        )
        totals = 'sum by (instance, role, application, group) (motan_calls_total{method="hello"})'
        keys = [
            (f"127.0.0.1:{client.mport}", "motan-client-agent", CLIENT_APP, DEMO_GROUP),
            (
                f"127.0.0.1:{client.mport}",
                "motan-client-agent",
                CLIENT_APP,
                f"{DEMO_GROUP}.cluster",
            ),
            (f"127.0.0.1:{server.mport}", "motan-server-agent", SERVER_APP, DEMO_GROUP),
        ]

        def counted(sent: int) -> Any:
            def check() -> tuple[bool, Any]:
                got = {
                    (
                        r["metric"]["instance"],
                        r["metric"]["role"],
                        r["metric"]["application"],
                        r["metric"]["group"],
                    ): float(r["value"][1])
                    for r in prom.query(totals)
                }
                return got == dict.fromkeys(keys, float(sent)), got

            return check

        # two steps, each seen by Prometheus, so the counters have risen between two scrapes
        asyncio.run(_call(client, 30))
        _wait(counted(30), "30 calls in Prometheus")
        asyncio.run(_call(client, 70))
        _wait(counted(100), "100 calls in Prometheus")
        assert prom.query('sum(motan_call_errors_total{method="hello"})')[0]["value"][1] == "0"

        rate = prom.query("sum by (service, group) (rate(motan_calls_total[5m]))")
        by_key = {
            (r["metric"]["service"], r["metric"]["group"]): float(r["value"][1]) for r in rate
        }
        assert set(by_key) == {(DEMO_SERVICE, DEMO_GROUP), (DEMO_SERVICE, f"{DEMO_GROUP}.cluster")}
        assert all(v > 0 for v in by_key.values()), by_key

        up = prom.query("motan_agent_resident_memory_bytes")
        assert {r["metric"]["application"] for r in up} == {CLIENT_APP, SERVER_APP}


def test_carbon_stores_the_counts_of_both_agents(mesh: Mesh, tmp_path: Path) -> None:
    require_carbon()
    with CarbonServer(tmp_path / "carbon") as carbon:
        metrics = {
            "period": 1,
            "carbon": [{"name": "carbon", "host": "127.0.0.1", "port": carbon.port}],
        }
        _server, client = _agents(mesh, metrics)
        host = "byhost.127_0_0_1"
        paths = {
            f"motan-client-agent.{CLIENT_APP}.{DEMO_GROUP}.{host}.{ESCAPED_SERVICE}.hello.total_count",
            f"motan-client-agent.{CLIENT_APP}.{DEMO_GROUP}.cluster.{host}.{ESCAPED_SERVICE}.hello.total_count",
            f"motan-server-agent.{SERVER_APP}.{DEMO_GROUP}.{host}.{ESCAPED_SERVICE}.hello.total_count",
        }

        def stored(sent: int) -> Any:
            def check() -> tuple[bool, Any]:
                sums = {p: sum(v for _, v in carbon.points(p)) for p in paths}
                return all(v == sent for v in sums.values()), sums

            return check

        # two steps, the second sent after carbon stored the first: two periods at least
        asyncio.run(_call(client, 20))
        _wait(stored(20), "20 calls in carbon")
        asyncio.run(_call(client, 40))
        _wait(stored(60), "60 calls in carbon")
        # per period counts: several points, each a whole number of calls
        for path in paths:
            points = carbon.points(path)
            assert len(points) >= 2
            assert all(v == int(v) and v > 0 for _, v in points)
