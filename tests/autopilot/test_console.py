"""The console in headless Chromium, while the autopilot steers real telemetry: the page
shows the water levels, the split, demand against capacity, the commands in force (the
autopilot's and an operator's), the decision log and the agents' dependency graph, and its
script keeps it current."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

from motanmesh.autopilot.console import Console
from motanmesh.autopilot.runner import Autopilot
from motanmesh.registry.embedded import EmbeddedRegistry
from tests.autopilot.browser import chromium
from tests.autopilot.helpers import (
    GROUP_A,
    GROUP_B,
    SERVICE,
    MetricsAgent,
    autopilot_config,
    client_series,
    embedded_url,
    server_series,
    wait_until,
)

GRAPH = {
    "edges": [
        {
            "side": "client",
            "caller": "app-demo-rpc-a",
            "callee": "",
            "service": SERVICE,
            "group": GROUP_A,
            "method": "hello",
            "calls": 42,
            "bizErrors": 0,
            "otherErrors": 1,
            "avgMs": 2.5,
            "maxMs": 9.0,
        }
    ]
}
OPERATOR = (
    '{"clientCommandList":[{"index":2,"version":"1.0","dc":"","commandType":0,'
    '"pattern":"com.example.Other","mergeGroups":["demo-rpc-b:1"],"routeRules":[],'
    '"remark":"maintenance"}]}'
)


SNAPSHOT = """
const text = (e) => (e ? e.innerText.trim() : "");
const [service, group] = arguments;
const section = document.querySelector(`section[data-service="${service}"]`);
if (!section) return null;
return {
  series: [...section.querySelectorAll("svg.chart polyline.series")].map(
    (l) => [l.getAttribute("data-series"), l.getAttribute("points") || ""]),
  split: text(section.querySelector(`tr[data-group="${group}"] td.split`)),
  row: text(section.querySelector(`tr[data-group="${group}"]`)),
  writers: [...document.querySelectorAll("#commands tr.command")].map(
    (e) => e.getAttribute("data-writer")),
  rules: [...document.querySelectorAll("#decisions li.decision")].map(
    (e) => e.getAttribute("data-rule")),
  role: text(document.querySelector("#role")),
  graph: text(document.querySelector("#graph")),
};
"""


def snapshot(driver: Any) -> dict[str, Any]:
    """What the console shows, read in one script call."""
    page = driver.execute_script(SNAPSHOT, SERVICE, GROUP_A)
    assert isinstance(page, dict), "the console has no section for the service"
    return page


async def test_the_console_shows_a_shift_in_chromium(
    registry: EmbeddedRegistry, db: Path, tmp_path: Path
) -> None:
    agent = MetricsAgent(
        client_series(GROUP_A, 40.0),
        client_series(GROUP_B, 10.0),
        server_series(GROUP_A, 40.0),
        server_series(GROUP_B, 10.0),
        graph=GRAPH,
    )
    await agent.start()
    await registry.set_command(GROUP_A, OPERATOR)
    config = autopilot_config(
        embedded_url(db),
        tmp_path,
        telemetry=[{"type": "agents", "interval": 0.1, "targets": [agent.address]}],
        console={"port": 0},
    )
    autopilot = Autopilot(config)
    await autopilot.start()
    console = Console(autopilot)
    await console.start()
    try:
        await wait_until(lambda: autopilot.rounds > 5, "rounds")
        agent.series[0].rate = 140.0
        agent.series[2].rate = 90.0
        runtime = autopilot.services[SERVICE]
        await wait_until(lambda: 100 - runtime.split[GROUP_A].get(GROUP_A, 100) >= 25, "the shift")
        with chromium() as driver:
            await asyncio.to_thread(driver.get, console.url)
            assert "motanmesh autopilot" in driver.title
            # the page refreshes itself in place: each look reads it in one script call, so
            # that no element is replaced between finding it and reading it
            page = snapshot(driver)
            series = dict(page["series"])
            assert set(series) >= {GROUP_A, GROUP_B}
            assert len(series[GROUP_A].split()) > 3  # a history, not a single point
            assert GROUP_B in page["split"]
            assert "100" in page["row"]  # capacity 100 calls/s
            assert set(page["writers"]) == {"autopilot", "operator"}
            assert "shift" in page["rules"]
            assert "leader" in page["role"]
            graph = page["graph"]
            assert "app-demo-rpc-a" in graph and SERVICE in graph and "42" in graph
            # the script refreshes the page in place: the demand falls, the page follows
            agent.series[0].rate = 10.0
            agent.series[2].rate = 10.0

            def returned() -> bool:
                return bool(snapshot(driver)["split"] == f"{GROUP_A} 100%")

            await wait_until(returned, "the page to show traffic back home", timeout=30)
            assert driver.execute_script("return document.body.dataset.refreshed") is not None
            assert driver.execute_script("return document.body.dataset.error") is None
        state = await asyncio.to_thread(_get_json, console.url + "api/state")
        assert state["services"][SERVICE]["split"][GROUP_A] == {GROUP_A: 100}
    finally:
        await console.close()
        await autopilot.close()
        await agent.close()


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())
