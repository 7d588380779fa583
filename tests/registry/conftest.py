"""Shared helpers for the registry tests: fast embedded registries and listener recorders."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from motanmesh.registry import EmbeddedRegistry
from motanmesh.url import URL

FAST = {"pollInterval": "0.05", "leaseInterval": "0.1", "ttl": "0.6"}
WAIT_SECONDS = 15.0


def embedded_url(db: Path, **params: str) -> URL:
    """An embedded registry URL on ``db`` with short intervals (overridable)."""
    return URL("embedded", parameters={"file": str(db), **FAST, **params})


def provider(port: int, path: str = "com.example.Echo", group: str = "demo") -> URL:
    return URL("motan2", "127.0.0.1", port, path, group, {"serialization": "simple"})


def refer(path: str = "com.example.Echo", group: str = "demo") -> URL:
    return URL("motan2", "10.0.0.9", 0, path, group, {"nodeType": "referer"})


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) until ``condition()`` holds; fail with ``what`` otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Providers:
    """A provider listener that records every notification."""

    def __init__(self) -> None:
        self.calls: list[list[URL]] = []

    def __call__(self, urls: list[URL]) -> None:
        self.calls.append(urls)

    def ports(self) -> list[list[int]]:
        """Each notification as its sorted provider ports."""
        return [sorted(u.port for u in call) for call in self.calls]

    @property
    def last_ports(self) -> list[int] | None:
        return sorted(u.port for u in self.calls[-1]) if self.calls else None


class Commands:
    """A command listener that records every notification."""

    def __init__(self) -> None:
        self.calls: list[str | None] = []

    def __call__(self, value: str | None) -> None:
        self.calls.append(value)


def rows(db: Path, prefix: str = "/") -> dict[str, tuple[str, str, int]]:
    """``path → (data, owner, ephemeral)`` of the node rows under ``prefix``."""
    conn = sqlite3.connect(db)
    try:
        found = conn.execute(
            "SELECT path, data, owner, ephemeral FROM nodes WHERE path LIKE ?", (prefix + "%",)
        ).fetchall()
    finally:
        conn.close()
    return {path: (data, owner, ephemeral) for path, data, owner, ephemeral in found}


MakeRegistry = Callable[..., Awaitable[EmbeddedRegistry]]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "registry.db"


@pytest.fixture
async def make_registry(db: Path) -> AsyncIterator[MakeRegistry]:
    """``await make_registry(**params)``: a started registry on ``db``, closed afterwards."""
    made: list[EmbeddedRegistry] = []

    async def make(clock: Callable[[], float] = time.time, **params: str) -> EmbeddedRegistry:
        registry = EmbeddedRegistry(embedded_url(db, **params), clock=clock)
        await registry.start()
        made.append(registry)
        return registry

    yield make
    for registry in made:
        await registry.close()
