"""The autopilot end to end on a real embedded registry, with telemetry from real endpoints:
shifts and returns, dry-run, operators' commands, stale telemetry, leadership, Go agents."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from motanmesh.autopilot.commands import MARK
from motanmesh.autopilot.decisions import read_decisions
from motanmesh.autopilot.runner import Autopilot
from motanmesh.cluster.command import parse_command_document
from motanmesh.control.audit import AuditTrail, CommandTarget
from motanmesh.registry.embedded import EmbeddedRegistry
from tests.autopilot.helpers import (
    GROUP_A,
    GROUP_B,
    SERVICE,
    MetricsAgent,
    autopilot_config,
    client_series,
    embedded_url,
    graphite_lines,
    send_udp,
    wait_for,
    wait_until,
)
from tests.servers.prometheus import PrometheusServer

OPERATOR_DOC = json.dumps(
    {
        "clientCommandList": [
            {
                "index": 1,
                "version": "1.0",
                "dc": "",
                "commandType": 0,
                "pattern": SERVICE,
                "mergeGroups": [f"{GROUP_A}:5", f"{GROUP_B}:5"],
                "routeRules": [],
                "remark": "drill: half to b",
            }
        ]
    },
    separators=(",", ":"),
)


def groups_of(raw: str | None) -> list[str] | None:
    """The mergeGroups of the autopilot's command for SERVICE in a node (None: no such)."""
    if not raw:
        return None
    for command in parse_command_document(raw).commands:
        if command.remark.startswith(MARK) and command.pattern == SERVICE:
            return list(command.merge_groups)
    return None


def moved(raw: str | None) -> int:
    groups = groups_of(raw)
    if not groups:
        return 0
    return sum(int(g.rpartition(":")[2]) for g in groups if not g.startswith(GROUP_A + ":"))


@pytest.fixture
async def agent() -> AsyncIterator[MetricsAgent]:
    metrics = MetricsAgent(client_series(GROUP_A, 50.0), client_series(GROUP_B, 10.0))
    await metrics.start()
    yield metrics
    await metrics.close()


async def started(config: Any, **kw: Any) -> Autopilot:
    autopilot = Autopilot(config, **kw)
    await autopilot.start()
    return autopilot


def scrape(agent: MetricsAgent, **extra: Any) -> list[dict[str, Any]]:
    return [{"type": "agents", "interval": 0.1, "targets": [agent.address], **extra}]


async def test_a_surge_moves_traffic_and_it_comes_back(
    registry: EmbeddedRegistry, db: Path, tmp_path: Path, agent: MetricsAgent
) -> None:
    config = autopilot_config(embedded_url(db), tmp_path, telemetry=scrape(agent))
    autopilot = await started(config)
    try:
        await wait_until(lambda: autopilot.rounds > 10, "rounds")
        assert await registry.get_command(GROUP_A) is None
        agent.series[0].rate = 130.0  # 1.3 x capacity, warning 0.8
        await wait_for(lambda: _moved_at_least(registry, 25), "a shift of 25% or more", timeout=20)
        raw = await registry.get_command(GROUP_A)
        groups = groups_of(raw)
        assert groups is not None and groups[0].startswith(GROUP_A + ":")
        agent.series[0].rate = 20.0
        await wait_for(lambda: _moved_at_least(registry, 0, exact=True), "the return", timeout=30)
        assert await registry.get_command(GROUP_A) == '{"clientCommandList":[]}'
        # the node is written before the decision is logged: wait for the log too
        await wait_until(lambda: _logged_home(tmp_path / "decisions.jsonl"), "the return logged")
    finally:
        await autopilot.close()
    decisions = list(read_decisions(tmp_path / "decisions.jsonl"))
    rules = [d.rule for d in decisions if d.written]
    assert "shift" in rules and "return" in rules
    shift = next(d for d in decisions if d.rule == "shift")
    assert shift.inputs[GROUP_A]["demandLevel"] > 0.8
    assert shift.inputs[GROUP_A]["capacity"] == 100.0
    assert shift.command is not None and MARK in shift.command
    audit = await AuditTrail(registry).history(CommandTarget("group", GROUP_A))
    assert audit and {r.operator for r in audit} == {"motanmesh-autopilot"}
    assert len(audit) == len([d for d in decisions if d.written])


def _logged_home(path: Path) -> bool:
    """The decision log holds the written return of every call to ``GROUP_A``."""
    if not path.exists():
        return False
    return any(d.written and d.after == {GROUP_A: 100} for d in read_decisions(path))


async def _moved_at_least(registry: EmbeddedRegistry, share: int, exact: bool = False) -> bool:
    value = moved(await registry.get_command(GROUP_A))
    return value == share if exact else value >= share


async def test_dry_run_decides_but_writes_nothing(
    registry: EmbeddedRegistry, db: Path, tmp_path: Path, agent: MetricsAgent
) -> None:
    agent.series[0].rate = 150.0
    config = autopilot_config(embedded_url(db), tmp_path, telemetry=scrape(agent), dryRun=True)
    autopilot = await started(config)
    try:
        await wait_until(
            lambda: any(d.rule == "shift" for d in autopilot.log.recent), "a dry-run shift"
        )
        await wait_until(lambda: autopilot.rounds > 20, "more rounds")
        assert autopilot.leadership.is_leader
    finally:
        await autopilot.close()
    assert await registry.get_command(GROUP_A) is None
    shifts = [d for d in read_decisions(tmp_path / "decisions.jsonl") if d.rule == "shift"]
    assert len(shifts) == 1  # recorded once, not every round
    assert shifts[0].dry_run and not shifts[0].written
    assert shifts[0].after[GROUP_B] == 25


async def test_an_operator_command_is_never_overwritten(
    registry: EmbeddedRegistry, db: Path, tmp_path: Path, agent: MetricsAgent
) -> None:
    await registry.set_command(GROUP_A, OPERATOR_DOC)
    agent.series[0].rate = 150.0
    config = autopilot_config(embedded_url(db), tmp_path, telemetry=scrape(agent))
    autopilot = await started(config)
    try:
        await wait_until(
            lambda: any(d.rule == "operator" for d in autopilot.log.recent), "standing aside"
        )
        await wait_until(lambda: autopilot.rounds > 20, "more rounds")
        assert await registry.get_command(GROUP_A) == OPERATOR_DOC
        # the operator removes the command: the autopilot steers again
        await registry.set_command(GROUP_A, '{"clientCommandList":[]}')
        await wait_for(lambda: _moved_at_least(registry, 25), "the autopilot's shift")
    finally:
        await autopilot.close()


async def test_other_commands_in_the_node_are_kept(
    registry: EmbeddedRegistry, db: Path, tmp_path: Path, agent: MetricsAgent
) -> None:
    other = OPERATOR_DOC.replace(SERVICE, "com.example.Other").replace('"index":1', '"index":3')
    await registry.set_command(GROUP_A, other)
    agent.series[0].rate = 150.0
    config = autopilot_config(embedded_url(db), tmp_path, telemetry=scrape(agent))
    autopilot = await started(config)
    try:
        await wait_for(lambda: _moved_at_least(registry, 25), "the autopilot's shift")
    finally:
        await autopilot.close()
    document = parse_command_document(await registry.get_command(GROUP_A) or "")
    patterns = {c.pattern: c for c in document.commands}
    assert set(patterns) == {"com.example.Other", SERVICE}
    assert patterns["com.example.Other"].merge_groups == [f"{GROUP_A}:5", f"{GROUP_B}:5"]
    assert (patterns[SERVICE].index or 0) >= 1000


async def test_stale_telemetry_freezes_the_split(
    registry: EmbeddedRegistry, db: Path, tmp_path: Path, agent: MetricsAgent
) -> None:
    config = autopilot_config(embedded_url(db), tmp_path, telemetry=scrape(agent, timeout=0.3))
    autopilot = await started(config)
    try:
        agent.series[0].rate = 150.0
        await wait_for(lambda: _moved_at_least(registry, 25), "a shift")
        runtime = autopilot.services[SERVICE]
        await wait_until(
            lambda: runtime.rules[GROUP_A].rule in ("steady", "receivers-full"), "a settled split"
        )
        await agent.close()  # the metrics stop: demand is unknown from now on
        await wait_until(lambda: bool(autopilot.stale), "staleness")
        # until staleness is declared the window still holds the last samples, which may
        # move the split a step; from then on nothing may change
        before = await registry.get_command(GROUP_A)
        await asyncio.sleep(3.0)  # well past hold and cooldown
        assert await registry.get_command(GROUP_A) == before
        stale = [d for d in autopilot.log.recent if d.rule == "stale"]
        assert stale and agent.address in stale[-1].detail
        assert stale[-1].after == stale[-1].before
    finally:
        await autopilot.close()


async def test_agents_are_found_through_the_registry(
    registry: EmbeddedRegistry, db: Path, tmp_path: Path, agent: MetricsAgent
) -> None:
    await registry.register_agent(agent.url())
    assert [u.address for u in await registry.agent_nodes()] == [agent.address]
    agent.series[0].rate = 150.0
    config = autopilot_config(
        embedded_url(db), tmp_path, telemetry=[{"type": "agents", "interval": 0.1}]
    )
    autopilot = await started(config)
    try:
        await wait_for(lambda: _moved_at_least(registry, 25), "a shift")
        assert agent.scrapes > 0
    finally:
        await autopilot.close()


async def test_one_leader_writes_and_the_other_takes_over(
    registry: EmbeddedRegistry, db: Path, tmp_path: Path, agent: MetricsAgent
) -> None:
    first_dir, second_dir = tmp_path / "one", tmp_path / "two"
    first_dir.mkdir()
    second_dir.mkdir()
    one = await started(autopilot_config(embedded_url(db), first_dir, telemetry=scrape(agent)))
    two = await started(autopilot_config(embedded_url(db), second_dir, telemetry=scrape(agent)))
    try:
        assert one.leadership.is_leader and not two.leadership.is_leader
        agent.series[0].rate = 130.0
        await wait_for(lambda: _moved_at_least(registry, 25), "a shift")
        await wait_until(lambda: two.rounds > one.rounds - 5 and two.rounds > 10, "rounds")
        await one.close()
        await wait_until(lambda: two.leadership.is_leader, "the second to lead")
        agent.series[0].rate = 20.0
        await wait_for(lambda: _moved_at_least(registry, 0, exact=True), "the return")
        await wait_until(lambda: _logged_home(second_dir / "decisions.jsonl"), "the return logged")
    finally:
        await one.close()
        await two.close()
    written_one = [d for d in read_decisions(first_dir / "decisions.jsonl") if d.written]
    written_two = [d for d in read_decisions(second_dir / "decisions.jsonl") if d.written]
    assert written_one and all(d.rule == "shift" for d in written_one)
    assert written_two and written_two[-1].rule == "return"
    assert written_two[-1].after == {GROUP_A: 100}
    # each write was made by the leader of the moment, once
    assert not any(d.time > written_two[0].time for d in written_one)
    follower = [d for d in read_decisions(second_dir / "decisions.jsonl") if not d.leader]
    assert follower and not any(d.written for d in follower)
    audit = await AuditTrail(registry).history(CommandTarget("group", GROUP_A))
    assert len(audit) == len(written_one) + len(written_two)


async def test_go_agents_are_steered_from_their_datagrams(
    registry: EmbeddedRegistry, db: Path, tmp_path: Path
) -> None:
    config = autopilot_config(
        embedded_url(db),
        tmp_path,
        telemetry=[{"type": "graphite", "port": 0, "period": 1}],
        window=1.0,
        staleAfter=3.0,
    )
    autopilot = await started(config)
    stop = asyncio.Event()
    rate = {"a": 50.0}

    async def go_agents() -> None:  # two Go client agents in A, one in B, period 1 s
        while not stop.is_set():
            port = autopilot.sources[0].port  # type: ignore[union-attr]
            half = {"total_count": rate["a"] / 2}
            send_udp(port, graphite_lines("motan-client-agent", GROUP_A, "10.0.0.1", half))
            send_udp(port, graphite_lines("motan-client-agent", GROUP_A, "10.0.0.2", half))
            send_udp(
                port, graphite_lines("motan-client-agent", GROUP_B, "10.0.1.1", {"total_count": 10})
            )
            await asyncio.sleep(1.0)

    sender = asyncio.create_task(go_agents())
    try:
        await wait_until(lambda: autopilot.rounds > 10 and not autopilot.stale, "fresh telemetry")
        assert await registry.get_command(GROUP_A) is None
        rate["a"] = 140.0
        await wait_for(lambda: _moved_at_least(registry, 25), "a shift from Go agents' counts")
    finally:
        stop.set()
        await sender
        await autopilot.close()


async def test_a_prometheus_server_is_a_telemetry_source(
    registry: EmbeddedRegistry, db: Path, tmp_path: Path, agent: MetricsAgent
) -> None:
    """A real Prometheus scrapes the agent every second; the autopilot asks it with PromQL."""
    server = PrometheusServer(tmp_path / "prometheus", [agent.address])
    await asyncio.to_thread(server.start)
    try:
        config = autopilot_config(
            embedded_url(db),
            tmp_path,
            telemetry=[{"type": "prometheus", "url": server.url, "interval": 0.5}],
            window=2.0,
            staleAfter=5.0,
        )
        autopilot = await started(config)
        try:
            runtime = autopilot.services[SERVICE]
            await wait_until(
                lambda: runtime.state is not None and runtime.state.groups[GROUP_A].demand > 30,
                "the demand read from Prometheus",
                timeout=40,
            )
            assert await registry.get_command(GROUP_A) is None
            agent.series[0].rate = 160.0
            await wait_for(lambda: _moved_at_least(registry, 25), "a shift", timeout=60)
        finally:
            await autopilot.close()
    finally:
        await asyncio.to_thread(server.stop)


async def test_an_operator_agent_level_command_is_obeyed_by_standing_aside(
    registry: EmbeddedRegistry, db: Path, tmp_path: Path, agent: MetricsAgent
) -> None:
    # the client agent sending A's calls belongs to an application whose agent-level command
    # (evaluated by the agents before any group command) routes the service itself
    application = agent.url().application
    await registry.register_agent(agent.url())
    other = OPERATOR_DOC.replace(SERVICE, "com.example.Other")
    await registry.set_agent_command("some-other-app", OPERATOR_DOC)  # sends none of A's calls
    await registry.set_agent_command(application, other)  # covers another service only
    config = autopilot_config(
        embedded_url(db), tmp_path, telemetry=[{"type": "agents", "interval": 0.1}]
    )
    autopilot = await started(config)
    try:
        agent.series[0].rate = 150.0
        await wait_for(lambda: _moved_at_least(registry, 25), "the autopilot's shift")
        # the operator pins the service for this application's agents
        await registry.set_agent_command(application, OPERATOR_DOC)
        await wait_for(
            lambda: _moved_at_least(registry, 0, exact=True), "the autopilot's command removed"
        )
        await wait_until(
            lambda: any(
                d.rule == "operator" and application in d.detail for d in autopilot.log.recent
            ),
            "standing aside",
        )
        rounds = autopilot.rounds
        await wait_until(lambda: autopilot.rounds > rounds + 10, "more rounds")
        assert moved(await registry.get_command(GROUP_A)) == 0
        assert await registry.get_agent_command(application) == OPERATOR_DOC
        state = autopilot.snapshot()
        assert state["agentNodes"] == {application: OPERATOR_DOC}  # the watched ones
        # the operator clears it: the autopilot steers again
        await registry.set_agent_command(application, '{"clientCommandList":[]}')
        await wait_for(lambda: _moved_at_least(registry, 25), "the autopilot's shift again")
    finally:
        await autopilot.close()
