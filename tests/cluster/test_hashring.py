from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motanmesh.cluster.hashring import MIN_LOAD, HashRing, hash64

MEMBERS = [f"10.0.0.{i}:8002" for i in range(1, 8)]


def test_hash64_is_stable() -> None:
    # BLAKE2b-64 of b"": fixed forever, so rings agree across processes and releases
    assert hash64(b"") == 0xE4A6A0577479B2B4
    assert hash64(b"a") != hash64(b"b")
    assert 0 <= hash64(b"x") < 1 << 64


def test_ring_rejects_empty_or_duplicate_members() -> None:
    with pytest.raises(ValueError):
        HashRing([], partitions=10, replicas=3)
    with pytest.raises(ValueError):
        HashRing(["a", "a"], partitions=10, replicas=3)


def test_ring_is_deterministic_and_bounded() -> None:
    a = HashRing(MEMBERS, partitions=307, replicas=20, load=1.25)
    b = HashRing(list(MEMBERS), partitions=307, replicas=20, load=1.25)
    keys = [f"key{i}" for i in range(500)]
    assert [a.locate(k) for k in keys] == [b.locate(k) for k in keys]
    assert sum(a.loads) == 307
    assert max(a.loads) <= a.max_load == -(-307 * 125 // (7 * 100))
    assert min(a.loads) > 0


def test_load_has_a_floor() -> None:
    ring = HashRing(MEMBERS, partitions=50, replicas=2, load=0.5)
    assert ring.load == MIN_LOAD
    assert max(ring.loads) <= ring.max_load


def test_closest_is_owner_first_and_distinct() -> None:
    ring = HashRing(MEMBERS, partitions=307, replicas=20)
    for i in range(200):
        key = f"k{i}"
        near = ring.closest(key, 3)
        assert near[0] == ring.locate(key)
        assert len(set(near)) == 3
    assert sorted(ring.closest("k", 100)) == list(range(len(MEMBERS)))
    assert ring.closest("k", 1) == [ring.locate("k")]


@settings(max_examples=30, deadline=None)
@given(
    members=st.sets(
        st.from_regex(r"10\.0\.[0-9]{1,3}\.[0-9]{1,3}:[0-9]{2,5}", fullmatch=True),
        min_size=1,
        max_size=12,
    ),
    replicas=st.integers(1, 30),
    load=st.floats(1.0, 3.0),
)
def test_every_partition_finds_a_member_within_the_bound(
    members: set[str], replicas: int, load: float
) -> None:
    n = len(members)
    ring = HashRing(sorted(members), partitions=5 * n + 271, replicas=replicas, load=load)
    assert sum(ring.loads) == ring.partitions
    assert max(ring.loads) <= ring.max_load
    owners = Counter(ring.locate(f"u{i}") for i in range(200))
    assert set(owners) <= set(range(n))
