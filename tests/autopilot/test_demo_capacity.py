"""The demo service with a capacity, served on a real socket: within its capacity calls are
answered, beyond it they queue (latency rises) and then are refused as overloaded."""

from __future__ import annotations

import asyncio
import time

import pytest

from motanmesh.demo.service import DEMO_SERVICE, Capacity, demo_registry
from motanmesh.sdk.client import MotanClient
from motanmesh.sdk.errors import MotanServiceError


def test_capacity_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Capacity(0)


async def test_a_burst_beyond_capacity_queues_then_is_refused() -> None:
    server = await demo_registry("g", capacity=20.0, max_wait=0.5).serve("127.0.0.1", 0)
    try:
        async with MotanClient(server.addresses[0], application="t") as client:
            assert await client.call(DEMO_SERVICE, "hello", "x", group="g") == "hello x"
            await asyncio.sleep(0.1)

            async def one() -> tuple[bool, float]:
                started = time.monotonic()
                try:
                    await client.call(DEMO_SERVICE, "hello", "y", group="g")
                    return True, time.monotonic() - started
                except MotanServiceError as exc:
                    assert exc.errcode == 503 and "overloaded" in exc.errmsg
                    return False, time.monotonic() - started

            results = await asyncio.gather(*(one() for _ in range(40)))
    finally:
        await server.close(1.0)
    served = [t for ok, t in results if ok]
    refused = [t for ok, t in results if not ok]
    # one call every 50 ms, at most 0.5 s of queue: about 11 served, the rest refused
    assert len(served) >= 5 and len(refused) >= 10
    assert max(served) > 0.3  # the queue made the last ones wait (its sleep, at least 0.45 s)
