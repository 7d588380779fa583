"""HA strategies: how one call uses the load balancer and what happens when an attempt fails.

``HaStrategy.call(frame, lb, timeout)`` always answers with a frame: the provider's response,
or an exception response built here when no attempt succeeded. It never raises for a failed
call (cancelling the calling task still cancels it).

An attempt *fails* when the endpoint reports a transport error or answers with a non-biz
exception response. A success or a business exception (errtype 2) ends the call at once.

Names (the refer's ``haStrategy`` parameter):

``failover`` (default)
    Up to ``1 + retries`` attempts, each on a fresh ``select``. ``retries`` may be set per
    method (``method(desc).retries``).
``failfast``
    One attempt.
``backupRequest``
    With ``retries > 0``: the first request goes out; if it has not succeeded after a delay,
    a backup goes to the next endpoint of ``select_array``, and so on; the first success
    wins and the others are cancelled. A failed attempt with nothing else in flight is
    followed at once by the next endpoint. The delay is ``backupRequestDelayTime`` ms when
    set, else the ``backupRequestDelayRatio`` (default 90) percentile of this cluster's recent
    latencies for the method (at least 10 ms), else ``backupRequestInitDelayTime`` ms; with
    none of those the call is a plain failover. Backups are capped at
    ``backupRequestMaxRetryRatio`` (default 15) per 100 requests, the round renewing after
    100 requests or 20 s. The whole call is bounded by ``timeout`` (default: the method's
    ``requestTimeout``).

Every attempt's duration and outcome is reported to ``lb.record`` when the balancer uses it.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, Final

from motanmesh.cluster.errors import (
    UnknownExtensionError,
    call_error_response,
    is_failure,
    no_endpoints_response,
)
from motanmesh.cluster.lb import LoadBalancer
from motanmesh.cluster.stats import LatencyWindow, RatioLimiter
from motanmesh.cluster.types import EndpointLike
from motanmesh.transport.clock import Clock, LoopClock, TimerHandle
from motanmesh.transport.errors import RequestTimeout
from motanmesh.url import URL
from motanmesh.wire.frame import M_METHOD, M_METHOD_DESC, Frame

__all__ = [
    "BackupRequestHa",
    "FailfastHa",
    "FailoverHa",
    "HaFactory",
    "HaStrategy",
    "create_ha",
    "ha_names",
    "register_ha",
]

MIN_BACKUP_DELAY: Final = 0.010
MAX_LATENCY_WINDOWS: Final = 256
_SHARED_WINDOW: Final = "*"


class HaStrategy(ABC):
    """Base of the HA strategies. One instance serves one cluster."""

    name: ClassVar[str] = ""

    def __init__(self, url: URL, clock: Clock | None = None) -> None:
        self.url = url
        self._clock: Clock = clock if clock is not None else LoopClock()

    @abstractmethod
    async def call(
        self,
        frame: Frame,
        lb: LoadBalancer,
        timeout: float | None = None,
        changes: dict[str, str] | None = None,
    ) -> Frame:
        """Serve ``frame`` through ``lb``; ``timeout`` (seconds) bounds each attempt;
        ``changes`` (metadata to rewrite on the wire) is passed to every endpoint."""

    def retries(self, frame: Frame) -> int:
        """``retries`` for the frame's method (``method(desc).retries``, else ``retries``)."""
        meta = frame.metadata
        method = meta.get(M_METHOD, "")
        return max(0, self.url.get_method_int(method, meta.get(M_METHOD_DESC, ""), "retries"))

    async def _attempt(
        self,
        ep: EndpointLike,
        frame: Frame,
        lb: LoadBalancer,
        timeout: float | None,
        changes: dict[str, str] | None,
        window: LatencyWindow | None = None,
    ) -> tuple[Frame, bool]:
        """One request: ``(response, failed)``; errors become exception responses."""
        if not lb.records_latency and window is None:
            try:
                response = await ep.request(frame, changes, timeout)
            except Exception as exc:
                return call_error_response(frame, exc), True
            return response, is_failure(response)
        clock = self._clock
        start = clock.time()
        try:
            response = await ep.request(frame, changes, timeout)
        except Exception as exc:
            if lb.records_latency:
                lb.record(ep, clock.time() - start, False)
            return call_error_response(frame, exc), True
        elapsed = clock.time() - start
        failed = is_failure(response)
        if lb.records_latency:
            lb.record(ep, elapsed, not failed)
        if window is not None and not failed:
            window.add(elapsed)
        return response, failed

    async def _failover(
        self,
        frame: Frame,
        lb: LoadBalancer,
        timeout: float | None,
        changes: dict[str, str] | None,
        retries: int,
        window: LatencyWindow | None = None,
    ) -> Frame:
        last: Frame | None = None
        tried: list[EndpointLike] = []
        for _ in range(retries + 1):
            ep = lb.select(frame)
            if ep is None:
                break
            if tried and ep in tried:
                # A retry goes to another endpoint when there is one: the one that just failed
                # may still look available (its connections are noticed closing one by one).
                ep = next((e for e in lb.select_array(frame, len(tried) + 1) if e not in tried), ep)
            tried.append(ep)
            response, failed = await self._attempt(ep, frame, lb, timeout, changes, window)
            if not failed:
                return response
            last = response
        return last if last is not None else no_endpoints_response(frame)


class FailoverHa(HaStrategy):
    name = "failover"

    async def call(
        self,
        frame: Frame,
        lb: LoadBalancer,
        timeout: float | None = None,
        changes: dict[str, str] | None = None,
    ) -> Frame:
        return await self._failover(frame, lb, timeout, changes, self.retries(frame))


class FailfastHa(HaStrategy):
    name = "failfast"

    async def call(
        self,
        frame: Frame,
        lb: LoadBalancer,
        timeout: float | None = None,
        changes: dict[str, str] | None = None,
    ) -> Frame:
        return await self._failover(frame, lb, timeout, changes, 0)


class BackupRequestHa(HaStrategy):
    """Hedged requests; see the module documentation for the parameters."""

    name = "backupRequest"

    def __init__(
        self,
        url: URL,
        clock: Clock | None = None,
        *,
        window_size: int = 512,
        min_samples: int = 10,
    ) -> None:
        super().__init__(url, clock)
        self._limiter = RatioLimiter(
            url.get_int("backupRequestMaxRetryRatio", 15), self._clock.time
        )
        self._window_size = window_size
        self._min_samples = max(1, min_samples)
        self._windows: dict[str, LatencyWindow] = {}
        #: backup requests sent so far
        self.backups = 0

    def window(self, method: str) -> LatencyWindow:
        """The latency window of ``method`` (methods beyond a fixed number share one)."""
        window = self._windows.get(method)
        if window is None:
            if len(self._windows) >= MAX_LATENCY_WINDOWS:
                method = _SHARED_WINDOW
                window = self._windows.get(method)
            if window is None:
                window = self._windows[method] = LatencyWindow(self._window_size)
        return window

    def delay(self, frame: Frame) -> float | None:
        """Seconds to wait before a backup, or ``None`` (no basis yet: plain call)."""
        url = self.url
        meta = frame.metadata
        method = meta.get(M_METHOD, "")
        desc = meta.get(M_METHOD_DESC, "")
        fixed = url.get_method_int(method, desc, "backupRequestDelayTime")
        if fixed > 0:
            return fixed / 1000.0
        window = self.window(method)
        if len(window) >= self._min_samples:
            ratio = url.get_method_int(method, desc, "backupRequestDelayRatio", 90)
            observed = window.percentile(ratio)
            if observed is not None:
                return max(observed, MIN_BACKUP_DELAY)
        initial = url.get_method_int(method, desc, "backupRequestInitDelayTime")
        return initial / 1000.0 if initial > 0 else None

    async def call(
        self,
        frame: Frame,
        lb: LoadBalancer,
        timeout: float | None = None,
        changes: dict[str, str] | None = None,
    ) -> Frame:
        retries = self.retries(frame)
        window = self.window(frame.metadata.get(M_METHOD, ""))
        if retries <= 0:
            return await self._failover(frame, lb, timeout, changes, 0, window)
        self._limiter.on_request()
        delay = self.delay(frame)
        if delay is None:
            return await self._failover(frame, lb, timeout, changes, retries, window)
        endpoints = lb.select_array(frame, retries + 1)
        if not endpoints:
            return no_endpoints_response(frame)
        if timeout is None:
            meta = frame.metadata
            timeout = (
                self.url.get_method_int(
                    meta.get(M_METHOD, ""), meta.get(M_METHOD_DESC, ""), "requestTimeout", 1000
                )
                / 1000.0
            )
        call = _BackupCall(self, frame, changes, lb, endpoints, delay, timeout, window)
        return await call.run()

    def _try_backup(self) -> bool:
        if self._limiter.try_acquire():
            self.backups += 1
            return True
        return False


class _BackupCall:
    """The state of one hedged call, driven by future callbacks and clock timers."""

    __slots__ = (
        "_changes",
        "_clock",
        "_deadline",
        "_delay",
        "_done",
        "_endpoints",
        "_frame",
        "_ha",
        "_hedging",
        "_last",
        "_lb",
        "_next",
        "_pending",
        "_timeout",
        "_timer",
        "_window",
    )

    def __init__(
        self,
        ha: BackupRequestHa,
        frame: Frame,
        changes: dict[str, str] | None,
        lb: LoadBalancer,
        endpoints: list[EndpointLike],
        delay: float,
        timeout: float,
        window: LatencyWindow,
    ) -> None:
        self._ha = ha
        self._clock = ha._clock
        self._frame = frame
        self._changes = changes
        self._lb = lb
        self._endpoints = endpoints
        self._delay = delay
        self._timeout = timeout
        self._window = window
        self._done: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending: dict[asyncio.Future[Frame], tuple[EndpointLike, float]] = {}
        self._next = 0
        self._hedging = True
        self._last: Frame | None = None
        self._deadline = 0.0
        #: the one live timer: the next backup, or the deadline once no backup is due
        self._timer: TimerHandle | None = None

    async def run(self) -> Frame:
        self._deadline = self._clock.time() + self._timeout
        try:
            self._launch()
            return await self._done
        finally:
            if self._timer is not None:
                self._timer.cancel()
            for fut in self._pending:
                fut.cancel()
            self._pending.clear()

    def _finish(self, response: Frame) -> None:
        if not self._done.done():
            self._done.set_result(response)

    def _arm(self) -> None:
        """(Re)start the timer: the next backup if one may go out before the deadline."""
        if self._timer is not None:
            self._timer.cancel()
        clock = self._clock
        left = self._deadline - clock.time()
        if self._hedging and self._next < len(self._endpoints) and self._delay < left:
            self._timer = clock.call_later(self._delay, self._on_timer)
        else:
            self._timer = clock.call_later(max(left, 0.0), self._on_deadline)

    def _launch(self) -> None:
        """Send to the next endpoint (skipping those that refuse at once) and arm the timer."""
        frame = self._frame
        clock = self._clock
        endpoints = self._endpoints
        while self._next < len(endpoints):
            ep = endpoints[self._next]
            self._next += 1
            start = clock.time()
            try:
                fut = ep.request(frame, self._changes, max(self._deadline - start, 0.0))
            except Exception as exc:
                self._record(ep, start, False)
                self._last = call_error_response(frame, exc)
                continue
            self._pending[fut] = (ep, start)
            fut.add_done_callback(self._on_response)
            self._arm()
            return
        if self._pending:
            self._arm()
        else:
            self._finish(self._last if self._last is not None else no_endpoints_response(frame))

    def _on_timer(self) -> None:
        self._timer = None
        if self._done.done():
            return
        if self._next < len(self._endpoints) and self._ha._try_backup():
            self._launch()
        else:
            self._hedging = False
            self._arm()

    def _on_deadline(self) -> None:
        self._timer = None
        if self._last is None:
            ms = round(self._timeout * 1000)
            self._last = call_error_response(
                self._frame, RequestTimeout(f"request timeout after {ms} ms")
            )
        self._finish(self._last)

    def _record(self, ep: EndpointLike, start: float, ok: bool) -> float:
        elapsed = self._clock.time() - start
        if self._lb.records_latency:
            self._lb.record(ep, elapsed, ok)
        return elapsed

    def _on_response(self, fut: asyncio.Future[Frame]) -> None:
        exc = None if fut.cancelled() else fut.exception()  # always retrieve it
        entry = self._pending.pop(fut, None)
        if entry is None or self._done.done():
            return
        ep, start = entry
        if fut.cancelled():
            response = call_error_response(self._frame, asyncio.CancelledError("cancelled"))
            failed = True
        elif exc is not None:
            response = call_error_response(self._frame, exc)
            failed = True
        else:
            response = fut.result()
            failed = is_failure(response)
        elapsed = self._record(ep, start, not failed)
        if not failed:
            self._window.add(elapsed)
            self._finish(response)
            return
        self._last = response
        if not self._pending:
            self._launch()


# --------------------------------------------------------------------------- registry

HaFactory = Callable[[URL, Clock | None], HaStrategy]

_HA_STRATEGIES: dict[str, HaFactory] = {
    cls.name: cls for cls in (FailoverHa, FailfastHa, BackupRequestHa)
}


def register_ha(name: str, factory: HaFactory) -> None:
    """Make ``haStrategy=<name>`` create strategies with ``factory(url, clock)``."""
    _HA_STRATEGIES[name] = factory


def ha_names() -> list[str]:
    return sorted(_HA_STRATEGIES)


def create_ha(url: URL, clock: Clock | None = None) -> HaStrategy:
    """The strategy named by ``url``'s ``haStrategy`` parameter (default ``failover``).

    Raises :class:`~motanmesh.cluster.errors.UnknownExtensionError` (a ``ValueError``) for an
    unknown name.
    """
    name = url.ha_strategy
    factory = _HA_STRATEGIES.get(name)
    if factory is None:
        raise UnknownExtensionError("HA strategy", name, list(_HA_STRATEGIES))
    return factory(url, clock)
