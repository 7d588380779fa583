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

from selenium.webdriver.common.by import By

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


def page_text(driver: object, selector: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, selector).text)  # type: ignore[attr-defined]


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
            section = driver.find_element(By.CSS_SELECTOR, f'section[data-service="{SERVICE}"]')
            lines = section.find_elements(By.CSS_SELECTOR, "svg.chart polyline.series")
            assert {line.get_attribute("data-series") for line in lines} >= {GROUP_A, GROUP_B}
            points = lines[0].get_attribute("points") or ""
            assert len(points.split()) > 3  # a history, not a single point
            row = section.find_element(By.CSS_SELECTOR, f'tr[data-group="{GROUP_A}"]')
            assert GROUP_B in row.find_element(By.CSS_SELECTOR, "td.split").text
            assert "100" in row.text  # capacity 100 calls/s
            writers = {
                e.get_attribute("data-writer")
                for e in driver.find_elements(By.CSS_SELECTOR, "#commands tr.command")
            }
            assert writers == {"autopilot", "operator"}
            rules = {
                e.get_attribute("data-rule")
                for e in driver.find_elements(By.CSS_SELECTOR, "#decisions li.decision")
            }
            assert "shift" in rules
            assert "leader" in page_text(driver, "#role")
            graph = page_text(driver, "#graph")
            assert "app-demo-rpc-a" in graph and SERVICE in graph and "42" in graph
            # the script refreshes the page in place: the demand falls, the page follows
            agent.series[0].rate = 10.0
            agent.series[2].rate = 10.0

            def returned() -> bool:
                rows = driver.find_elements(By.CSS_SELECTOR, f'tr[data-group="{GROUP_A}"] td.split')
                return bool(rows) and rows[0].text == f"{GROUP_A} 100%"

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
