"""The policy: from the model of one service and the split in force, the next split.

Shares are whole percentages (what ``mergeGroups`` weights can express). For each source group
``A``, in the configured order, with ``f`` the share it sends away now:

* **need** = the share that brings A's *demand* down to the target level:
  ``1 - target * capacity / demand``, at most ``maxShare``. When A breaks its SLO and the rate
  asks for no more than ``f``, the need is ``f`` plus one step (the SLO guard), unless A
  itself takes calls from another group (then that group's split is what relieves A).
* **room** = what the other groups can take without going over their own warning level
  (their expected load without A's calls; groups that send traffic away themselves take
  nothing, groups that break their SLO take no more). A split over the room (by more than half
  the hysteresis, so that noise does not move it) is lowered (``receiver-guard``) once the
  lack of room has lasted ``guardAfter`` seconds, round after round: a single reading, such
  as the burst of a backlog a stalled agent serves at once, does not move traffic. The split
  is then lowered to the most the receivers could take at any round of that time; while the
  lack of room lasts it keeps following the room down, and it is not raised.
* **shift**: A's level is over the warning level (or its SLO is broken) and need > f: move up
  to one ``stepLimit`` towards the need, within the room (less the hysteresis once traffic
  moves), unless traffic was moved back less than ``cooldown`` seconds ago. Once traffic
  moves, a raise smaller than the hysteresis is not made.
* **return**: need < f - ``hysteresis``: move back up to one step, but only once A's
  demand level has stayed under the warning level for ``hold`` seconds (the surge has
  passed: a demand that wobbles around its peak, or dips for a moment, does not move
  traffic back and forth), ``hold`` seconds have passed since the last shift and
  ``cooldown`` since the last change.

The share sent away is divided between the receivers in proportion to their room. Nothing here
reads a clock or does I/O: ``now`` is given, :class:`Memory` carries the times of changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from motanmesh.autopilot.config import ServiceConfig
from motanmesh.autopilot.model import ServiceState, Split, expected_loads

__all__ = ["RULES", "Memory", "Outcome", "decide", "distribute", "own_split"]

RULES: Final = (
    "steady",
    "shift",
    "slo-guard",
    "return",
    "hold",
    "cooldown",
    "receivers-full",
    "receiver-guard",
    "stale",
    "operator",
)


@dataclass(slots=True)
class Memory:
    """When a source group's split last went up and down (the autopilot's clock)."""

    last_raise: float = -math.inf
    last_lower: float = -math.inf
    last_over: float = -math.inf  # the last round the source was over its warning level
    short_since: float | None = None  # since when the receivers lack room for the split
    short_cap: int = 0  # the most they could take at any round since then (percent)


@dataclass(frozen=True, slots=True)
class Outcome:
    source: str
    rule: str
    detail: str
    before: dict[str, int]
    after: dict[str, int]

    @property
    def changed(self) -> bool:
        return self.before != self.after


def own_split(group: str) -> dict[str, int]:
    return {group: 100}


def distribute(source: str, share: int, room: dict[str, float]) -> dict[str, int]:
    """``share`` percent of ``source``'s calls divided between receivers in proportion to
    their room (largest remainder), the rest kept by ``source``."""
    total = sum(room.values())
    result = {source: 100 - share}
    if share <= 0 or total <= 0:
        return own_split(source)
    exact = {g: share * r / total for g, r in room.items()}
    floors = {g: math.floor(v) for g, v in exact.items()}
    left = share - sum(floors.values())
    for g in sorted(exact, key=lambda g: exact[g] - floors[g], reverse=True)[:left]:
        floors[g] += 1
    result.update({g: v for g, v in floors.items() if v > 0})
    return result


def _share(room: dict[str, float], demand: float) -> int:
    """The whole percentage of ``demand`` that ``room`` can take."""
    if demand > 0:
        return math.floor(100 * sum(room.values()) / demand + 1e-9)
    return 100 if room else 0


def _sent(source: str, shares: dict[str, int]) -> int:
    return 100 - shares.get(source, 100)


def decide(
    config: ServiceConfig, state: ServiceState, split: Split, memory: dict[str, Memory], now: float
) -> list[Outcome]:
    """One outcome per source group; ``split`` is not changed (the result's ``after`` is)."""
    policy = config.policy
    working: Split = {g: dict(split.get(g) or own_split(g)) for g in config.groups}
    demand = {g: s.demand for g, s in state.groups.items()}
    step = max(1, round(policy.step_limit * 100))
    max_pct = round(policy.max_share * 100)
    hysteresis = round(policy.hysteresis * 100)
    outcomes: list[Outcome] = []
    for source in config.groups:
        me = state.groups[source]
        mem = memory.setdefault(source, Memory())
        before = working[source]
        f = _sent(source, before)
        # room at the receivers, without this source's calls
        without = dict(working)
        without[source] = own_split(source)
        base = expected_loads(config.groups, demand, without)
        room: dict[str, float] = {}  # calls/s each receiver can take
        healthy: dict[str, float] = {}  # the same, without receivers that break their SLO
        for g in config.groups:
            other = state.groups[g]
            if g == source or other.capacity <= 0 or _sent(g, working[g]) > 0:
                continue
            free = policy.warning * other.capacity - base[g]
            if free > 0:
                room[g] = free
                if not other.slo_breach:
                    healthy[g] = free
        cap = min(max_pct, _share(room, me.demand))
        roomy = _share(healthy, me.demand)
        receiving = any(
            _sent(g, working[g]) > 0 and working[g].get(source, 0) > 0 for g in config.groups
        )
        if me.capacity > 0 and me.demand > 0:
            need = math.ceil(100 * (1 - policy.target * me.capacity / me.demand) - 1e-9)
        else:
            need = max_pct if me.demand > 0 else 0
        need = max(0, min(need, max_pct))
        over = me.demand_level > policy.warning
        rule, detail = "steady", ""
        if me.slo_breach and need <= f and not receiving:
            # the SLO guard; a group that takes others' calls is relieved by them instead
            need = min(max_pct, f + step)
            over = True
        if over:
            mem.last_over = now
        target_pct = f
        level = f"demand level {me.demand_level:.2f}"
        short = f > cap + max(1, hysteresis // 2)  # the receivers lack room for the split
        if not short:
            mem.short_since = None
        if short:
            if mem.short_since is None:
                mem.short_since, mem.short_cap = now, cap
            mem.short_cap = max(mem.short_cap, cap)
            lasted = now - mem.short_since
            if lasted >= policy.guard_after:
                target_pct = max(0, mem.short_cap)
                mem.short_cap = cap  # from now on the room of the rounds to come
                rule = "receiver-guard"
                detail = (
                    f"receivers can take only {cap}% of {source}'s calls "
                    f"(at most {target_pct}% for {lasted:.1f}s)"
                )
            else:
                rule = "receivers-full"
                detail = (
                    f"receivers can take only {cap}% of {source}'s calls; keeping {f}% "
                    f"unless that lasts {policy.guard_after:g}s"
                )
        elif over and need > f:
            if now - mem.last_lower < policy.cooldown:
                rule, detail = "cooldown", f"{level} > warning, but traffic moved back recently"
            else:
                # raise only within the room less the hysteresis, so that noise in the
                # receivers' demand does not trip the receiver guard right after
                room_limit = roomy - hysteresis if f else roomy
                target_pct = min(need, f + step, max_pct, room_limit)
                if f > 0 and target_pct < f + max(1, hysteresis):
                    target_pct = f  # less than the hysteresis more: not worth a change
                if target_pct <= f:
                    target_pct = f
                    rule = "receivers-full"
                    detail = f"{level} > warning {policy.warning:g}; receivers have no room"
                elif me.slo_breach:
                    rule, detail = "slo-guard", f"{source}: {me.slo_breach}"
                else:
                    rule = "shift"
                    detail = f"{level} > warning {policy.warning:g}; need {need}% moved"
        elif need < f - hysteresis or (need == 0 < f):
            if over:
                # the surge has not passed: noise in the demand must not move traffic back
                # and forth (the split changes direction once per surge)
                detail = f"{level} > warning; keeping {f}% moved until the surge passes"
            elif now - max(mem.last_raise, mem.last_over) < policy.hold:
                # a dip of the demand (a client stalled for a moment) is not the end of the
                # surge: it must stay under the warning level for ``hold`` seconds
                rule, detail = "hold", f"{level}; holding the shift for {policy.hold:g}s"
            elif now - max(mem.last_raise, mem.last_lower) < policy.cooldown:
                rule, detail = "cooldown", f"{level}; waiting {policy.cooldown:g}s between steps"
            else:
                target_pct = max(need, f - step)
                rule, detail = "return", f"{level}; need only {need}% moved"
        elif over:
            detail = f"{level} > warning; {f}% moved already covers the need ({need}%)"
        after = before
        if target_pct != f:
            if target_pct <= 0:
                after = own_split(source)
            elif target_pct < f:  # scale the receivers down, never add one
                current = {g: float(p) for g, p in before.items() if g != source and p > 0}
                after = distribute(source, target_pct, current)
            else:
                after = distribute(source, target_pct, healthy or room)
            if target_pct > f:
                mem.last_raise = now
            else:
                mem.last_lower = now
            working[source] = after
        outcomes.append(Outcome(source, rule, detail, dict(before), dict(after)))
    return outcomes
