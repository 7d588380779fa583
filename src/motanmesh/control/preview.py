"""What a client would get: the effective command of one refer and the providers it leads to.

:func:`preview` reads the agent command (when an application is given) and the service
command of the refer's group (or takes a proposed document instead), works out the effective
command exactly as an agent does (``effective_command``), discovers the providers of every
group involved in the registry, and applies merge groups and route rules for a client at a
given IP. :func:`traffic_shares` turns the result into the share of calls per group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from motanmesh.cluster.command import (
    CommandDocument,
    EffectiveCommand,
    effective_command,
)
from motanmesh.cluster.group_weights import parse_group_weights
from motanmesh.cluster.patterns import PatternError, PatternMode, parse_route_rule
from motanmesh.registry.base import Registry
from motanmesh.url import URL

__all__ = ["Preview", "RouteCheck", "preview", "traffic_shares"]


@dataclass(frozen=True, slots=True)
class RouteCheck:
    """One route rule as seen by the client: whether it applies, how many providers it kept."""

    rule: str
    applies: bool
    kept: int | None = None
    error: str = ""


@dataclass(slots=True)
class Preview:
    """The outcome for one client of one refer (see :func:`preview`)."""

    service: str
    group: str
    client_ip: str
    effective: EffectiveCommand
    providers_by_group: dict[str, list[URL]]
    providers: list[URL]
    routes: list[RouteCheck] = field(default_factory=list)
    route_fallback: bool = False
    shares: dict[str, float] = field(default_factory=dict)

    @property
    def groups(self) -> list[str]:
        """The groups the client serves from (the own group when no command merges)."""
        return self.effective.merge_groups or [self.group]

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "group": self.group,
            "clientIp": self.client_ip,
            "effective": self.effective.to_info(),
            "groups": self.groups,
            "providersByGroup": {
                g: [u.address for u in urls] for g, urls in self.providers_by_group.items()
            },
            "providers": [{"address": u.address, "group": u.group} for u in self.providers],
            "routeRules": [
                {"rule": r.rule, "applies": r.applies, "kept": r.kept, "error": r.error}
                for r in self.routes
            ],
            "routeFallback": self.route_fallback,
            "trafficShares": self.shares,
        }

    def lines(self) -> list[str]:
        """The preview for people."""
        e = self.effective
        out = [f"service {self.service}, group {self.group}, client {self.client_ip}"]
        if e.degraded and e.degrade is not None:
            out.append(f"  DEGRADED by {e.degrade.describe()}: every call fails fast")
        if e.traffic is not None:
            out.append(f"  traffic control: {e.traffic.describe()}")
        else:
            out.append("  traffic control: none (own group only)")
        out.append(f"  groups: {', '.join(self.groups)}")
        if e.weights:
            out.append(f"  weights: {e.weights}")
        for route in self.routes:
            if route.error:
                out.append(f"  route {route.rule!r}: skipped ({route.error})")
            elif route.applies:
                out.append(f"  route {route.rule!r}: applies, keeps {route.kept} provider(s)")
            else:
                out.append(f"  route {route.rule!r}: does not apply to {self.client_ip}")
        if self.route_fallback:
            out.append("  route rules leave no provider: the unfiltered list is used")
        if e.switchers:
            values = ", ".join(f"{k}={'true' if v else 'false'}" for k, v in e.switchers.items())
            out.append(f"  switchers: {values}")
        out.extend(f"  note: {note}" for note in e.notes)
        for group, urls in self.providers_by_group.items():
            addresses = ", ".join(u.address for u in urls) or "none"
            out.append(f"  registered in {group}: {addresses}")
        out.append(f"  providers for this client ({len(self.providers)}):")
        for url in self.providers:
            out.append(f"    {url.address} ({url.group})")
        if self.shares:
            shares = ", ".join(f"{g} {s:.0%}" for g, s in self.shares.items())
            out.append(f"  traffic: {shares}")
        return out


def traffic_shares(weights: str, providers: Sequence[URL]) -> dict[str, float]:
    """The share of calls each group gets from ``providers`` under ``weights``.

    Weighted groups that have providers split the calls by weight (a group with providers but
    no weight gets none); without weights (or when no weighted group has providers) every
    provider gets an equal part.
    """
    counts: dict[str, int] = {}
    for url in providers:
        counts[url.group] = counts.get(url.group, 0) + 1
    if not counts:
        return {}
    parsed = parse_group_weights(weights) if weights else None
    if parsed:
        slots = {g: parsed[g] for g in counts if parsed.get(g, 0) > 0}
        if slots:
            total = sum(slots.values())
            return {g: slots.get(g, 0) / total for g in counts}
    total = sum(counts.values())
    return {g: n / total for g, n in counts.items()}


def _route_checks(
    rules: Sequence[str], client_ip: str, candidates: list[URL]
) -> tuple[list[RouteCheck], list[URL]]:
    checks: list[RouteCheck] = []
    kept = list(candidates)
    for text in rules:
        try:
            rule = parse_route_rule(text)
        except PatternError as exc:
            checks.append(RouteCheck(text, False, None, str(exc)))
            continue
        if rule.applies_to(client_ip):
            kept = [u for u in kept if rule.keeps(u.host)]
            checks.append(RouteCheck(text, True, len(kept)))
        else:
            checks.append(RouteCheck(text, False))
    return checks, kept


async def preview(
    registry: Registry,
    service: str,
    group: str,
    client_ip: str,
    *,
    application: str = "",
    service_command: str | CommandDocument | None = None,
    use_stored: bool = True,
    mix_groups: Sequence[str] = (),
    pattern_mode: PatternMode = "auto",
) -> Preview:
    """The effective command and provider list of refer ``service``/``group`` for a client at
    ``client_ip``.

    The service command is ``service_command`` when given (a proposed document), else the
    group's stored command (when ``use_stored``). The agent command of ``application`` is read
    when an application is given. ``mix_groups`` is the refer's static ``mixGroups``.
    """
    agent_text = await registry.get_agent_command(application) if application else None
    if service_command is None and use_stored:
        service_command = await registry.get_command(group)
    params = {"mixGroups": ",".join(mix_groups)} if mix_groups else {}
    refer = URL("motan2", path=service, group=group, parameters=params)
    effective = effective_command(refer, agent_text, service_command, pattern_mode=pattern_mode)
    groups = list(effective.merge_groups or [group])
    if group not in groups:
        groups.append(group)
    by_group: dict[str, list[URL]] = {}
    for name in groups:
        by_group[name] = await registry.discover(refer.copy(group=name))
    final = effective.providers(by_group, client_ip)
    checks, kept = _route_checks(effective.route_rules, client_ip, _candidates(effective, by_group))
    fallback = bool(effective.route_rules) and not kept and bool(final)
    return Preview(
        service=service,
        group=group,
        client_ip=client_ip,
        effective=effective,
        providers_by_group=by_group,
        providers=final,
        routes=checks,
        route_fallback=fallback,
        shares=traffic_shares(effective.weights, final),
    )


def _candidates(effective: EffectiveCommand, by_group: Mapping[str, list[URL]]) -> list[URL]:
    groups = effective.merge_groups if effective.merge_groups is not None else [effective.group]
    found = [u for g in groups for u in by_group.get(g, ())]
    return found or list(by_group.get(effective.group, ()))
