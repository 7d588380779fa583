"""The autopilot service: telemetry in, decisions out, commands written by the leader.

Every ``interval`` seconds one round runs: rates over the last ``window`` seconds from the
telemetry store, the capacity model of every service, the policy, and, when this instance is
the leader and not in dry-run mode, the commands. Stale or missing telemetry freezes every
split in force (no new shifts) and says so in the decision log.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from motanmesh.autopilot.commands import (
    CommandWriter,
    NodeView,
    OperatorCommandError,
    UnreadableCommandError,
    inspect_node,
)
from motanmesh.autopilot.config import AutopilotConfig, ServiceConfig
from motanmesh.autopilot.decisions import Decision, DecisionLog
from motanmesh.autopilot.graphite import GraphiteReceiver
from motanmesh.autopilot.leader import Leadership, create_leadership
from motanmesh.autopilot.model import ServiceState, Split, build_state
from motanmesh.autopilot.policy import Memory, Outcome, decide, own_split
from motanmesh.autopilot.prometheus import AgentScraper, PromQLSource
from motanmesh.autopilot.store import Rates, TelemetryStore
from motanmesh.cluster.command import ClientCommand
from motanmesh.control.commands import ConcurrentChangeError
from motanmesh.registry.base import Registry, RegistryError
from motanmesh.registry.factory import create_registry
from motanmesh.url import URL

__all__ = ["Autopilot", "Source"]

log = logging.getLogger("motanmesh.autopilot")

Source = AgentScraper | PromQLSource | GraphiteReceiver
INSTANCES_EVERY = 5.0


@dataclass
class _ServiceRuntime:
    config: ServiceConfig
    memory: dict[str, Memory] = field(default_factory=dict)
    instances: dict[str, int] = field(default_factory=dict)
    last: dict[str, tuple[str, dict[str, int]]] = field(default_factory=dict)
    state: ServiceState | None = None
    split: Split = field(default_factory=dict)
    rules: dict[str, Outcome] = field(default_factory=dict)
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=600))
    breach_since: dict[str, float] = field(default_factory=dict)


class Autopilot:
    def __init__(
        self,
        config: AutopilotConfig,
        *,
        registry: Registry | None = None,
        leadership: Leadership | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clock, self.wall = clock, wall
        self.registry = registry or create_registry(config.registry)
        self._own_registry = registry is None
        self.leadership = leadership or create_leadership(
            config.registry, config.name, config.leader_ttl
        )
        self.store = TelemetryStore(keep=max(60.0, config.window * 4, config.stale_after * 2))
        self.writer = CommandWriter(self.registry, dry_run=config.dry_run)
        self.log = DecisionLog(config.decision_log)
        self.services = {s.service: _ServiceRuntime(s) for s in config.services}
        self.sources: list[Source] = self._sources()
        self.nodes: dict[str, str | None] = {}
        #: agent-level command nodes (``/motan/agent/<application>/command``) by application,
        #: and the application of each agent found through the registry, by address
        self.agent_commands: dict[str, str | None] = {}
        self.agent_apps: dict[str, str] = {}
        self._agent_level = False  # whether any agent command is non-empty (this round)
        self.stale = ""
        self.rounds = 0
        self.round_seconds = 0.0
        self._instances_at = -1e18
        self._task: asyncio.Task[None] | None = None
        history = config.console.history
        for runtime in self.services.values():
            runtime.history = deque(maxlen=max(10, int(history / config.interval) + 1))

    # ------------------------------------------------------------------ wiring

    def _sources(self) -> list[Source]:
        names = {n for s in self.config.services for n in (s.service, *s.groups)}
        sources: list[Source] = []
        for sc in self.config.sources:
            if sc.type == "agents":
                sources.append(
                    AgentScraper(
                        self.store,
                        targets=sc.targets,
                        discover=self._agent_addresses if sc.discover else None,
                        path=sc.path,
                        interval=sc.interval,
                        timeout=sc.timeout,
                        clock=self.clock,
                    )
                )
            elif sc.type == "prometheus":
                sources.append(
                    PromQLSource(
                        self.store,
                        sc.url,
                        interval=sc.interval,
                        timeout=sc.timeout,
                        clock=self.clock,
                    )
                )
            else:
                sources.append(
                    GraphiteReceiver(
                        self.store,
                        names,
                        host=sc.host,
                        port=sc.port,
                        period=sc.period,
                        clock=self.clock,
                    )
                )
        return sources

    async def _agent_addresses(self) -> list[str]:
        return [u.address for u in await self.registry.agent_nodes()]

    def _on_agent_command(self, application: str) -> Callable[[str | None], None]:
        def listener(value: str | None) -> None:
            self.agent_commands[application] = value

        return listener

    async def _refresh_agents(self) -> None:
        """Learn the agents' applications from their nodes and watch each application's
        agent-level command (its agents obey it before any group command)."""
        if not self.registry.supports_commands:
            return
        try:
            nodes = await self.registry.agent_nodes()
        except RegistryError as exc:
            log.warning("autopilot: cannot list agent nodes: %s", exc)
            return
        for url in nodes:
            application = url.application
            if not application:
                continue
            self.agent_apps[url.address] = application
            if application not in self.agent_commands:
                self.agent_commands[application] = None
                try:
                    await self.registry.subscribe_agent_command(
                        application, self._on_agent_command(application)
                    )
                except RegistryError as exc:
                    del self.agent_commands[application]
                    log.warning("autopilot: cannot watch agent command of %s: %s", application, exc)

    def agent_operator(self, group: str, service: str) -> tuple[str, ClientCommand] | None:
        """An operator's agent-level traffic command covering ``service`` in force at client
        agents that send ``group``'s calls: (application, command), or None."""
        if not self._agent_level:
            return None  # no agent command anywhere (the common case, kept cheap)
        apps = {
            self.agent_apps[o] for o in self.store.senders(group, service) if o in self.agent_apps
        }
        for application in sorted(apps):
            view = inspect_node(self.agent_commands.get(application), group, service)
            if view.operator is not None:
                return application, view.operator
        return None

    def _groups(self) -> set[str]:
        return {g for s in self.config.services for g in s.groups}

    def _on_node(self, group: str) -> Callable[[str | None], None]:
        def listener(value: str | None) -> None:
            self.nodes[group] = value

        return listener

    async def start(self) -> None:
        if self._own_registry:
            await self.registry.start()
        for group in sorted(self._groups()):
            self.nodes.setdefault(group, None)
            await self.registry.subscribe_command(group, self._on_node(group))
        for source in self.sources:
            await source.start()
        await self.leadership.start()
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.leadership.close()
        for source in self.sources:
            await source.close()
        if self._own_registry:
            await self.registry.close()

    async def _run(self) -> None:
        while True:
            started = self.clock()
            try:
                await self.evaluate()
            except Exception:
                log.exception("autopilot: evaluation round failed")
            await asyncio.sleep(max(0.01, self.config.interval - (self.clock() - started)))

    # ------------------------------------------------------------------ one round

    async def _refresh_instances(self, now: float) -> None:
        if now - self._instances_at < INSTANCES_EVERY:
            return
        self._instances_at = now
        await self._refresh_agents()

        async def count(runtime: _ServiceRuntime, group: str) -> None:
            if group in runtime.config.capacity.instances:
                return
            try:
                found = await self.registry.discover(
                    URL("motan2", path=runtime.config.service, group=group)
                )
            except RegistryError as exc:
                log.warning("autopilot: cannot count instances of %s: %s", group, exc)
                return
            runtime.instances[group] = len(found)

        await asyncio.gather(
            *(count(r, g) for r in self.services.values() for g in r.config.groups)
        )

    def problem(self, now: float) -> str:
        for source in self.sources:
            reason = source.problem(now, self.config.stale_after)
            if reason:
                return f"telemetry stale: {source.name}: {reason}"
        return ""

    async def evaluate(self) -> list[Decision]:
        """One round over every service; returns the decisions recorded."""
        started = time.perf_counter()
        now = self.clock()
        self.store.prune(now)
        await self._refresh_instances(now)
        self.stale = self.problem(now)
        self._agent_level = any(self.agent_commands.values())
        recorded: list[Decision] = []
        for runtime in self.services.values():
            recorded.extend(await self._evaluate_service(runtime, now))
        self.rounds += 1
        self.round_seconds = time.perf_counter() - started
        return recorded

    def model(self, runtime: _ServiceRuntime, now: float) -> tuple[ServiceState, Split]:
        config = runtime.config
        window = self.config.window
        split: Split = {}
        for group in config.groups:
            view = inspect_node(self.nodes.get(group), group, config.service)
            split[group] = view.split or own_split(group)
        demand: dict[str, Rates] = {}
        served: dict[str, Rates] = {}
        for group in config.groups:
            age = self.config.stale_after
            demand[group] = self.store.demand(group, config.service, now, window, age)
            served[group] = self.store.served(group, config.service, now, window, age)
        state = build_state(config, runtime.instances, demand, served, split)
        return self._sustained(runtime, state, now), split

    @staticmethod
    def _sustained(runtime: _ServiceRuntime, state: ServiceState, now: float) -> ServiceState:
        """An SLO breach counts once it has lasted ``slo.sustain`` seconds (one slow
        scrape window is not an overload)."""
        groups = dict(state.groups)
        for group, gs in state.groups.items():
            if not gs.slo_breach:
                runtime.breach_since.pop(group, None)
                continue
            since = runtime.breach_since.setdefault(group, now)
            if now - since < runtime.config.slo.sustain:
                groups[group] = dataclasses.replace(gs, slo_breach="")
        return ServiceState(state.service, groups)

    async def _evaluate_service(self, runtime: _ServiceRuntime, now: float) -> list[Decision]:
        config = runtime.config
        state, split = self.model(runtime, now)
        runtime.state, runtime.split = state, split
        operators: dict[str, NodeView] = {}
        for group in config.groups:
            view = inspect_node(self.nodes.get(group), group, config.service)
            if view.operator is not None:
                operators[group] = view
        if self.stale:
            outcomes = [
                Outcome(g, "stale", f"{self.stale}; split frozen", split[g], split[g])
                for g in config.groups
            ]
        else:
            outcomes = decide(config, state, split, runtime.memory, now)
        decisions: list[Decision] = []
        leader = self.leadership.is_leader
        for proposed in outcomes:
            group = proposed.source
            found = operators.get(group)
            outcome = proposed
            agent_level = self.agent_operator(group, config.service)
            if found is not None and found.operator is not None:
                outcome = Outcome(
                    group,
                    "operator",
                    f"an operator's command (index {found.operator.index}) covers this "
                    "service; standing aside",
                    split[group],
                    split[group],
                )
            elif agent_level is not None:
                # the agents of that application obey it before the group's command: the
                # autopilot's split would not reach them, and their calls would land where
                # its model does not expect them; it takes its own command back
                application, command = agent_level
                outcome = Outcome(
                    group,
                    "operator",
                    f"an operator's agent-level command for {application} (index "
                    f"{command.index}) covers this service; standing aside",
                    split[group],
                    own_split(group),
                )
            runtime.rules[group] = outcome
            must_clean = found is not None and found.split is not None
            last = runtime.last.get(group)
            if not outcome.changed and not must_clean:
                if last == (outcome.rule, outcome.after):
                    continue  # nothing new: no record (the common case, kept cheap)
                decision = self._decision(runtime, state, outcome, leader)
            else:
                decision = await self._write(runtime, state, outcome, leader)
            if last != (outcome.rule, outcome.after) or decision.written or decision.error:
                runtime.last[group] = (outcome.rule, outcome.after)
                self.log.record(decision)
                decisions.append(decision)
                log.info(
                    "autopilot: %s %s %s: %s", config.service, group, outcome.rule, outcome.detail
                )
        runtime.history.append(self._point(runtime, state))
        return decisions

    def _decision(
        self, runtime: _ServiceRuntime, state: ServiceState, outcome: Outcome, leader: bool
    ) -> Decision:
        return Decision(
            time=self.wall(),
            service=runtime.config.service,
            group=outcome.source,
            rule=outcome.rule,
            detail=outcome.detail,
            before=outcome.before,
            after=outcome.after,
            inputs=state.to_dict(),
            dry_run=self.config.dry_run,
            leader=leader,
        )

    async def _write(
        self, runtime: _ServiceRuntime, state: ServiceState, outcome: Outcome, leader: bool
    ) -> Decision:
        decision = self._decision(runtime, state, outcome, leader)
        if not leader:
            return decision
        remark = ", ".join(f"{g} {p}%" for g, p in outcome.after.items())
        remark = f"{remark} ({outcome.rule}: {outcome.detail})"
        try:
            result = await self.writer.apply(
                outcome.source, runtime.config.service, outcome.after, remark
            )
        except OperatorCommandError as exc:
            decision.detail = str(exc)
            return decision
        except (UnreadableCommandError, ConcurrentChangeError, RegistryError) as exc:
            decision.error = str(exc)
            log.warning("autopilot: %s %s: %s", runtime.config.service, outcome.source, exc)
            return decision
        except Exception as exc:  # the audit trail, a bad plan: logged, never fatal
            decision.error = f"{type(exc).__name__}: {exc}"
            log.exception("autopilot: write failed")
            return decision
        decision.command = result.after
        decision.written = result.written
        if result.written:
            self.nodes[outcome.source] = result.after
        return decision

    def _point(self, runtime: _ServiceRuntime, state: ServiceState) -> dict[str, Any]:
        return {
            "t": round(self.wall(), 3),
            "levels": {g: round(s.level, 4) for g, s in state.groups.items()},
            "demand": {g: round(s.demand_level, 4) for g, s in state.groups.items()},
            "split": {g: dict(runtime.split.get(g) or {}) for g in runtime.config.groups},
            "stale": bool(self.stale),
        }

    # ------------------------------------------------------------------ for the console

    def snapshot(self) -> dict[str, Any]:
        services = {}
        for name, runtime in self.services.items():
            state = runtime.state
            services[name] = {
                "groups": list(runtime.config.groups),
                "state": state.to_dict() if state else {},
                "split": runtime.split,
                "rules": {g: [o.rule, o.detail] for g, o in runtime.rules.items()},
                "history": list(runtime.history),
                "policy": {
                    "warning": runtime.config.policy.warning,
                    "target": runtime.config.policy.target,
                },
            }
        return {
            "name": self.config.name,
            "leader": self.leadership.is_leader,
            "election": self.leadership.describe(),
            "dryRun": self.config.dry_run,
            "stale": self.stale,
            "rounds": self.rounds,
            "services": services,
            "nodes": dict(self.nodes),
            "agentNodes": {a: raw for a, raw in sorted(self.agent_commands.items()) if raw},
            "decisions": [d.to_dict() for d in list(self.log.recent)[-50:]],
        }
