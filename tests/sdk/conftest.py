"""Fixtures: a demo service and a test service on real loopback sockets."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from motanmesh.demo import DEMO_GROUP, DEMO_SERVICE, demo_registry
from motanmesh.sdk import (
    CallContext,
    MotanBizError,
    MotanClient,
    MotanServiceError,
    ServiceRegistry,
    ServiceServer,
)

TEST_SERVICE = "com.example.TestService"
TEST_GROUP = "test-group"


class Calculator:
    """Registered with ``add_object``: its public methods are served."""

    def __init__(self) -> None:
        self.scale = 10

    def add(self, a: int, b: int) -> int:
        return a + b

    def scaled(self, x: int) -> int:
        return x * self.scale

    @property
    def hidden_property(self) -> int:
        raise AssertionError("properties are not served and never read")

    def _private(self) -> str:
        return "private"


def build_test_registry() -> ServiceRegistry:
    registry = ServiceRegistry()
    svc = registry.service(TEST_SERVICE, group=TEST_GROUP)

    @svc.method("thread_name")
    def thread_name() -> str:
        return threading.current_thread().name

    @svc.method("inline_thread_name", inline=True)
    def inline_thread_name() -> str:
        return threading.current_thread().name

    @svc.method("async_thread_name")
    async def async_thread_name() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    @svc.method()
    def crash(message: str) -> None:
        raise RuntimeError(message)

    @svc.method()
    async def async_crash() -> None:
        raise KeyError("missing")

    @svc.method()
    def biz(code: int) -> None:
        raise MotanBizError("no such account", errcode=code)

    @svc.method()
    async def async_biz() -> None:
        raise MotanBizError("async biz")

    @svc.method()
    def service_error() -> None:
        raise MotanServiceError("explicit service error", errcode=503)

    @svc.method(context=True)
    def whoami(ctx: CallContext, suffix: str) -> dict[str, Any]:
        ctx.reply_metadata["x-answer"] = "42"
        return {
            "path": ctx.path,
            "method": ctx.method,
            "group": ctx.group,
            "source": ctx.metadata.get("M_s", ""),
            "trace": ctx.metadata.get("x-trace", ""),
            "suffix": suffix,
        }

    @svc.method()
    def unencodable() -> object:
        return object()

    @svc.method()
    def nothing() -> None:
        return None

    registry.add_object("com.example.Calculator", Calculator())
    return registry


@pytest.fixture
async def demo_server() -> AsyncIterator[ServiceServer]:
    server = await demo_registry().serve("127.0.0.1", 0)
    yield server
    await server.close()


@pytest.fixture
async def test_server() -> AsyncIterator[ServiceServer]:
    server = await build_test_registry().serve("127.0.0.1", 0)
    yield server
    await server.close()


@pytest.fixture
async def demo_client(demo_server: ServiceServer) -> AsyncIterator[MotanClient]:
    async with MotanClient(demo_server.address, group=DEMO_GROUP, timeout=5.0) as client:
        yield client


@pytest.fixture
async def test_client(test_server: ServiceServer) -> AsyncIterator[MotanClient]:
    async with MotanClient(test_server.address, group=TEST_GROUP, timeout=5.0) as client:
        yield client


__all__ = ["DEMO_SERVICE", "TEST_GROUP", "TEST_SERVICE", "build_test_registry"]
