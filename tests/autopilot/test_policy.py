"""The policy alone: shares from demand, capacity and the split in force (no I/O, no clock)."""

from __future__ import annotations

import random
from itertools import pairwise

from motanmesh.autopilot.config import CapacityConfig, PolicyConfig, ServiceConfig, SloConfig
from motanmesh.autopilot.model import Split, build_state
from motanmesh.autopilot.policy import Memory, Outcome, decide, distribute
from motanmesh.autopilot.store import Rates

A, B, C = "rpc-a", "rpc-b", "rpc-c"


def service(groups: tuple[str, ...] = (A, B), **policy: float) -> ServiceConfig:
    settings = {"hold": 10.0, "cooldown": 2.0, **policy}
    return ServiceConfig(
        service="S",
        groups=groups,
        capacity=CapacityConfig(per_instance=100.0, instances=dict.fromkeys(groups, 1)),
        policy=PolicyConfig(**settings),
        slo=SloConfig(p99=0.5, error_ratio=0.01),
    )


def step(
    config: ServiceConfig,
    demand: dict[str, float],
    split: Split,
    memory: dict[str, Memory],
    now: float,
    served: dict[str, Rates] | None = None,
) -> dict[str, Outcome]:
    rates = {g: Rates(calls=d, origins=1) for g, d in demand.items()}
    state = build_state(config, {}, rates, served or {}, split)
    return {o.source: o for o in decide(config, state, split, memory, now)}


def run(
    config: ServiceConfig, demand_at: list[dict[str, float]], start: Split | None = None
) -> tuple[list[int], list[str]]:
    """Rounds one second apart; the split written each round is in force the next."""
    split: Split = dict(start or {})
    memory: dict[str, Memory] = {}
    moved, rules = [], []
    for t, demand in enumerate(demand_at):
        outcome = step(config, demand, split, memory, float(t))[A]
        split[A] = outcome.after
        moved.append(100 - outcome.after.get(A, 100))
        rules.append(outcome.rule)
    return moved, rules


def direction_changes(moved: list[int]) -> int:
    signs = [b - a for a, b in pairwise(moved) if b != a]
    return sum(1 for x, y in pairwise(signs) if (x > 0) != (y > 0))


def test_below_warning_nothing_moves() -> None:
    out = step(service(), {A: 79, B: 20}, {}, {}, 0.0)
    assert out[A].after == {A: 100}
    assert out[A].rule == "steady"


def test_over_warning_moves_towards_the_target_within_one_step() -> None:
    out = step(service(), {A: 120, B: 20}, {}, {}, 0.0)
    # need = 1 - 0.6 * 100 / 120 = 50%, one step is 25%
    assert out[A].rule == "shift"
    assert out[A].after == {A: 75, B: 25}
    out = step(service(step_limit=1.0), {A: 120, B: 20}, {}, {}, 0.0)
    assert out[A].after == {A: 50, B: 50}


def test_the_receiver_is_never_pushed_over_its_warning_level() -> None:
    # B can take 80 - 60 = 20 calls/s; A sends 200 calls/s: 10% at most
    out = step(service(step_limit=1.0, max_share=1.0), {A: 200, B: 60}, {}, {}, 0.0)
    assert out[A].after == {A: 90, B: 10}
    out = step(service(), {A: 200, B: 85}, {}, {}, 0.0)
    assert out[A].rule == "receivers-full"
    assert out[A].after == {A: 100}


def test_receiver_guard_lowers_a_split_when_the_lack_of_room_lasts() -> None:
    # B's own demand grows to 60, then 70 calls/s, and stays: the split of 25% no longer fits
    config = service(guard_after=4.0)
    memory: dict[str, Memory] = {}
    split: Split = {A: {A: 75, B: 25}}
    for t in range(4):  # 0..3 s: not yet lasted guardAfter
        out = step(config, {A: 120, B: 60 if t < 2 else 70}, split, memory, float(t))
        assert out[A].rule == "receivers-full", out[A]
        assert out[A].after == {A: 75, B: 25}
    out = step(config, {A: 120, B: 70}, split, memory, 4.0)
    assert out[A].rule == "receiver-guard"
    # lowered to the most B could take at any round of that time: 20 calls/s of 120
    assert out[A].after == {A: 84, B: 16}
    split[A] = out[A].after
    # the lack of room goes on: the split follows B's room (10 calls/s of 120) at once
    out = step(config, {A: 120, B: 70}, split, memory, 5.0)
    assert out[A].rule == "receiver-guard"
    assert out[A].after == {A: 92, B: 8}
    # with guardAfter 0 the split is lowered on the first reading
    out = step(service(guard_after=0.0), {A: 120, B: 70}, {A: {A: 75, B: 25}}, {}, 0.0)
    assert out[A].rule == "receiver-guard"
    assert out[A].after == {A: 92, B: 8}


def test_a_single_spike_does_not_lower_the_split() -> None:
    # A's surge settles at 50% moved; then, twice, a backlog served at once (a stalled agent)
    # makes A's measured demand, or B's, spike for two rounds: B's room reads under 50% of
    # A's calls, but only for less than guardAfter (5 s by default)
    surge = [{A: 120.0, B: 10.0}] * 10
    a_spike = [{A: 200.0, B: 10.0}] * 2
    b_spike = [{A: 120.0, B: 60.0}] * 3
    moved, rules = run(service(), surge + a_spike + surge + b_spike + surge)
    assert moved[9] == 50
    assert moved[9:] == [50] * len(moved[9:]), moved
    assert "receivers-full" in rules and "receiver-guard" not in rules
    assert direction_changes(moved) == 0


def test_max_share_caps_the_shift() -> None:
    moved, _ = run(service(max_share=0.3), [{A: 150, B: 0}] * 6)
    assert max(moved) == 30


def test_slo_guard_moves_traffic_when_latency_breaks_the_limit() -> None:
    served = {A: Rates(calls=50, p99=0.9, origins=1), B: Rates(calls=10, p99=0.02, origins=1)}
    out = step(service(), {A: 50, B: 10}, {}, {}, 0.0, served)
    assert out[A].rule == "slo-guard"
    assert out[A].after == {A: 75, B: 25}
    assert "p99" in out[A].detail
    # a receiver that breaks its own SLO takes nothing
    served[B] = Rates(calls=10, errors=1, origins=1)
    out = step(service(), {A: 50, B: 10}, {}, {}, 0.0, served)
    assert out[A].after == {A: 100}


def test_a_surge_moves_up_then_back_once_after_hold() -> None:
    surge: list[dict[str, float]] = (
        [{A: 60.0, B: 0.0}] * 3 + [{A: 130.0, B: 0.0}] * 8 + [{A: 40.0, B: 0.0}] * 20
    )
    moved, rules = run(service(max_share=0.8), surge)
    assert max(moved) == 50  # 25, then 50; the need, 54%, is within the hysteresis
    assert moved[-1] == 0
    assert direction_changes(moved) == 1
    first_lower = next(i for i in range(1, len(moved)) if moved[i] < moved[i - 1])
    last_raise = max(i for i in range(1, len(moved)) if moved[i] > moved[i - 1])
    assert first_lower - last_raise >= 10  # hold
    assert "hold" in rules and "return" in rules


def test_noisy_demand_does_not_flap() -> None:
    rng = random.Random(7)
    surge = [{A: 125 * rng.uniform(0.93, 1.07), B: 20} for _ in range(60)]
    moved, _ = run(service(), surge)
    assert moved[5] >= 40
    assert direction_changes(moved) <= 1
    assert all(m > 0 for m in moved[2:])


def test_a_source_that_ships_traffic_receives_none() -> None:
    config = service((A, B, C), step_limit=1.0)
    out = step(config, {A: 120, B: 130, C: 0}, {}, {}, 0.0)
    assert out[A].after.get(B, 0) == 0
    assert out[B].after.get(A, 0) == 0
    assert out[B].after.get(C, 0) > 0


def test_three_groups_share_in_proportion_to_their_room() -> None:
    out = step(service((A, B, C), step_limit=1.0), {A: 150, B: 40, C: 0}, {}, {}, 0.0)
    after = out[A].after
    assert sum(after.values()) == 100
    assert after[A] == 50
    assert after[C] > after[B] > 0  # C has 80 calls/s of room, B 40


def test_distribute_keeps_whole_percentages() -> None:
    assert distribute(A, 0, {B: 1.0}) == {A: 100}
    split = distribute(A, 33, {B: 1.0, C: 1.0})
    assert split[A] == 67 and split[B] + split[C] == 33


def test_no_demand_returns_everything_home() -> None:
    memory: dict[str, Memory] = {}
    out = step(service(hold=0, cooldown=0), {A: 0, B: 10}, {A: {A: 80, B: 20}}, memory, 100.0)
    assert out[A].rule == "return"
    assert out[A].after == {A: 100}


def test_a_wobbling_surge_is_not_moved_back_before_it_passes() -> None:
    # +-25% noise around 115% of capacity: the need swings between 40% and 60%, but traffic
    # goes back only once the demand level is under the warning level
    rng = random.Random(11)
    surge = [{A: 115 * rng.uniform(0.75, 1.25), B: 10} for _ in range(60)]
    fall = [{A: 35.0 * rng.uniform(0.9, 1.1), B: 10} for _ in range(40)]
    moved, rules = run(service(hold=5.0, cooldown=1.0, max_share=0.6), surge + fall)
    assert max(moved[:60]) >= 40
    assert direction_changes(moved) == 1
    assert moved[-1] == 0 and "return" in rules[60:]


def test_a_dip_in_the_demand_is_not_the_end_of_the_surge() -> None:
    # a client stalls for 3 s in the middle of a surge: its measured demand dips under the
    # warning level, then comes back; the shift is held until the demand has stayed low
    # for ``hold`` seconds
    surge = [{A: 120.0, B: 10.0}] * 15
    dip = [{A: 40.0, B: 10.0}] * 3
    moved, rules = run(
        service(hold=5.0, cooldown=1.0),
        surge + dip + surge + [{A: 30.0, B: 10.0}] * 30,
    )
    assert max(moved) >= 40
    assert direction_changes(moved) == 1, moved
    assert moved[-1] == 0
    first_return = rules.index("return")
    last_over = len(surge) * 2 + len(dip) - 1
    assert first_return >= last_over + 5  # held for ``hold`` after the real fall
