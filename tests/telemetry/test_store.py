"""The metric store: what one call adds, periods, percentiles, the series cap."""

from __future__ import annotations

import random

import pytest

from motanmesh.telemetry.store import (
    DURATION_BUCKETS,
    ELAPSE_SUFFIXES,
    OVERFLOW_METHOD,
    SAMPLE_SIZE,
    MetricStore,
    elapse_index,
    percentiles,
)

ROLE = "motan-client-agent"


def _stats(store: MetricStore, method: str = "m") -> object:
    return store.stats(ROLE, "app", "g", "", "svc", method)


def test_one_call_counts_once_in_both_views() -> None:
    store = MetricStore()
    s = store.stats(ROLE, "app", "g", "", "svc", "m")
    s.record(0.0123, None)
    s.record(0.2014, "biz")  # 201 ms: slow
    s.record(0.2009, "other")  # 200 ms: not slow (the Go agent: cost > 200)
    assert (s.calls, s.biz_errors, s.other_errors, s.slow) == (3, 1, 1, 1)
    assert (s.p_calls, s.p_biz, s.p_other, s.p_slow) == (3, 1, 1, 1)
    assert s.p_sample == [12, 201, 200]
    snap = s.snapshot_and_clear()
    assert snap is not None and snap.mean_ms == pytest.approx(413 / 3)
    assert snap.elapse == [1, 0, 0, 2, 0]
    s.record(0.0123, None)  # the totals go on across periods
    assert (s.calls, s.biz_errors, s.other_errors, s.slow) == (4, 1, 1, 1)
    assert s.duration_sum == pytest.approx(0.0123 * 2 + 0.2014 + 0.2009)
    # le=0.025 holds the first and last calls, le=0.5 the other two (not cumulative here)
    assert s.buckets[DURATION_BUCKETS.index(0.025)] == 2
    assert s.buckets[DURATION_BUCKETS.index(0.5)] == 2
    assert sum(s.buckets) == 4


def test_bucket_bounds_are_inclusive_and_beyond_the_last_is_inf() -> None:
    s = MetricStore().stats(ROLE, "app", "g", "", "svc", "m")
    s.record(0.05, None)
    s.record(30.0, None)
    assert s.buckets[DURATION_BUCKETS.index(0.05)] == 1
    assert s.buckets[-1] == 1


@pytest.mark.parametrize(
    ("ms", "suffix"),
    [
        (0, ".Less50ms"),
        (49, ".Less50ms"),
        (50, ".Less100ms"),
        (199, ".Less200ms"),
        (200, ".Less500ms"),
        (499, ".Less500ms"),
        (500, ".More500ms"),
    ],
)
def test_go_latency_buckets(ms: int, suffix: str) -> None:
    assert ELAPSE_SUFFIXES[elapse_index(ms)] == suffix


def test_period_snapshot_clears_the_period_but_not_the_totals() -> None:
    store = MetricStore()
    a = store.stats(ROLE, "app", "g", "", "svc", "a")
    b = store.stats(ROLE, "app", "g", "", "svc", "b")
    a.record(0.001, None)
    a.record(0.001, None)
    snaps = store.snapshot_and_clear()
    assert [(s.key.method, s.calls) for s in snaps] == [("a", 2)]
    assert store.last_period == snaps
    assert (a.p_calls, a.p_sample, a.calls) == (0, [], 2)
    assert a.buckets[0] == 2
    b.record(0.001, None)
    assert [(s.key.method, s.calls) for s in store.snapshot_and_clear()] == [("b", 1)]
    assert store.snapshot_and_clear() == []
    assert store.last_period == []


def test_percentiles_follow_go_metrics() -> None:
    # positions q*(n+1), linear between neighbours, clamped
    assert percentiles([250, 10, 40, 20, 30], (0.5, 0.75, 0.95, 0.0)) == [30.0, 145.0, 250.0, 10.0]
    assert percentiles([], (0.5,)) == [0.0]
    assert percentiles([7], (0.5, 0.99)) == [7.0, 7.0]


def test_the_sample_stays_bounded_and_the_mean_exact() -> None:
    s = MetricStore().stats(ROLE, "app", "g", "", "svc", "m")
    for i in range(SAMPLE_SIZE * 3):
        s.record((i % 100) / 1000 + 0.0004, None)
    assert len(s.p_sample) == SAMPLE_SIZE
    assert set(s.p_sample) <= set(range(100))
    snap = s.snapshot_and_clear()
    assert snap is not None
    assert snap.calls == SAMPLE_SIZE * 3
    # past the sample size, the mean of every call (not of the sample)
    expected = sum(i % 100 + 0.4 for i in range(SAMPLE_SIZE * 3)) / snap.calls
    assert snap.mean_ms == pytest.approx(expected)


def test_the_sample_is_uniform_over_the_period() -> None:
    random.seed(20261205)
    s = MetricStore().stats(ROLE, "app", "g", "", "svc", "m")
    for i in range(SAMPLE_SIZE * 10):
        s.record((i // SAMPLE_SIZE) / 1000 + 0.0004, None)  # ms = which tenth of the period
    assert len(s.p_sample) == SAMPLE_SIZE
    per_tenth = [s.p_sample.count(t) for t in range(10)]
    # about 102 each; the bounds are more than 4 standard deviations away
    assert all(60 < n < 150 for n in per_tenth), per_tenth


def test_series_beyond_the_cap_share_one_overflow_series() -> None:
    store = MetricStore(max_series=3)
    made = [store.stats(ROLE, "app", "g", "", "svc", f"m{i}") for i in range(3)]
    extra = [store.stats(ROLE, "app", "g", "", "svc", f"x{i}") for i in range(50)]
    assert len(store.series) == 4
    assert all(e is extra[0] for e in extra)
    assert extra[0].key.method == OVERFLOW_METHOD
    assert store.stats(ROLE, "app", "g", "", "svc", "m1") is made[1]


@pytest.mark.parametrize(
    ("ms", "index"),
    [(0.4, 0), (49.9, 0), (50.1, 1), (99.9, 1), (100.1, 2), (200.5, 3), (499.9, 3), (500.1, 4)],
)
def test_period_elapse_buckets_match_the_go_buckets(ms: float, index: int) -> None:
    s = MetricStore().stats(ROLE, "app", "g", "", "svc", "m")
    s.record(ms / 1000, None)
    snap = s.snapshot_and_clear()
    assert snap is not None
    assert snap.elapse == [int(i == index) for i in range(5)]
    assert elapse_index(int(ms)) == index
