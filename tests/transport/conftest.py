"""Transport tests run on asyncio's own loop and, when installed, on uvloop."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable, Mapping

import pytest

from motanmesh.transport import MotanServer
from tests.transport.support import Recorder, echo


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[MotanServer, str]]:
    """A server answering every request with its own metadata and body; its address."""
    server = MotanServer(echo)
    host, port = await server.listen_tcp()
    yield server, f"{host}:{port}"
    await server.close(deadline=0)


@pytest.fixture
async def held_server() -> AsyncIterator[tuple[MotanServer, Recorder, str]]:
    """A server that keeps every request for the test to answer; its recorder and address."""
    recorder = Recorder()
    server = MotanServer(recorder)
    host, port = await server.listen_tcp()
    yield server, recorder, f"{host}:{port}"
    await server.close(deadline=0)
