"""Merging and printing the graphs of several agents (``ctl graph``)."""

from __future__ import annotations

from typing import Any

from motanmesh.control.graph import GraphReport, dot, merge, table_lines
from motanmesh.graph import SIDE_CLIENT, SIDE_SERVER, DependencyGraph

SERVICE = "com.example.Users"


def snapshots() -> dict[str, dict[str, Any]]:
    web_a, web_b, users = DependencyGraph("web"), DependencyGraph("web"), DependencyGraph("users")
    for graph, n in ((web_a, 3), (web_b, 2)):
        for _ in range(n):
            graph.record((SIDE_CLIENT, "web", SERVICE, "g", "get"), 0.004, None)
    web_b.record((SIDE_CLIENT, "web", SERVICE, "g", "get"), 0.9, "other")
    for _ in range(6):
        users.record((SIDE_SERVER, "web", SERVICE, "g", "get"), 0.002, None)
    users.record((SIDE_SERVER, "", SERVICE, "g", "put"), 0.002, "biz")
    return {
        "10.0.0.1:8002": web_a.snapshot(),
        "10.0.0.2:8002": web_b.snapshot(),
        "10.0.0.3:8002": users.snapshot(),
    }


def test_merge_sums_the_same_edge_over_agents() -> None:
    edges = {(e.side, e.method): e for e in merge(snapshots())}
    client = edges[("client", "get")]
    assert (client.calls, client.errors, client.other_errors) == (6, 1, 1)
    assert client.agents == ["10.0.0.1:8002", "10.0.0.2:8002"]
    assert client.max_ms == 900.0
    assert sum(client.buckets) == 6
    assert round(client.avg_ms, 3) == round((5 * 4 + 900) / 6, 3)
    assert client.to_dict()["p99Ms"] == 1000.0
    server = edges[("server", "get")]
    assert (server.callee, server.calls) == ("users", 6)
    assert edges[("server", "put")].biz_errors == 1


def test_merge_skips_what_is_not_an_edge() -> None:
    assert merge({"a": {"edges": ["junk", 3]}, "b": {}}) == []


def test_table_and_dot() -> None:
    report = GraphReport(
        {"10.0.0.1:8002": "ok", "10.0.0.9:8002": "error: down"}, merge(snapshots())
    )
    lines = table_lines(report)
    assert lines[:2] == ["agent 10.0.0.1:8002: ok", "agent 10.0.0.9:8002: error: down"]
    assert lines[2].split()[:3] == ["SIDE", "CALLER", "SERVICE"]
    assert lines[3].split()[:7] == ["client", "web", SERVICE, "g", "get", "-", "6"]
    text = dot(report)
    # the caller's edge counts the larger side (6 client attempts, 6 served), once
    assert f'"app:web" -> "svc:{SERVICE}:g" [label="6 calls, 1 errors"];' in text
    assert f'"svc:{SERVICE}:g" -> "app:users" [style=dashed, label="7 served, 1 errors"];' in text
    assert '"app:(unknown caller)"' in text
    assert table_lines(GraphReport({}, [])) == ["no calls recorded"]
