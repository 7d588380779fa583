"""``com.weibo.motan.demo.service.MotanDemoService`` (group ``motan-demo-rpc``), the service
the Motan demos call, served by the SDK's service library.

Methods: ``hello(name)`` → ``"hello " + name``; ``echo(*args)`` → its argument (several
arguments come back as a list, none as null); ``sleep(ms)`` → waits ``ms`` milliseconds and
returns ``ms``; ``fail([message])`` → a business error (errtype 2).

With a capacity (``demo-service --capacity N``) the service behaves as a saturated server
does: it serves at most ``N`` calls per second, one after the other (a queue in front of one
worker that takes ``1/N`` s per call). Below ``N`` calls/s a call waits little or not at all;
above, the queue grows and latency rises; a call that would wait longer than ``max_wait``
seconds is refused at once with a service error (errtype 1, errcode 503, "overloaded"), as
an overloaded server sheds load.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any, Final

from motanmesh.sdk.errors import MotanBizError, MotanServiceError
from motanmesh.sdk.service import ServiceRegistry, ServiceServer

__all__ = [
    "DEMO_GROUP",
    "DEMO_SERVICE",
    "Capacity",
    "LimitedDemoService",
    "MotanDemoService",
    "demo_registry",
    "run_demo_service",
]

DEMO_SERVICE: Final = "com.weibo.motan.demo.service.MotanDemoService"
DEMO_GROUP: Final = "motan-demo-rpc"
#: the errcode of the business error ``fail`` raises
FAIL_ERRCODE: Final = 500


class MotanDemoService:
    """The demo methods. ``hello``, ``echo`` and ``fail`` never block: they run inline on
    the event loop; ``sleep`` is async."""

    def hello(self, name: Any) -> str:
        return f"hello {name}"

    def echo(self, *args: Any) -> Any:
        if not args:
            return None
        if len(args) == 1:
            return args[0]
        return list(args)

    async def sleep(self, ms: int) -> int:
        await asyncio.sleep(max(0, ms) / 1000)
        return ms

    def fail(self, message: str = "demo business error") -> None:
        raise MotanBizError(str(message), errcode=FAIL_ERRCODE)


class Capacity:
    """A single worker serving ``per_second`` calls per second in arrival order."""

    def __init__(self, per_second: float, max_wait: float = 1.0) -> None:
        if per_second <= 0:
            raise ValueError("capacity must be > 0 calls/s")
        self.service_time = 1.0 / per_second
        self.max_wait = max_wait
        self._free_at = 0.0
        self.served = 0
        self.refused = 0

    async def take(self) -> None:
        """Wait for the worker; ``MotanServiceError`` (503) when the queue is too long."""
        now = asyncio.get_running_loop().time()
        start = max(now, self._free_at)
        if start - now > self.max_wait:
            self.refused += 1
            raise MotanServiceError("overloaded: the queue is full", errcode=503)
        self._free_at = start + self.service_time
        self.served += 1
        if start > now:
            await asyncio.sleep(start - now)


class LimitedDemoService(MotanDemoService):
    """:class:`MotanDemoService` behind a :class:`Capacity`: ``hello`` and ``echo`` queue."""

    def __init__(self, capacity: Capacity) -> None:
        self._capacity = capacity

    async def hello(self, name: Any) -> str:  # type: ignore[override]
        await self._capacity.take()
        return f"hello {name}"

    async def echo(self, *args: Any) -> Any:
        await self._capacity.take()
        return MotanDemoService.echo(self, *args)


def demo_registry(
    group: str = DEMO_GROUP, capacity: float = 0.0, max_wait: float = 1.0
) -> ServiceRegistry:
    """A registry serving :class:`MotanDemoService` as :data:`DEMO_SERVICE` in ``group``
    (with ``capacity`` calls/s at most when given)."""
    registry = ServiceRegistry()
    service: MotanDemoService = MotanDemoService()
    if capacity > 0:
        service = LimitedDemoService(Capacity(capacity, max_wait))
    registry.add_object(DEMO_SERVICE, service, group=group, inline=True)
    return registry


async def run_demo_service(
    host: str = "127.0.0.1",
    port: int | None = 8100,
    *,
    unix_path: str | None = None,
    group: str = DEMO_GROUP,
    capacity: float = 0.0,
    max_wait: float = 1.0,
    on_ready: Callable[[ServiceServer], None] | None = None,
    stop: asyncio.Event | None = None,
    deadline: float = 5.0,
) -> None:
    """Serve the demo service until ``stop`` is set, or until SIGINT/SIGTERM when no
    ``stop`` event is given; then close gracefully (calls in flight get ``deadline``
    seconds to finish)."""
    loop = asyncio.get_running_loop()
    signals: list[signal.Signals] = []
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
            signals.append(sig)
    try:
        registry = demo_registry(group, capacity, max_wait)
        server = await registry.serve(host, port, unix_path=unix_path)
        try:
            if on_ready is not None:
                on_ready(server)
            await stop.wait()
        finally:
            await server.close(deadline)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
