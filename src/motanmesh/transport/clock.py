"""Injectable time for the transport layer.

Everything in :mod:`motanmesh.transport` that waits (request timeouts, reconnect backoff,
keepalive heartbeats, idle timeouts, drain deadlines) goes through a :class:`Clock`, so tests
can swap in :class:`FakeClock` and move time by hand.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar, TypeVarTuple, Unpack

_Ts = TypeVarTuple("_Ts")
_T = TypeVar("_T")


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled (``asyncio.TimerHandle`` fits)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """A monotonic time source with delayed callbacks."""

    def time(self) -> float: ...

    def call_later(
        self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts
    ) -> TimerHandle: ...


class LoopClock:
    """The real clock: the running event loop's ``time`` and ``call_later``.

    The loop is looked up on first use, so a ``LoopClock`` may be created outside a loop; it
    then stays bound to that loop.
    """

    __slots__ = ("_loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def time(self) -> float:
        return self.loop.time()

    def call_later(
        self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts
    ) -> TimerHandle:
        return self.loop.call_later(delay, callback, *args)


class FakeTimer:
    """A callback scheduled on a :class:`FakeClock`."""

    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[object, ...]):
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that only moves when :meth:`advance` is called.

    Due callbacks run synchronously inside :meth:`advance`, in deadline order (ties in the
    order they were scheduled); callbacks they schedule run too when they fall due within
    the same advance.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._seq = 0
        self._heap: list[tuple[float, int, FakeTimer]] = []

    def time(self) -> float:
        return self._now

    def call_later(
        self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts
    ) -> FakeTimer:
        timer = FakeTimer(self._now + max(0.0, delay), callback, args)
        self._seq += 1
        heapq.heappush(self._heap, (timer.when, self._seq, timer))
        return timer

    @property
    def pending(self) -> int:
        """How many scheduled callbacks have not run and are not cancelled."""
        return sum(1 for _w, _s, t in self._heap if not t.cancelled)

    def next_deadline(self) -> float | None:
        """The time of the earliest live callback, if any."""
        for when, _s, timer in sorted(self._heap):
            if not timer.cancelled:
                return when
        return None

    def advance(self, seconds: float) -> int:
        """Move time forward by ``seconds`` and run what fell due; return how many ran."""
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        target = self._now + seconds
        heap = self._heap
        ran = 0
        while heap and heap[0][0] <= target:
            when, _seq, timer = heapq.heappop(heap)
            if timer.cancelled:
                continue
            self._now = when
            timer.cancelled = True  # a timer fires once
            timer.callback(*timer.args)
            ran += 1
        self._now = target
        return ran


class DeadlineBuckets(Generic[_T]):
    """Coarse deadlines for many short-lived items, with one timer per time slot.

    :meth:`add` files an item under the first ``resolution``-wide slot that ends at or after
    its deadline; when a slot's timer fires, ``expire`` gets the slot's items. Nothing is
    cancelled: the owner ignores items that were settled meanwhile. An item expires at most
    ``resolution`` seconds after its deadline.
    """

    __slots__ = ("_buckets", "_call_later", "_expire", "_inverse", "_resolution", "_time")

    def __init__(
        self, clock: Clock, resolution: float, expire: Callable[[list[_T]], object]
    ) -> None:
        self._resolution = resolution
        self._inverse = 1.0 / resolution
        self._expire = expire
        self._buckets: dict[int, tuple[list[_T], TimerHandle]] = {}
        self._time = clock.time
        self._call_later = clock.call_later

    def bind(self, clock: Clock) -> None:
        """Use ``clock`` from now on (the fast path: a ``LoopClock``'s loop directly)."""
        if isinstance(clock, LoopClock):
            self._time = clock.loop.time
            self._call_later = clock.loop.call_later
        else:
            self._time = clock.time
            self._call_later = clock.call_later

    def add(self, delay: float, item: _T) -> None:
        now = self._time()
        slot = int((now + delay) * self._inverse) + 1
        entry = self._buckets.get(slot)
        if entry is None:
            timer = self._call_later(slot * self._resolution - now, self._fire, slot)
            self._buckets[slot] = ([item], timer)
        else:
            entry[0].append(item)

    def _fire(self, slot: int) -> None:
        entry = self._buckets.pop(slot, None)
        if entry is not None:
            self._expire(entry[0])

    def clear(self) -> None:
        """Drop every item and cancel the timers."""
        for _items, timer in self._buckets.values():
            timer.cancel()
        self._buckets.clear()

    def __len__(self) -> int:
        return sum(len(items) for items, _t in self._buckets.values())
