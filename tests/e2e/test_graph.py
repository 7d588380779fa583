"""The dependency graph through real processes: app (this test) → client agent → server agent
→ demo service on the embedded registry. Each agent's ``/debug/graph`` counts what it saw;
``motanmesh ctl graph`` finds the agents through their registry nodes and prints the merged
graph as JSON, a table and Graphviz DOT."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from motanmesh.sdk.client import MotanClient
from motanmesh.sdk.errors import MotanBizError
from tests.e2e.harness import (
    DEMO_GROUP,
    DEMO_SERVICE,
    AgentProcess,
    Mesh,
    cli_argv,
    client_agent_config,
    demo_export,
    export_port,
    refer,
    server_agent_config,
    set_available,
    wait_endpoints,
)

HELLO_CALLS = 5
FAIL_CALLS = 2


@dataclass
class Graphed:
    mesh: Mesh
    client_agent: AgentProcess
    server_agent: AgentProcess
    silent_agent: AgentProcess


@pytest.fixture(scope="module")
def graphed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Graphed]:
    mesh = Mesh(tmp_path_factory.mktemp("graph"))
    try:
        _service, backend = mesh.demo_service("demo-service")
        export = demo_export(backend)
        server_config = server_agent_config("server", mesh.registry, {"demo": export})
        server_config["motan-agent"]["dependencyGraph"] = True
        server = mesh.agent("server-agent", server_config)
        set_available(server)
        client_config = client_agent_config(
            "client", mesh.registry, {"demo": refer(DEMO_SERVICE, DEMO_GROUP)}
        )
        client_config["motan-agent"]["dependencyGraph"] = True
        client = mesh.agent("client-agent", client_config)
        wait_endpoints(client, "demo", {f"127.0.0.1:{export_port(export)}"})
        # an agent with the graph off (the default): registered, but it has nothing to tell
        silent_config = client_agent_config(
            "silent", mesh.registry, {"demo": refer(DEMO_SERVICE, DEMO_GROUP)}
        )
        silent = mesh.agent("silent-agent", silent_config)
        yield Graphed(mesh, client, server, silent)
        mesh.check_alive()
    finally:
        mesh.close()


async def _calls(graphed: Graphed) -> None:
    async with MotanClient(
        graphed.client_agent.address, application="graph-app", group=DEMO_GROUP
    ) as client:
        for i in range(HELLO_CALLS):
            assert await client.call(DEMO_SERVICE, "hello", str(i)) == f"hello {i}"
        for _ in range(FAIL_CALLS):
            with pytest.raises(MotanBizError):
                await client.call(DEMO_SERVICE, "fail", "nope")


@pytest.fixture(scope="module")
def called(graphed: Graphed) -> Graphed:
    import asyncio  # noqa: PLC0415

    asyncio.run(_calls(graphed))
    return graphed


def _mgmt(agent: AgentProcess) -> str:
    return f"127.0.0.1:{agent.mport}"


def edges_by_method(snapshot: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["side"], e["method"]): e for e in snapshot["edges"]}


def test_each_agent_tells_who_called_what(called: Graphed) -> None:
    client_graph = called.client_agent.management_json("/debug/graph")
    server_graph = called.server_agent.management_json("/debug/graph")
    assert client_graph["application"] == "e2e-client"
    assert server_graph["application"] == "e2e-server"
    client_edges = edges_by_method(client_graph)
    server_edges = edges_by_method(server_graph)
    assert set(client_edges) == {("client", "hello"), ("client", "fail")}
    assert set(server_edges) == {("server", "hello"), ("server", "fail")}
    for edges, callee in ((client_edges, ""), (server_edges, "e2e-server")):
        for edge in edges.values():
            assert (edge["caller"], edge["service"], edge["group"], edge["callee"]) == (
                "graph-app",
                DEMO_SERVICE,
                DEMO_GROUP,
                callee,
            )
        hello = next(e for (_side, m), e in edges.items() if m == "hello")
        fail = next(e for (_side, m), e in edges.items() if m == "fail")
        assert (hello["calls"], hello["errors"]) == (HELLO_CALLS, 0)
        assert (fail["calls"], fail["bizErrors"], fail["otherErrors"]) == (
            FAIL_CALLS,
            FAIL_CALLS,
            0,
        )
        assert 0 < hello["avgMs"] <= hello["maxMs"]
        assert sum(hello["buckets"]) == HELLO_CALLS


def test_a_switched_off_graph_says_so(called: Graphed) -> None:
    status, body = called.silent_agent.management("/debug/graph")
    assert status == 404
    assert "dependencyGraph" in body


def _ctl(graphed: Graphed, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_argv("ctl", "graph", "--registry", f"embedded://{graphed.mesh.registry}", *args),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=graphed.mesh.workdir,
        check=False,
    )


def test_ctl_graph_gathers_the_registered_agents(called: Graphed) -> None:
    done = _ctl(called, "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    agents = {
        _mgmt(called.client_agent): "ok",
        _mgmt(called.server_agent): "ok",
    }
    assert {a: s for a, s in report["agents"].items() if s == "ok"} == agents
    silent = report["agents"][_mgmt(called.silent_agent)]
    assert silent.startswith("error:") and "404" in silent
    edges = {(e["side"], e["method"]): e for e in report["edges"]}
    assert set(edges) == {
        ("client", "hello"),
        ("client", "fail"),
        ("server", "hello"),
        ("server", "fail"),
    }
    assert edges[("server", "hello")]["callee"] == "e2e-server"
    assert edges[("server", "hello")]["agents"] == [_mgmt(called.server_agent)]
    assert edges[("client", "fail")]["bizErrors"] == FAIL_CALLS
    assert edges[("client", "hello")]["calls"] == HELLO_CALLS

    only_server = _ctl(called, "--format", "json", "--application", "e2e-server")
    assert only_server.returncode == 0, only_server.stderr
    assert list(json.loads(only_server.stdout)["agents"]) == [_mgmt(called.server_agent)]


def test_ctl_graph_table_and_dot(called: Graphed) -> None:
    table = _ctl(called)
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    columns = "SIDE CALLER SERVICE GROUP METHOD CALLEE CALLS ERRORS AVG_MS P99_MS MAX_MS"
    header = rows.index(columns.split())
    body = {(r[0], r[4]): r for r in rows[header + 1 :]}
    assert body[("server", "hello")][1:7] == [
        "graph-app",
        DEMO_SERVICE,
        DEMO_GROUP,
        "hello",
        "e2e-server",
        str(HELLO_CALLS),
    ]
    assert body[("client", "fail")][7] == str(FAIL_CALLS)

    graph = _ctl(called, "--format", "dot")
    assert graph.returncode == 0, graph.stderr
    dot = graph.stdout
    assert dot.startswith("digraph motanmesh {")
    service = f'"svc:{DEMO_SERVICE}:{DEMO_GROUP}"'
    calls = HELLO_CALLS + FAIL_CALLS
    assert f'"app:graph-app" -> {service} [label="{calls} calls, {FAIL_CALLS} errors"];' in dot
    assert f'{service} -> "app:e2e-server" [style=dashed, label="{calls} served, ' in dot
    dot_tool = subprocess.run(["which", "dot"], capture_output=True, text=True, check=False)
    if dot_tool.returncode == 0:  # Graphviz itself accepts it, where installed
        rendered = subprocess.run(
            ["dot", "-Tsvg"], input=dot, capture_output=True, text=True, timeout=30, check=False
        )
        assert rendered.returncode == 0, rendered.stderr


def test_ctl_graph_without_agents_is_a_usage_error(called: Graphed) -> None:
    done = _ctl(called, "--application", "nobody-here")
    assert done.returncode == 2
    assert "no agent nodes of nobody-here" in done.stderr
