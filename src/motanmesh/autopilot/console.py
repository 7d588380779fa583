"""The console: one web page served by the autopilot (loopback by default).

``GET /`` is the whole page, rendered on the server: per service the water level of every
IDC group over the last minutes and the share moved (inline SVG), the split in force, demand
against capacity, the commands in force in each group's node (the autopilot's and the
operators'), the decision log and, when the agents serve ``/debug/graph``, their dependency
graph. A small inline script fetches ``GET /fragment`` every second and swaps it in.
``GET /api/state`` is the same data as JSON. No external file, font or CDN.
"""

from __future__ import annotations

import asyncio
import time
from html import escape
from typing import Any

import aiohttp
from aiohttp import web

from motanmesh.autopilot.chart import levels_chart, split_chart
from motanmesh.autopilot.commands import MARK
from motanmesh.autopilot.decisions import Decision, format_decision
from motanmesh.autopilot.prometheus import AgentScraper
from motanmesh.autopilot.runner import Autopilot
from motanmesh.cluster.command import CommandError, parse_command_document
from motanmesh.control.commands import describe_command
from motanmesh.control.graph import merge

__all__ = ["Console", "render_fragment", "render_page"]

_STYLE = """
body{font-family:sans-serif;margin:1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left}
.over{background:#fdd}.warn{color:#a00;font-weight:bold}.ok{color:#070}
section.service{border-top:2px solid #888;margin-top:1em}
pre{background:#f6f6f6;padding:4px;font-size:12px;white-space:pre-wrap}
"""

_SCRIPT = """
(function(){
  async function refresh(){
    try{
      const r = await fetch('/fragment', {cache:'no-store'});
      if(r.ok){ document.getElementById('main').innerHTML = await r.text();
                document.body.dataset.refreshed = String(Date.now()); }
    }catch(e){ document.body.dataset.error = String(e); }
  }
  setInterval(refresh, 1000);
})();
"""


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def _split_text(split: dict[str, int]) -> str:
    return ", ".join(f"{g} {p}%" for g, p in sorted(split.items(), key=lambda kv: -kv[1]))


def _service(name: str, data: dict[str, Any]) -> str:
    groups: list[str] = data["groups"]
    warning = float(data["policy"]["warning"])
    history = data["history"]
    rows = []
    for group in groups:
        s = data["state"].get(group, {})
        level = float(s.get("level", 0.0))
        rule, detail = data["rules"].get(group, ["", ""])
        p99 = s.get("p99")
        rows.append(
            f'<tr class="group{" over" if level > warning else ""}" data-group="{escape(group)}">'
            f"<td>{escape(group)}</td><td>{s.get('instances', 0)}</td>"
            f"<td>{s.get('capacity', 0):.1f}</td><td>{s.get('demand', 0):.1f}</td>"
            f"<td>{s.get('load', 0):.1f}</td>"
            f'<td class="level">{_pct(level)}</td>'
            f'<td class="demand-level">{_pct(float(s.get("demandLevel", 0.0)))}</td>'
            f"<td>{'-' if p99 is None else f'{p99 * 1000:.0f}ms'}</td>"
            f"<td>{float(s.get('errorRatio', 0.0)):.2%}</td>"
            f'<td class="split">{escape(_split_text(data["split"].get(group, {group: 100})))}</td>'
            f'<td class="rule" title="{escape(detail)}">{escape(rule)}</td></tr>'
        )
    return (
        f'<section class="service" data-service="{escape(name)}"><h2>{escape(name)}</h2>'
        f"{levels_chart(history, groups, warning)}{split_chart(history, groups, height=160)}"
        "<table><tr><th>group</th><th>instances</th><th>capacity/s</th><th>demand/s</th>"
        "<th>load/s</th><th>water level</th><th>demand level</th><th>p99</th><th>failed</th>"
        "<th>its calls go to</th><th>rule</th></tr>" + "".join(rows) + "</table></section>"
    )


def _commands(nodes: dict[str, str | None]) -> str:
    rows = []
    for group in sorted(nodes):
        raw = nodes[group]
        if not raw:
            continue
        try:
            commands = parse_command_document(raw).sorted_commands()
        except CommandError as exc:
            rows.append(f"<tr><td>{escape(group)}</td><td>-</td><td>unreadable: {exc}</td></tr>")
            continue
        for command in commands:
            who = "autopilot" if command.remark.startswith(MARK) else "operator"
            rows.append(
                f'<tr class="command" data-writer="{who}"><td>{escape(group)}</td>'
                f"<td>{who}</td><td>{escape(describe_command(command))}</td></tr>"
            )
    if not rows:
        return '<p id="no-commands">no commands in force</p>'
    return (
        '<table id="commands"><tr><th>node</th><th>written by</th><th>command</th></tr>'
        + "".join(rows)
        + "</table>"
    )


def _decisions(items: list[dict[str, Any]]) -> str:
    lines = [
        f'<li class="decision" data-rule="{escape(str(d["rule"]))}">'
        f"{escape(format_decision(Decision.from_dict(d)))}</li>"
        for d in reversed(items)
    ]
    return '<ol id="decisions">' + "".join(lines) + "</ol>" if lines else "<p>none yet</p>"


def _graph(graphs: dict[str, Any]) -> str:
    """The agents' ``/debug/graph`` snapshots, merged (``control.graph``): who calls what."""
    if not graphs:
        return '<p id="no-graph">no agent serves /debug/graph</p>'
    edges = merge({a: g for a, g in graphs.items() if isinstance(g, dict)})
    rows = [
        f'<tr class="edge" data-side="{escape(e.side)}"><td>{escape(e.side)}</td>'
        f"<td>{escape(e.caller or '-')}</td><td>{escape(e.service)}</td>"
        f"<td>{escape(e.group or '-')}</td><td>{escape(e.method)}</td>"
        f"<td>{escape(e.callee or '-')}</td><td>{e.calls}</td><td>{e.errors}</td>"
        f"<td>{e.avg_ms:.1f}</td></tr>"
        for e in edges
    ]
    return (
        f'<table id="graph"><caption>{len(graphs)} agent(s)</caption><tr><th>side</th>'
        "<th>caller</th><th>service</th><th>group</th><th>method</th><th>callee</th>"
        "<th>calls</th><th>errors</th><th>avg ms</th></tr>" + "".join(rows) + "</table>"
    )


def render_fragment(state: dict[str, Any], graphs: dict[str, Any]) -> str:
    role = "leader" if state["leader"] else "follower"
    head = [
        f'<p id="status">autopilot <b>{escape(state["name"])}</b>: '
        f'<span id="role">{role}</span> ({escape(state["election"])}), '
        f"{state['rounds']} rounds"
        + (' <span id="dry-run" class="warn">DRY RUN: nothing is written</span>')
        * bool(state["dryRun"])
        + "</p>"
    ]
    if state["stale"]:
        head.append(f'<p id="stale" class="warn">{escape(state["stale"])}</p>')
    body = "".join(_service(n, d) for n, d in state["services"].items())
    return (
        "".join(head)
        + body
        + "<h2>Commands in force</h2>"
        + _commands(
            {
                **state["nodes"],
                **{f"agent {a}": raw for a, raw in state.get("agentNodes", {}).items()},
            }
        )
        + "<h2>Decisions</h2>"
        + _decisions(state["decisions"])
        + "<h2>Dependency graph</h2>"
        + _graph(graphs)
    )


def render_page(state: dict[str, Any], graphs: dict[str, Any]) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>motanmesh autopilot {escape(state['name'])}</title>"
        f"<style>{_STYLE}</style></head><body><h1>motanmesh autopilot</h1>"
        f'<main id="main">{render_fragment(state, graphs)}</main>'
        f"<script>{_SCRIPT}</script></body></html>"
    )


class Console:
    """The console's HTTP server, bound to ``host``:``port`` (0: any free port)."""

    def __init__(self, autopilot: Autopilot, host: str = "127.0.0.1", port: int = 0) -> None:
        self.autopilot = autopilot
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None
        self._graphs: dict[str, Any] = {}
        self._graphs_at = 0.0
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/fragment", self._fragment)
        app.router.add_get("/api/state", self._state)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0))

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def graphs(self) -> dict[str, Any]:
        """``/debug/graph`` of the agents being scraped, refreshed at most every 5 s."""
        if time.monotonic() - self._graphs_at < 5.0 or self._session is None:
            return self._graphs
        self._graphs_at = time.monotonic()
        targets = [
            a for s in self.autopilot.sources if isinstance(s, AgentScraper) for a in s.targets
        ]
        session = self._session

        async def one(address: str) -> tuple[str, Any]:
            try:
                async with session.get(f"http://{address}/debug/graph") as resp:
                    if resp.status != 200:
                        return address, None
                    graph = await resp.json(content_type=None)
                    return address, graph if isinstance(graph, dict) else None
            except (aiohttp.ClientError, TimeoutError, ValueError, OSError):
                return address, None

        found = await asyncio.gather(*(one(a) for a in targets))
        self._graphs = {a: g for a, g in found if g is not None}
        return self._graphs

    async def _page(self, request: web.Request) -> web.Response:
        html = render_page(self.autopilot.snapshot(), await self.graphs())
        return web.Response(text=html, content_type="text/html")

    async def _fragment(self, request: web.Request) -> web.Response:
        html = render_fragment(self.autopilot.snapshot(), await self.graphs())
        return web.Response(text=html, content_type="text/html")

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.autopilot.snapshot())
