"""``com.weibo.motan.demo.service.MotanDemoService`` (group ``motan-demo-rpc``), the service
the Motan demos call, served by the SDK's service library.

Methods: ``hello(name)`` → ``"hello " + name``; ``echo(*args)`` → its argument (several
arguments come back as a list, none as null); ``sleep(ms)`` → waits ``ms`` milliseconds and
returns ``ms``; ``fail([message])`` → a business error (errtype 2).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any, Final

from motanmesh.sdk.errors import MotanBizError
from motanmesh.sdk.service import ServiceRegistry, ServiceServer

__all__ = ["DEMO_GROUP", "DEMO_SERVICE", "MotanDemoService", "demo_registry", "run_demo_service"]

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


def demo_registry(group: str = DEMO_GROUP) -> ServiceRegistry:
    """A registry serving :class:`MotanDemoService` as :data:`DEMO_SERVICE` in ``group``."""
    registry = ServiceRegistry()
    registry.add_object(DEMO_SERVICE, MotanDemoService(), group=group, inline=True)
    return registry


async def run_demo_service(
    host: str = "127.0.0.1",
    port: int | None = 8100,
    *,
    unix_path: str | None = None,
    group: str = DEMO_GROUP,
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
        server = await demo_registry(group).serve(host, port, unix_path=unix_path)
        try:
            if on_ready is not None:
                on_ready(server)
            await stop.wait()
        finally:
            await server.close(deadline)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
