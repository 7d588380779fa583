"""The capacity model: per service and IDC group, demand, capacity and water levels.

* capacity = calls/s one instance serves (declared) * instances available in the group (read
  from the registry, or fixed in the config);
* demand = calls/s the group's client agents send (where the load starts, so moving traffic
  does not hide the load that caused it);
* expected load = what lands on the group under the split in force: its own demand minus what
  it sends away, plus what other groups send to it;
* water level = load ÷ capacity: measured at the group's server agents when they report, else
  the expected load; the demand level (demand ÷ capacity) drives the policy;
* SLO guard: the servers' p99 latency or failed-call ratio over its limit counts as being over
  the warning level whatever the rate says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from motanmesh.autopilot.config import ServiceConfig
from motanmesh.autopilot.store import Rates

__all__ = ["GroupState", "ServiceState", "Split", "build_state", "expected_loads"]

Split = dict[str, dict[str, int]]
"""Per source group, the percentage of its calls each group receives (sums to 100)."""


@dataclass(frozen=True, slots=True)
class GroupState:
    group: str
    instances: int
    capacity: float
    demand: float
    load: float
    measured: bool
    p99: float | None
    error_ratio: float
    slo_breach: str

    @property
    def demand_level(self) -> float:
        return (
            self.demand / self.capacity if self.capacity > 0 else (0.0 if not self.demand else 9.99)
        )

    @property
    def level(self) -> float:
        return self.load / self.capacity if self.capacity > 0 else (0.0 if not self.load else 9.99)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "instances": self.instances,
            "capacity": round(self.capacity, 3),
            "demand": round(self.demand, 3),
            "load": round(self.load, 3),
            "measured": self.measured,
            "demandLevel": round(self.demand_level, 4),
            "level": round(self.level, 4),
            "p99": None if self.p99 is None else round(self.p99, 4),
            "errorRatio": round(self.error_ratio, 5),
            "sloBreach": self.slo_breach,
        }


@dataclass(frozen=True, slots=True)
class ServiceState:
    service: str
    groups: dict[str, GroupState]

    def to_dict(self) -> dict[str, Any]:
        return {g: s.to_dict() for g, s in self.groups.items()}


def expected_loads(
    groups: tuple[str, ...], demand: Mapping[str, float], split: Split
) -> dict[str, float]:
    """What lands on each group when each source sends its demand by ``split``."""
    loads = dict.fromkeys(groups, 0.0)
    for source in groups:
        shares = split.get(source) or {source: 100}
        for dest, pct in shares.items():
            if dest in loads:
                loads[dest] += demand.get(source, 0.0) * pct / 100.0
    return loads


def _slo_breach(config: ServiceConfig, served: Rates) -> str:
    slo = config.slo
    if served.calls < slo.min_rate:
        return ""
    if slo.p99 > 0 and served.p99 is not None and served.p99 > slo.p99:
        return f"p99 {served.p99 * 1000:.0f}ms > {slo.p99 * 1000:.0f}ms"
    if slo.error_ratio > 0 and served.error_ratio > slo.error_ratio:
        return f"failed calls {served.error_ratio:.2%} > {slo.error_ratio:.2%}"
    return ""


def build_state(
    config: ServiceConfig,
    instances: Mapping[str, int],
    demand: Mapping[str, Rates],
    served: Mapping[str, Rates],
    split: Split,
) -> ServiceState:
    """The model of one service from its telemetry, instance counts and split in force."""
    demands = {g: demand[g].calls if g in demand else 0.0 for g in config.groups}
    expected = expected_loads(config.groups, demands, split)
    states: dict[str, GroupState] = {}
    for group in config.groups:
        count = config.capacity.instances.get(group, instances.get(group, 0))
        rates = served.get(group) or Rates()
        measured = rates.origins > 0
        states[group] = GroupState(
            group=group,
            instances=count,
            capacity=config.capacity.per_instance_of(group) * count,
            demand=demands[group],
            load=rates.calls if measured else expected[group],
            measured=measured,
            p99=rates.p99,
            error_ratio=rates.error_ratio,
            slo_breach=_slo_breach(config, rates),
        )
    return ServiceState(config.service, states)
