from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import pytest

from motanmesh.cluster import lb as lb_module
from motanmesh.cluster.errors import UnknownExtensionError
from motanmesh.cluster.lb import (
    WRR_RING_LIMIT,
    ConsistentHashLoadBalancer,
    LeastRequestLoadBalancer,
    LoadBalancer,
    RandomLoadBalancer,
    RoundRobinLoadBalancer,
    WeightedRoundRobinLoadBalancer,
    create_load_balancer,
    load_balancer_names,
    register_load_balancer,
)
from motanmesh.cluster.types import EndpointLike
from motanmesh.url import URL
from motanmesh.wire.frame import Frame
from tests.cluster.endpoints import TestEndpoint, endpoints, request

FRAME = request()
REFER = URL("motan2", "", 0, "svc.Demo", "g")


def picks(lb: LoadBalancer, n: int, frame: Frame = FRAME) -> Counter[str]:
    out: Counter[str] = Counter()
    for _ in range(n):
        ep = lb.select(frame)
        assert ep is not None
        out[ep.url.address] += 1
    return out


def names(eps: Sequence[EndpointLike]) -> list[str]:
    return [ep.url.address for ep in eps]


def keyed(key: str) -> Frame:
    return request(meta={"consistentHashKey": key})


# --------------------------------------------------------------------------- common contract

ALL_KINDS = [
    RandomLoadBalancer,
    RoundRobinLoadBalancer,
    WeightedRoundRobinLoadBalancer,
    ConsistentHashLoadBalancer,
    LeastRequestLoadBalancer,
]


@pytest.mark.parametrize("cls", ALL_KINDS)
def test_empty_and_all_unavailable_select_nothing(cls: type[LoadBalancer]) -> None:
    lb = cls(REFER, random.Random(1))
    assert lb.select(FRAME) is None
    assert lb.select_array(FRAME) == []
    eps = endpoints(3)
    for ep in eps:
        ep.available = False
    lb.on_refresh(eps)
    assert lb.select(FRAME) is None
    assert lb.select(request(meta={"consistentHashKey": "k"})) is None
    assert lb.select_array(FRAME) == []


@pytest.mark.parametrize("cls", ALL_KINDS)
def test_unavailable_endpoints_are_skipped(cls: type[LoadBalancer]) -> None:
    lb = cls(REFER, random.Random(2))
    eps = endpoints(5)
    eps[1].available = False
    eps[3].available = False
    lb.on_refresh(eps)
    seen: Counter[str] = Counter()
    for i in range(600):
        ep = lb.select(request(meta={"consistentHashKey": f"user{i}"}))
        assert ep is not None
        seen[ep.url.address] += 1
    assert set(seen) == {eps[0].name, eps[2].name, eps[4].name}


@pytest.mark.parametrize("cls", ALL_KINDS)
def test_select_array_gives_distinct_available_endpoints(cls: type[LoadBalancer]) -> None:
    lb = cls(REFER, random.Random(3))
    eps = endpoints(6)
    eps[2].available = False
    lb.on_refresh(eps)
    for i in range(50):
        frame = request(meta={"consistentHashKey": f"k{i}"})
        arr = lb.select_array(frame, 3)
        assert len(arr) == 3
        assert len({id(ep) for ep in arr}) == 3
        assert all(ep.available for ep in arr)
    assert len(lb.select_array(FRAME, 10)) == 5
    assert len(lb.select_array(FRAME, 1)) == 1


# --------------------------------------------------------------------------- random


def test_random_is_roughly_uniform() -> None:
    lb = RandomLoadBalancer(REFER, random.Random(42))
    eps = endpoints(4)
    lb.on_refresh(eps)
    counts = picks(lb, 40_000)
    assert set(counts) == {ep.name for ep in eps}
    for c in counts.values():
        assert 9_000 < c < 11_000


def test_random_spreads_over_available_ones_when_picking_a_down_one() -> None:
    lb = RandomLoadBalancer(REFER, random.Random(5))
    eps = endpoints(4)
    eps[0].available = False
    lb.on_refresh(eps)
    counts = picks(lb, 4_000)
    assert eps[0].name not in counts
    assert len(counts) == 3


def test_random_select_array_follows_the_first_pick() -> None:
    lb = RandomLoadBalancer(REFER, random.Random(6))
    eps = endpoints(5)
    lb.on_refresh(eps)
    arr = lb.select_array(FRAME, 3)
    start = names(eps).index(arr[0].url.address)
    assert names(arr) == [eps[(start + k) % 5].name for k in range(3)]


# --------------------------------------------------------------------------- roundrobin


def test_roundrobin_cycles_exactly() -> None:
    lb = RoundRobinLoadBalancer(REFER)
    eps = endpoints(3)
    lb.on_refresh(eps)
    got = [lb.select(FRAME) for _ in range(9)]
    assert got == eps * 3


def test_roundrobin_survives_a_shrinking_list() -> None:
    lb = RoundRobinLoadBalancer(REFER)
    eps = endpoints(5)
    lb.on_refresh(eps)
    for _ in range(4):
        lb.select(FRAME)
    lb.on_refresh(eps[:2])
    got = {id(lb.select(FRAME)) for _ in range(4)}
    assert got == {id(eps[0]), id(eps[1])}


# --------------------------------------------------------------------------- wrr


def weighted(*weights: str) -> list[TestEndpoint]:
    return [
        TestEndpoint(f"10.0.1.{i + 1}", 8002, params={"META_WEIGHT": w} if w else {})
        for i, w in enumerate(weights)
    ]


def test_wrr_gives_exact_shares_over_each_turn() -> None:
    lb = WeightedRoundRobinLoadBalancer(REFER, random.Random(9))
    eps = weighted("1", "3", "6")
    lb.on_refresh(eps)
    assert len(lb.ring) == 10
    for _ in range(5):
        counts = picks(lb, 10)
        assert [counts[ep.name] for ep in eps] == [1, 3, 6]


def test_wrr_divides_by_gcd_and_defaults_to_10() -> None:
    lb = WeightedRoundRobinLoadBalancer(REFER, random.Random(9))
    eps = weighted("20", "", "junk", "40")
    lb.on_refresh(eps)
    assert len(lb.ring) == 2 + 1 + 1 + 4
    counts = picks(lb, 8)
    assert [counts[ep.name] for ep in eps] == [2, 1, 1, 4]


def test_wrr_clamps_weights() -> None:
    lb = WeightedRoundRobinLoadBalancer(REFER, random.Random(9))
    eps = weighted("0", "-5", "100000")
    lb.on_refresh(eps)
    counts = Counter(ep.url.address for ep in lb.ring)
    assert [counts[ep.name] for ep in eps] == [1, 1, 500]


def test_wrr_equal_weights_is_round_robin_per_turn() -> None:
    lb = WeightedRoundRobinLoadBalancer(REFER, random.Random(9))
    eps = weighted("7", "7", "7", "7")
    lb.on_refresh(eps)
    for _ in range(3):
        assert sorted(picks(lb, 4).elements()) == sorted(names(eps))


def test_wrr_ring_is_bounded() -> None:
    lb = WeightedRoundRobinLoadBalancer(REFER, random.Random(9))
    eps = [
        TestEndpoint(f"10.1.{i // 250}.{i % 250}", 8002, params={"META_WEIGHT": str(499 + i % 2)})
        for i in range(40)
    ]
    lb.on_refresh(eps)
    assert len(lb.ring) <= WRR_RING_LIMIT
    counts = Counter(id(ep) for ep in lb.ring)
    assert len(counts) == 40


# --------------------------------------------------------------------------- consistent hash


def test_consistent_hash_same_key_same_endpoint_and_keys_spread() -> None:
    lb = ConsistentHashLoadBalancer(REFER, random.Random(1))
    eps = endpoints(5)
    lb.on_refresh(eps)
    owners: dict[str, str] = {}
    for i in range(2_000):
        ep = lb.select(keyed(f"user{i}"))
        assert ep is not None
        owners[f"user{i}"] = ep.url.address
    for key, owner in list(owners.items())[:200]:
        for _ in range(3):
            ep = lb.select(keyed(key))
            assert ep is not None and ep.url.address == owner
    spread = Counter(owners.values())
    assert len(spread) == 5
    ring = lb.ring
    assert ring is not None
    ceiling = ring.max_load / ring.partitions
    for count in spread.values():
        assert count / 2_000 < ceiling + 0.05


def test_consistent_hash_does_not_depend_on_list_order() -> None:
    eps = endpoints(6)
    a = ConsistentHashLoadBalancer(REFER, random.Random(1))
    b = ConsistentHashLoadBalancer(REFER, random.Random(2))
    a.on_refresh(eps)
    b.on_refresh(list(reversed(eps)))
    for i in range(300):
        frame = keyed(f"k{i}")
        assert a.select(frame) is b.select(frame)


def test_consistent_hash_removing_a_member_moves_about_one_nth() -> None:
    n = 10
    lb = ConsistentHashLoadBalancer(REFER, random.Random(1))
    eps = endpoints(n)
    lb.on_refresh(eps)
    ring = lb.ring
    assert ring is not None
    keys = [f"user{i}" for i in range(5_000)]
    before = {k: lb.select(keyed(k)) for k in keys}
    removed = eps[3]
    lb.on_refresh([ep for ep in eps if ep is not removed])
    assert lb.ring is not None and lb.ring.partitions == ring.partitions
    after = {k: lb.select(keyed(k)) for k in keys}
    moved = sum(1 for k in keys if before[k] is not after[k])
    owned_by_removed = sum(1 for k in keys if before[k] is removed)
    assert moved >= owned_by_removed > 0
    assert moved / len(keys) < 2.5 / n


def test_consistent_hash_bounded_load_is_respected() -> None:
    url = REFER.with_params({"consistentHashKey.load": "1.1", "consistentHashKey.replica": "3"})
    lb = ConsistentHashLoadBalancer(url, random.Random(1))
    lb.on_refresh(endpoints(8))
    ring = lb.ring
    assert ring is not None
    assert ring.replicas == 3
    assert ring.partitions == 5 * 8 + 271
    assert sum(ring.loads) == ring.partitions
    assert max(ring.loads) <= ring.max_load == -(-ring.partitions * 11 // (8 * 10))


def test_consistent_hash_parameters() -> None:
    url = REFER.with_params({"consistentHashKey.partSize": "3", "consistentHashKey.load": "0.2"})
    lb = ConsistentHashLoadBalancer(url)
    lb.on_refresh(endpoints(4))
    ring = lb.ring
    assert ring is not None
    assert ring.partitions == 8  # at least 2 * n
    assert ring.load == pytest.approx(1.1)
    assert ring.replicas == 20


def test_consistent_hash_missing_key_or_down_owner_falls_back_to_random() -> None:
    lb = ConsistentHashLoadBalancer(REFER, random.Random(1))
    eps = endpoints(4)
    lb.on_refresh(eps)
    assert len(picks(lb, 400)) == 4  # no key: spread
    owner = lb.select(keyed("alice"))
    assert isinstance(owner, TestEndpoint)
    owner.available = False
    others = {id(lb.select(keyed("alice"))) for _ in range(200)}
    assert id(owner) not in others
    assert len(others) == 3


def test_consistent_hash_select_array_starts_with_owner() -> None:
    lb = ConsistentHashLoadBalancer(REFER, random.Random(1))
    eps = endpoints(5)
    lb.on_refresh(eps)
    for i in range(100):
        frame = keyed(f"k{i}")
        arr = lb.select_array(frame, 3)
        assert arr[0] is lb.select(frame)
        assert len({id(e) for e in arr}) == 3
        assert lb.select_array(frame, 3) == arr


# --------------------------------------------------------------------------- leastRequest


def test_least_request_avoids_a_busy_endpoint() -> None:
    lb = LeastRequestLoadBalancer(REFER, random.Random(1))
    eps = endpoints(3)
    eps[1].in_flight = 10
    lb.on_refresh(eps)
    counts = picks(lb, 1_000)
    assert eps[1].name not in counts
    assert len(counts) == 2


def test_least_request_prefers_the_fast_endpoint() -> None:
    lb = LeastRequestLoadBalancer(REFER, random.Random(1))
    eps = endpoints(3)
    lb.on_refresh(eps)
    for _ in range(5):
        lb.record(eps[0], 0.001, True)
        lb.record(eps[1], 0.050, True)
        lb.record(eps[2], 0.100, True)
    counts = picks(lb, 3_000)
    # the fastest wins every pair it is drawn into (2 of 3 pairs)
    assert counts[eps[0].name] > 1_800
    assert counts[eps[1].name] > counts[eps[2].name]


def test_least_request_penalises_failures_and_forgets_removed_endpoints() -> None:
    lb = LeastRequestLoadBalancer(REFER, random.Random(1))
    eps = endpoints(2)
    lb.on_refresh(eps)
    lb.record(eps[0], 0.01, True)
    lb.record(eps[1], 0.01, True)
    lb.record(eps[0], 0.01, False)
    assert lb.latency(eps[0]) > lb.latency(eps[1])
    counts = picks(lb, 100)
    assert counts == Counter({eps[1].name: 100})
    lb.on_refresh(eps[1:])
    lb.on_refresh(eps)
    assert lb.latency(eps[0]) == lb.latency(TestEndpoint("10.9.9.9"))


def test_least_request_single_endpoint() -> None:
    lb = LeastRequestLoadBalancer(REFER)
    ep = TestEndpoint()
    lb.on_refresh([ep])
    assert lb.select(FRAME) is ep
    ep.available = False
    assert lb.select(FRAME) is None


# --------------------------------------------------------------------------- factory


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("random", RandomLoadBalancer),
        ("roundrobin", RoundRobinLoadBalancer),
        ("wrr", WeightedRoundRobinLoadBalancer),
        ("consistentHashKey", ConsistentHashLoadBalancer),
        ("leastRequest", LeastRequestLoadBalancer),
    ],
)
def test_factory_by_name(name: str, cls: type[LoadBalancer]) -> None:
    lb = create_load_balancer(REFER.with_params(loadbalance=name))
    assert type(lb) is cls
    assert lb.url is not None and lb.url.loadbalance == name


def test_factory_default_is_random() -> None:
    assert type(create_load_balancer(REFER)) is RandomLoadBalancer


def test_factory_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown load balancer 'fastest'") as info:
        create_load_balancer(REFER.with_params(loadbalance="fastest"))
    assert isinstance(info.value, UnknownExtensionError)
    for name in ("random", "roundrobin", "wrr", "consistentHashKey", "leastRequest"):
        assert name in str(info.value)


def test_register_load_balancer() -> None:
    class First(RandomLoadBalancer):
        def select(self, frame: Frame) -> EndpointLike | None:
            return self._endpoints[0] if self._endpoints else None

    register_load_balancer("first", First)
    try:
        assert "first" in load_balancer_names()
        lb = create_load_balancer(REFER.with_params(loadbalance="first"))
        eps = endpoints(3)
        lb.on_refresh(eps)
        assert lb.select(FRAME) is eps[0]
    finally:
        lb_module._LOAD_BALANCERS.pop("first")
