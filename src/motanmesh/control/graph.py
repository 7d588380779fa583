"""The mesh's dependency graph, gathered from the agents' ``/debug/graph``.

:func:`gather` asks each agent (addresses from the registry's agent nodes and/or given), and
:func:`merge` sums the edges of all agents by (side, caller, callee, service, group, method).
A call through two agents is seen twice, once on each side: the ``client`` edge by the caller's
agent (each attempt on a provider), the ``server`` edge by the provider's agent, which also
names the application that served it (``callee``). :func:`table_lines` and :func:`dot` print
the result for people and for Graphviz.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from motanmesh.control.agents import AgentUnreachableError, ManagementClient, ManagementError
from motanmesh.graph import BUCKET_BOUNDS_MS, SIDE_CLIENT, SIDE_SERVER, percentile_ms
from motanmesh.registry.base import Registry

__all__ = [
    "GraphReport",
    "MergedEdge",
    "agent_addresses",
    "dot",
    "gather",
    "merge",
    "table_lines",
]


async def agent_addresses(registry: Registry, application: str = "") -> list[str]:
    """``host:mport`` of every agent node in ``registry`` (of ``application``, or all)."""
    urls = await registry.agent_nodes()
    return sorted(
        {
            f"{u.host}:{u.get_int('mport', u.port)}"
            for u in urls
            if not application or u.application == application
        }
    )


@dataclass
class MergedEdge:
    side: str
    caller: str
    callee: str
    service: str
    group: str
    method: str
    calls: int = 0
    biz_errors: int = 0
    other_errors: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKET_BOUNDS_MS) + 1))
    agents: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return self.biz_errors + self.other_errors

    @property
    def avg_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "caller": self.caller,
            "callee": self.callee,
            "service": self.service,
            "group": self.group,
            "method": self.method,
            "calls": self.calls,
            "errors": self.errors,
            "bizErrors": self.biz_errors,
            "otherErrors": self.other_errors,
            "avgMs": round(self.avg_ms, 3),
            "maxMs": round(self.max_ms, 3),
            "p50Ms": percentile_ms(self.buckets, 0.5),
            "p99Ms": percentile_ms(self.buckets, 0.99),
            "agents": sorted(self.agents),
        }


@dataclass
class GraphReport:
    """The agents asked (address → ``"ok"`` or what went wrong) and the merged edges."""

    agents: dict[str, str]
    edges: list[MergedEdge]

    def to_dict(self) -> dict[str, Any]:
        return {"agents": self.agents, "edges": [e.to_dict() for e in self.edges]}


async def gather(addresses: Iterable[str], *, token: str = "", timeout: float = 5.0) -> GraphReport:
    """``/debug/graph`` of each agent, merged. An agent that does not answer, or answers with
    an error (graph switched off), is reported in ``agents`` and left out."""
    status: dict[str, str] = {}
    snapshots: dict[str, Mapping[str, Any]] = {}
    for address in addresses:
        async with ManagementClient(address, token=token, timeout=timeout) as client:
            try:
                data = await client.json("/debug/graph")
            except (AgentUnreachableError, ManagementError) as exc:
                status[address] = f"error: {exc}"
                continue
        if not isinstance(data, dict) or not isinstance(data.get("edges"), list):
            status[address] = "error: /debug/graph did not answer with a graph"
            continue
        status[address] = "ok"
        snapshots[address] = data
    return GraphReport(status, merge(snapshots))


def merge(snapshots: Mapping[str, Mapping[str, Any]]) -> list[MergedEdge]:
    """Sum the edges of several agents' snapshots (agent address → ``/debug/graph`` JSON)."""
    merged: dict[tuple[str, ...], MergedEdge] = {}
    for address, snapshot in snapshots.items():
        for raw in snapshot.get("edges", []):
            if not isinstance(raw, dict):
                continue
            side, caller, callee, service, group, method = key = tuple(
                str(raw.get(k, ""))
                for k in ("side", "caller", "callee", "service", "group", "method")
            )
            edge = merged.get(key)
            if edge is None:
                edge = merged[key] = MergedEdge(side, caller, callee, service, group, method)
            calls = int(raw.get("calls", 0))
            edge.calls += calls
            edge.biz_errors += int(raw.get("bizErrors", 0))
            edge.other_errors += int(raw.get("otherErrors", 0))
            edge.total_ms += float(raw.get("avgMs", 0.0)) * calls
            edge.max_ms = max(edge.max_ms, float(raw.get("maxMs", 0.0)))
            buckets = raw.get("buckets")
            if isinstance(buckets, list) and len(buckets) == len(edge.buckets):
                edge.buckets = [a + int(b) for a, b in zip(edge.buckets, buckets, strict=True)]
            if address not in edge.agents:
                edge.agents.append(address)
    return [merged[k] for k in sorted(merged)]


_COLUMNS = (
    "SIDE",
    "CALLER",
    "SERVICE",
    "GROUP",
    "METHOD",
    "CALLEE",
    "CALLS",
    "ERRORS",
    "AVG_MS",
    "P99_MS",
    "MAX_MS",
)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 0:
        return f">{BUCKET_BOUNDS_MS[-1]}"
    return f"{value:g}"


def table_lines(report: GraphReport) -> list[str]:
    """The agents asked, then one row per merged edge."""
    lines = [f"agent {a}: {s}" for a, s in sorted(report.agents.items())]
    rows = [
        (
            e.side,
            e.caller or "-",
            e.service,
            e.group or "-",
            e.method,
            e.callee or "-",
            str(e.calls),
            str(e.errors),
            f"{e.avg_ms:.3f}",
            _ms(percentile_ms(e.buckets, 0.99)),
            f"{e.max_ms:.3f}",
        )
        for e in report.edges
    ]
    if not rows:
        return [*lines, "no calls recorded"]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLUMNS)]
    for row in [_COLUMNS, *rows]:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return lines


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(report: GraphReport) -> str:
    """A Graphviz digraph: applications (boxes) call services (ellipses, ``service`` and
    ``group``), which are served by applications (dashed edges). An edge's label is its calls
    and errors; a call seen by both agents counts once (the larger of the two sides)."""
    calls: dict[tuple[str, str, str], dict[str, list[int]]] = {}
    served: dict[tuple[str, str, str], list[int]] = {}
    apps: set[str] = set()
    services: set[tuple[str, str]] = set()
    for e in report.edges:
        caller = e.caller or "(unknown caller)"
        apps.add(caller)
        services.add((e.service, e.group))
        side = calls.setdefault((caller, e.service, e.group), {})
        counts = side.setdefault(e.side, [0, 0])
        counts[0] += e.calls
        counts[1] += e.errors
        if e.side == SIDE_SERVER and e.callee:
            apps.add(e.callee)
            total = served.setdefault((e.service, e.group, e.callee), [0, 0])
            total[0] += e.calls
            total[1] += e.errors
    lines = ["digraph motanmesh {", "  rankdir=LR;", "  node [fontsize=10];"]
    for app in sorted(apps):
        lines.append(f"  {_quote('app:' + app)} [shape=box, label={_quote(app)}];")
    for service, group in sorted(services):
        node = _quote(f"svc:{service}:{group}")
        label = _quote(f"{service}\n{group}" if group else service)
        lines.append(f"  {node} [shape=ellipse, label={label}];")
    for (caller, service, group), sides in sorted(calls.items()):
        best = max(
            (sides.get(SIDE_CLIENT, [0, 0]), sides.get(SIDE_SERVER, [0, 0])), key=lambda c: c[0]
        )
        label = _quote(f"{best[0]} calls, {best[1]} errors")
        target = _quote(f"svc:{service}:{group}")
        lines.append(f"  {_quote('app:' + caller)} -> {target} [label={label}];")
    for (service, group, callee), (n, errors) in sorted(served.items()):
        label = _quote(f"{n} served, {errors} errors")
        source = _quote(f"svc:{service}:{group}")
        lines.append(f"  {source} -> {_quote('app:' + callee)} [style=dashed, label={label}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
