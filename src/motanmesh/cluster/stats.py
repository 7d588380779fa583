"""Small statistics used by load balancers and HA strategies.

* :class:`Ewma` — exponentially weighted moving average of a latency.
* :class:`LatencyWindow` — the last N latencies and their percentiles.
* :class:`RatioLimiter` — caps extra requests at a percentage of the requests of a round.

All are plain synchronous objects for one event loop; none of them allocates per update.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["Ewma", "LatencyWindow", "RatioLimiter"]


class Ewma:
    """``value += alpha * (sample - value)``; the first sample is taken as it is."""

    __slots__ = ("alpha", "count", "value")

    def __init__(self, alpha: float = 0.3, initial: float | None = None) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.value = 0.0 if initial is None else initial
        self.count = 0 if initial is None else 1

    def update(self, sample: float) -> float:
        if self.count:
            self.value += self.alpha * (sample - self.value)
        else:
            self.value = sample
        self.count += 1
        return self.value


class LatencyWindow:
    """A ring of the last ``size`` samples.

    :meth:`percentile` sorts the window, then serves that sorted copy until
    ``refresh_every`` new samples have arrived, so asking on every request stays cheap.
    """

    __slots__ = ("_added", "_next", "_refresh_every", "_samples", "_size", "_sorted", "_stale")

    def __init__(self, size: int = 512, refresh_every: int = 32) -> None:
        if size < 1:
            raise ValueError(f"window size must be positive, got {size}")
        self._size = size
        self._refresh_every = max(1, refresh_every)
        self._samples: list[float] = []
        self._next = 0
        self._added = 0
        self._stale = 0
        self._sorted: list[float] | None = None

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def total(self) -> int:
        """Samples ever added (including those that fell out of the window)."""
        return self._added

    def add(self, sample: float) -> None:
        samples = self._samples
        if len(samples) < self._size:
            samples.append(sample)
        else:
            samples[self._next] = sample
            self._next = (self._next + 1) % self._size
        self._added += 1
        self._stale += 1

    def percentile(self, percent: float) -> float | None:
        """The nearest-rank ``percent`` percentile (0..100), or ``None`` when empty."""
        if not self._samples:
            return None
        ordered = self._sorted
        if ordered is None or self._stale >= self._refresh_every:
            ordered = self._sorted = sorted(self._samples)
            self._stale = 0
        rank = math.ceil(len(ordered) * min(max(percent, 0.0), 100.0) / 100.0)
        return ordered[max(rank, 1) - 1]


class RatioLimiter:
    """Allows ``percent`` extra requests per round of ``round_size`` requests.

    A round ends after ``round_size`` requests or ``round_seconds`` seconds, whichever comes
    first; the allowance is then renewed. An allowance may be spent early in a round, which
    lets a quiet service hedge at all.
    """

    __slots__ = (
        "_clock",
        "_extra",
        "_max_extra",
        "_requests",
        "_round_seconds",
        "_round_size",
        "_round_start",
    )

    def __init__(
        self,
        percent: float,
        clock: Callable[[], float],
        *,
        round_size: int = 100,
        round_seconds: float = 20.0,
    ) -> None:
        self._clock = clock
        self._round_size = max(1, round_size)
        self._round_seconds = round_seconds
        self._max_extra = int(max(0.0, percent) * self._round_size // 100)
        self._requests = 0
        self._extra = 0
        self._round_start: float | None = None

    @property
    def max_extra(self) -> int:
        return self._max_extra

    def on_request(self) -> None:
        """Count one request, starting a new round when the current one is over."""
        now = self._clock()
        start = self._round_start
        if (
            start is None
            or self._requests >= self._round_size
            or now - start >= self._round_seconds
        ):
            self._round_start = now
            self._requests = 0
            self._extra = 0
        self._requests += 1

    def try_acquire(self) -> bool:
        """Take one extra-request permit of the current round, if any is left."""
        if self._extra < self._max_extra:
            self._extra += 1
            return True
        return False
