"""The autopilot scenario with real processes: demo services with a capacity, server and
client agents per IDC exporting /metrics, and ``motanmesh autopilot`` steering them through
the embedded registry or ZooKeeper. A surge in IDC A must move at least 20% of A's calls to
IDC B within 10 s of crossing the warning level, fail fewer than 0.1% of the calls, change the
split's direction at most once, and bring the traffic home within 60 s after the surge."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from motanmesh.demo.autopilot import QUICK, Scenario, Summary, timeline_line
from tests.servers import servers_required
from tests.servers.zookeeper import ZooKeeperServer, zookeeper_missing

pytestmark = pytest.mark.slow


@pytest.fixture
def zookeeper() -> Iterator[ZooKeeperServer]:
    reason = zookeeper_missing()
    if reason is not None:
        if servers_required():
            pytest.fail(f"ZooKeeper is required here: {reason}")
        pytest.skip(reason)
    server = ZooKeeperServer()
    server.start()
    yield server
    server.close()


def run(scenario: Scenario) -> Summary:
    try:
        scenario.start()
        summary = asyncio.run(scenario.run())
    finally:
        scenario.stop()
    return summary


def check(summary: Summary, scenario: Scenario) -> None:
    timeline = "\n".join(timeline_line(s) for s in scenario.samples)
    decisions = (scenario.workdir / "autopilot-decisions.jsonl").read_text()
    where = f"\n{timeline}\n{chr(10).join(summary.lines())}\ndecisions:\n{decisions[-6000:]}"
    assert summary.crossed_at is not None and summary.moved20_at is not None, where
    assert summary.moved20_at - summary.crossed_at <= 10.0, where
    assert summary.calls > 1000, where
    assert summary.failure_ratio < 0.001, where
    assert summary.direction_changes <= 1, where
    assert summary.fell_at is not None and summary.home_at is not None, where
    assert summary.home_at - summary.fell_at <= 60.0, where


def test_scenario_on_the_embedded_registry(tmp_path: Path) -> None:
    scenario = Scenario(tmp_path, phases=QUICK)
    summary = run(scenario)
    check(summary, scenario)
    picture = scenario.picture()
    assert picture.startswith("<svg") and picture.count("<polyline") == 4


def test_scenario_on_zookeeper(tmp_path: Path, zookeeper: ZooKeeperServer) -> None:
    scenario = Scenario(tmp_path, registry=f"zookeeper://{zookeeper.hosts}", phases=QUICK)
    check(run(scenario), scenario)
