from __future__ import annotations

import pytest

from motanmesh.cluster.stats import Ewma, LatencyWindow, RatioLimiter


def test_ewma() -> None:
    e = Ewma(0.5)
    assert e.count == 0
    assert e.update(4.0) == 4.0  # the first sample is taken as it is
    assert e.update(2.0) == 3.0
    assert e.update(3.0) == 3.0
    assert e.count == 3
    assert Ewma(0.5, initial=1.0).update(3.0) == 2.0
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            Ewma(bad)


def test_window_percentiles_nearest_rank() -> None:
    w = LatencyWindow(size=1000)
    assert w.percentile(90) is None
    for i in range(100, 0, -1):
        w.add(float(i))
    assert len(w) == 100
    assert w.percentile(90) == 90.0
    assert w.percentile(50) == 50.0
    assert w.percentile(99.5) == 100.0
    assert w.percentile(0) == 1.0
    assert w.percentile(100) == 100.0
    assert w.percentile(250) == 100.0


def test_window_keeps_only_the_last_samples() -> None:
    w = LatencyWindow(size=3, refresh_every=1)
    for x in (10.0, 20.0, 30.0, 1.0, 2.0):
        w.add(x)
    assert len(w) == 3
    assert w.total == 5
    assert w.percentile(100) == 30.0
    w.add(3.0)
    assert w.percentile(100) == 3.0


def test_window_percentile_is_refreshed_every_n_samples() -> None:
    w = LatencyWindow(size=100, refresh_every=3)
    w.add(1.0)
    assert w.percentile(100) == 1.0
    w.add(5.0)
    w.add(6.0)
    assert w.percentile(100) == 1.0  # served from the sorted copy
    w.add(7.0)
    assert w.percentile(100) == 7.0


def test_window_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LatencyWindow(size=0)


class Now:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_ratio_limiter_rounds_by_count() -> None:
    now = Now()
    lim = RatioLimiter(15, now)
    assert lim.max_extra == 15
    granted = 0
    for _ in range(100):
        lim.on_request()
        granted += lim.try_acquire()
        granted += lim.try_acquire()
    assert granted == 15
    lim.on_request()  # request 101: a new round
    assert lim.try_acquire()


def test_ratio_limiter_rounds_by_time() -> None:
    now = Now()
    lim = RatioLimiter(2, now)
    lim.on_request()
    assert lim.try_acquire()
    assert lim.try_acquire()
    assert not lim.try_acquire()
    now.t = 19.9
    lim.on_request()
    assert not lim.try_acquire()
    now.t = 20.0
    lim.on_request()
    assert lim.try_acquire()


def test_ratio_limiter_zero_and_custom_round() -> None:
    now = Now()
    lim = RatioLimiter(0, now)
    lim.on_request()
    assert not lim.try_acquire()
    lim = RatioLimiter(50, now, round_size=4)
    assert lim.max_extra == 2
