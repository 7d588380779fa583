"""The embedded registry shared by real, separate OS processes."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from motanmesh.url import URL
from tests.registry.conftest import (
    WAIT_SECONDS,
    MakeRegistry,
    Providers,
    embedded_url,
    provider,
    refer,
    rows,
    wait_until,
)

CHILD = Path(__file__).with_name("embedded_child.py")


class Child:
    """One agent-like process driving its own EmbeddedRegistry on the shared file."""

    def __init__(self, registry_url: URL) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), registry_url.to_ext_info()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    async def reply(self) -> str:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), WAIT_SECONDS)
        return line.strip()

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    async def do(self, command: str) -> None:
        self.send(command)
        assert await self.reply() == "ok"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


SpawnChild = Callable[[], Awaitable[Child]]


@pytest.fixture
async def spawn(db: Path) -> AsyncIterator[SpawnChild]:
    children: list[Child] = []

    async def start() -> Child:
        child = Child(embedded_url(db))
        children.append(child)
        assert await child.reply() == "ok"
        return child

    yield start
    for child in children:
        child.stop()


async def test_killed_process_nodes_vanish_and_subscribers_follow(
    db: Path, make_registry: MakeRegistry, spawn: SpawnChild
) -> None:
    first, second = await spawn(), await spawn()
    await first.do(f"available {provider(8001)}")
    await second.do(f"available {provider(8002)}")
    client = await make_registry()
    seen = Providers()
    await client.subscribe(refer(), seen)
    assert seen.ports() == [[8001, 8002]]

    first.stop()  # SIGKILL: no chance to clean up
    await wait_until(lambda: seen.last_ports == [8002], "the killed provider to vanish")
    assert not any("8001" in path for path in rows(db))

    second.stop()  # the last provider dies too
    await wait_until(lambda: not rows(db, "/motan/demo/com.example.Echo/server/"), "the last lease")
    await client.refresh()
    assert await client.discover(refer()) == []
    assert seen.ports() == [[8001, 8002], [8002]]  # last known good is kept


async def test_unregister_in_another_process_reaches_subscriber(
    make_registry: MakeRegistry, spawn: SpawnChild
) -> None:
    child = await spawn()
    client = await make_registry()
    seen = Providers()
    await client.subscribe(refer(), seen)
    await child.do(f"register {provider(8001)}")
    await child.do(f"available {provider(8001)}")
    await wait_until(lambda: seen.last_ports == [8001], "the provider")
    await child.do(f"unregister {provider(8001)}")
    await wait_until(lambda: seen.last_ports == [], "the explicit unregister")
    await child.do("close")


async def test_concurrent_writers_lose_nothing(
    db: Path, make_registry: MakeRegistry, spawn: SpawnChild
) -> None:
    count = 60
    left, right = await spawn(), await spawn()
    left.send(f"burst left {count}")
    right.send(f"burst right {count}")
    assert (await left.reply(), await right.reply()) == ("ok", "ok")

    reader = await make_registry()
    for name in ("left", "right"):
        for i in range(count):
            found = await reader.discover(refer(f"com.burst.{name}.S{i}", "burst"))
            assert [u.port for u in found] == [20000 + i]
            assert await reader.get_command(f"{name}-g{i}") == f"{name}-{i}"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (counter,) = conn.execute("SELECT counter FROM changes").fetchone()
    finally:
        conn.close()
    assert counter >= 2 * 3 * count  # every write bumped the change counter
