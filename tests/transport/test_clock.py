"""The injectable clocks."""

from __future__ import annotations

import asyncio

import pytest

from motanmesh.transport.clock import DeadlineBuckets, FakeClock, LoopClock


def test_fake_clock_runs_due_callbacks_in_deadline_order() -> None:
    clock = FakeClock()
    fired: list[tuple[str, float]] = []
    clock.call_later(2.0, lambda: fired.append(("b", clock.time())))
    clock.call_later(1.0, lambda: fired.append(("a", clock.time())))
    clock.call_later(2.0, lambda: fired.append(("c", clock.time())))
    clock.call_later(5.0, lambda: fired.append(("late", clock.time())))
    assert clock.advance(0.5) == 0
    assert clock.advance(1.5) == 3
    assert fired == [("a", 1.0), ("b", 2.0), ("c", 2.0)]
    assert clock.time() == 2.0
    assert clock.pending == 1
    assert clock.next_deadline() == 5.0


def test_fake_clock_cancel_and_arguments() -> None:
    clock = FakeClock(start=100.0)
    got: list[int] = []
    keep = clock.call_later(1, got.append, 1)
    drop = clock.call_later(1, got.append, 2)
    drop.cancel()
    clock.advance(1)
    assert got == [1]
    keep.cancel()  # cancelling a fired timer is harmless
    assert clock.pending == 0
    assert clock.next_deadline() is None
    assert clock.time() == 101.0


def test_fake_clock_runs_callbacks_scheduled_while_advancing() -> None:
    clock = FakeClock()
    seen: list[float] = []

    def tick() -> None:
        seen.append(clock.time())
        if len(seen) < 10:
            clock.call_later(1.0, tick)

    clock.call_later(1.0, tick)
    clock.advance(3.5)
    assert seen == [1.0, 2.0, 3.0]
    clock.call_later(-4, seen.append, -1.0)  # a negative delay means "now"
    clock.advance(0)
    assert seen[-1] == -1.0


def test_fake_clock_refuses_going_back() -> None:
    with pytest.raises(ValueError):
        FakeClock().advance(-1)


async def test_loop_clock_uses_the_running_loop() -> None:
    clock = LoopClock()
    loop = asyncio.get_running_loop()
    assert clock.loop is loop
    assert abs(clock.time() - loop.time()) < 60
    done: asyncio.Future[str] = loop.create_future()
    clock.call_later(0, done.set_result, "fired")
    assert await done == "fired"
    cancelled: list[int] = []
    clock.call_later(0, cancelled.append, 1).cancel()
    await asyncio.sleep(0.01)
    assert cancelled == []


def test_deadline_buckets_expire_items_at_most_one_slot_late() -> None:
    clock = FakeClock()
    expired: list[list[str]] = []
    buckets: DeadlineBuckets[str] = DeadlineBuckets(clock, 0.01, expired.append)
    buckets.add(0.05, "a")
    buckets.add(0.0525, "b")
    buckets.add(0.2, "c")
    assert len(buckets) == 3
    assert clock.pending == 2  # one timer per slot, not per item
    clock.advance(0.049)
    assert expired == []
    clock.advance(0.011)
    assert expired == [["a", "b"]]
    clock.advance(0.1395)
    assert expired == [["a", "b"]]
    clock.advance(0.011)
    assert expired == [["a", "b"], ["c"]]
    assert len(buckets) == 0


def test_deadline_buckets_clear() -> None:
    clock = FakeClock()
    expired: list[list[int]] = []
    buckets: DeadlineBuckets[int] = DeadlineBuckets(clock, 0.005, expired.append)
    for i in range(10):
        buckets.add(i * 0.1, i)
    buckets.clear()
    assert clock.pending == 0 and len(buckets) == 0
    clock.advance(5)
    assert expired == []


async def test_deadline_buckets_on_the_loop() -> None:
    clock = LoopClock()
    expired: list[list[int]] = []
    buckets: DeadlineBuckets[int] = DeadlineBuckets(clock, 0.001, expired.append)
    buckets.bind(clock)
    buckets.add(0, 1)
    buckets.add(0.002, 2)
    while len(buckets):
        await asyncio.sleep(0.001)
    assert [i for batch in expired for i in batch] == [1, 2]
