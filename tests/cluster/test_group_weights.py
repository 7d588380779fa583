from __future__ import annotations

import random
from collections import Counter

import pytest

from motanmesh.cluster.group_weights import GroupWeightedLoadBalancer, parse_group_weights
from motanmesh.cluster.lb import RoundRobinLoadBalancer
from motanmesh.url import URL
from tests.cluster.endpoints import TestEndpoint, request

FRAME = request()
REFER = URL("motan2", "", 0, "svc.Demo", "g1")


def members(group: str, n: int, subnet: int) -> list[TestEndpoint]:
    return [TestEndpoint(f"10.{subnet}.0.{i + 1}", 8002, group=group) for i in range(n)]


def groups_of(lb: GroupWeightedLoadBalancer, n: int) -> Counter[str]:
    out: Counter[str] = Counter()
    for _ in range(n):
        ep = lb.select(FRAME)
        assert ep is not None
        out[ep.url.group] += 1
    return out


def balancer(weights: str, *groups: tuple[str, int]) -> GroupWeightedLoadBalancer:
    lb = GroupWeightedLoadBalancer(REFER, random.Random(7))
    eps = [ep for i, (g, n) in enumerate(groups) for ep in members(g, n, i + 1)]
    lb.on_refresh(eps)
    lb.set_weight(weights)
    return lb


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("g1,g2", None),
        ("g1:8,g2:2", {"g1": 8, "g2": 2}),
        (" g1 : 8 , g2:2 ,", {"g1": 8, "g2": 2}),
        ("g1:8,g2", {"g1": 8, "g2": 1}),
        ("g1:x,g2:3", {"g1": 1, "g2": 3}),
        ("g1:0,g2:500,g3:-4", {"g1": 1, "g2": 100, "g3": 1}),
        (":5,g2:3", {"g2": 3}),
    ],
)
def test_parse_group_weights(text: str, expected: dict[str, int] | None) -> None:
    assert parse_group_weights(text) == expected


def test_8_to_2_is_exactly_4_to_1_per_turn() -> None:
    lb = balancer("g1:8,g2:2", ("g1", 3), ("g2", 3))
    assert sorted(lb.ring) == ["g1"] * 4 + ["g2"]
    for _ in range(20):
        assert groups_of(lb, 5) == Counter({"g1": 4, "g2": 1})


def test_weights_are_divided_by_their_gcd() -> None:
    lb = balancer("g1:30,g2:20,g3:10", ("g1", 1), ("g2", 1), ("g3", 1))
    assert Counter(lb.ring) == Counter({"g1": 3, "g2": 2, "g3": 1})
    assert groups_of(lb, 60) == Counter({"g1": 30, "g2": 20, "g3": 10})


def test_weights_are_clamped() -> None:
    lb = balancer("g1:1000,g2:0", ("g1", 2), ("g2", 2))
    assert Counter(lb.ring) == Counter({"g1": 100, "g2": 1})
    assert groups_of(lb, 101) == Counter({"g1": 100, "g2": 1})


def test_a_group_without_weight_gets_no_slot() -> None:
    lb = balancer("g1:1,g2:1", ("g1", 2), ("g2", 2), ("g3", 2))
    counts = groups_of(lb, 100)
    assert counts == Counter({"g1": 50, "g2": 50})


def test_weights_of_groups_without_endpoints_are_ignored() -> None:
    lb = balancer("g1:3,g9:7", ("g1", 2), ("g2", 2))
    assert lb.ring == ["g1"]
    assert groups_of(lb, 10) == Counter({"g1": 10})


def test_no_weighted_group_present_serves_every_endpoint() -> None:
    lb = balancer("g8:3,g9:7", ("g1", 2), ("g2", 2))
    assert lb.ring == []
    assert set(groups_of(lb, 200)) == {"g1", "g2"}


@pytest.mark.parametrize("weights", ["", "g1,g2", "g1"])
def test_no_weights_or_mix_mode_is_one_pool(weights: str) -> None:
    lb = balancer(weights, ("g1", 2), ("g2", 2), ("g3", 2))
    assert lb.weights is None
    assert lb.ring == []
    assert set(groups_of(lb, 300)) == {"g1", "g2", "g3"}


def test_weights_can_be_set_before_endpoints_and_turned_off() -> None:
    lb = GroupWeightedLoadBalancer(REFER, random.Random(1))
    lb.set_weight("g1:1,g2:4")
    assert lb.select(FRAME) is None
    lb.on_refresh(members("g1", 2, 1) + members("g2", 2, 2))
    assert groups_of(lb, 50) == Counter({"g1": 10, "g2": 40})
    lb.set_weight("")
    assert lb.weights is None
    assert set(groups_of(lb, 200)) == {"g1", "g2"}


def test_a_group_with_no_available_endpoint_hands_over_to_the_others() -> None:
    g1 = members("g1", 2, 1)
    g2 = members("g2", 2, 2)
    lb = GroupWeightedLoadBalancer(REFER, random.Random(1))
    lb.on_refresh(g1 + g2)
    lb.set_weight("g1:9,g2:1")
    for ep in g1:
        ep.available = False
    assert groups_of(lb, 20) == Counter({"g2": 20})
    arr = lb.select_array(FRAME, 3)
    assert {ep.url.group for ep in arr} == {"g2"} and len(arr) == 2
    for ep in g2:
        ep.available = False
    assert lb.select(FRAME) is None
    assert lb.select_array(FRAME) == []


def test_select_array_stays_within_the_chosen_group() -> None:
    lb = balancer("g1:1,g2:1", ("g1", 3), ("g2", 3))
    for _ in range(10):
        arr = lb.select_array(FRAME, 3)
        assert len(arr) == 3
        assert len({ep.url.group for ep in arr}) == 1


def test_inner_balancers_come_from_the_refer_and_keep_state() -> None:
    refer = REFER.with_params(loadbalance="roundrobin")
    lb = GroupWeightedLoadBalancer(refer, random.Random(1))
    g1 = members("g1", 3, 1)
    g2 = members("g2", 1, 2)
    lb.on_refresh(g1 + g2)
    lb.set_weight("g1:1,g2:1")
    seen = [lb.select(FRAME) for _ in range(8)]
    from_g1 = [ep for ep in seen if ep is not None and ep.url.group == "g1"]
    assert from_g1 == [*g1, g1[0]]  # a round robin over g1
    lb.on_refresh(g1 + g2)  # same groups: the inner round robins are kept
    inner = [ep for ep in (lb.select(FRAME) for _ in range(2)) if ep in g1]
    assert inner == [g1[1]]


def test_record_reaches_the_inner_balancer() -> None:
    refer = REFER.with_params(loadbalance="leastRequest")
    lb = GroupWeightedLoadBalancer(refer, random.Random(1))
    assert lb.records_latency
    g1 = members("g1", 2, 1)
    g2 = members("g2", 2, 2)
    lb.on_refresh(g1 + g2)
    lb.record(g1[0], 0.5, True)  # one pool
    lb.set_weight("g1:1,g2:1")
    lb.record(g2[0], 0.5, True)
    lb.record(g2[1], 0.001, True)
    picked = Counter(id(lb.select(FRAME)) for _ in range(40))
    assert picked[id(g2[0])] == 0
    assert picked[id(g2[1])] == 20


def test_unknown_inner_balancer_is_rejected_up_front() -> None:
    with pytest.raises(ValueError, match="unknown load balancer"):
        GroupWeightedLoadBalancer(REFER.with_params(loadbalance="nope"))


def test_custom_factory() -> None:
    made: list[str] = []

    def factory(url: URL, rng: random.Random | None) -> RoundRobinLoadBalancer:
        made.append(url.path)
        return RoundRobinLoadBalancer(url, rng)

    lb = GroupWeightedLoadBalancer(REFER, factory=factory)
    lb.on_refresh(members("g1", 1, 1) + members("g2", 1, 2))
    lb.set_weight("g1:1,g2:1")
    assert made == ["svc.Demo"] * 3
