"""BlockingMotanClient from plain (non-async) threads, against a demo service that runs in its
own thread and loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from motanmesh.demo import DEMO_GROUP, DEMO_SERVICE, demo_registry
from motanmesh.sdk import BlockingMotanClient, MotanBizError, MotanServiceError
from motanmesh.transport.errors import RequestTimeout


@pytest.fixture(scope="module")
def demo_address() -> Iterator[str]:
    """The demo service served by a background thread with its own event loop."""
    ready = threading.Event()
    stop: list[asyncio.Event] = []
    address: list[str] = []

    async def serve() -> None:
        stop.append(asyncio.Event())
        server = await demo_registry().serve("127.0.0.1", 0)
        address.append(server.address)
        ready.set()
        await stop[0].wait()
        await server.close()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    assert ready.wait(10)
    yield address[0]
    loop.call_soon_threadsafe(stop[0].set)
    thread.join(10)
    loop.close()


def test_blocking_calls(demo_address: str) -> None:
    with BlockingMotanClient(demo_address, group=DEMO_GROUP, timeout=5.0) as client:
        assert client.call(DEMO_SERVICE, "hello", "blocking") == "hello blocking"
        assert client.call(DEMO_SERVICE, "echo", [1, 2], {"a": "b"}) == [[1, 2], {"a": "b"}]
        with pytest.raises(MotanBizError):
            client.call(DEMO_SERVICE, "fail")
        with pytest.raises(MotanServiceError) as info:
            client.call(DEMO_SERVICE, "hello", "x", group="nope")
        assert info.value.errcode == 404
        with pytest.raises(RequestTimeout):
            client.call(DEMO_SERVICE, "sleep", 500, timeout=0.05)


def test_blocking_client_shared_by_threads(demo_address: str) -> None:
    client = BlockingMotanClient(demo_address, group=DEMO_GROUP, serialization="breeze")
    client.connect()
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: client.call(DEMO_SERVICE, "echo", i), range(200)))
        assert results == list(range(200))
    finally:
        client.close()
    assert not client.loop.is_running()
    client.close()  # a second close does nothing
    with pytest.raises(RuntimeError, match="closed"):
        client.call(DEMO_SERVICE, "hello", "x")


def test_blocking_client_from_a_plain_thread(demo_address: str) -> None:
    out: list[object] = []

    def work() -> None:
        with BlockingMotanClient(demo_address, group=DEMO_GROUP) as client:
            out.append(client.call(DEMO_SERVICE, "hello", "thread"))

    t = threading.Thread(target=work)
    t.start()
    t.join(10)
    assert out == ["hello thread"]
