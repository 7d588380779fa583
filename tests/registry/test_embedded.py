"""The embedded registry with several instances on one real SQLite file, in one process."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from motanmesh.registry import EmbeddedRegistry, RegistryError, RegistryStatus
from motanmesh.registry.sqlite_store import SqliteStore
from motanmesh.url import URL
from tests.registry.conftest import (
    Commands,
    MakeRegistry,
    Providers,
    embedded_url,
    provider,
    refer,
    rows,
    wait_until,
)

SERVICE = "/motan/demo/com.example.Echo"
QUIET = {"pollInterval": "1000"}  # polls only on refresh(): each step is explicit


async def test_register_available_unavailable_unregister_paths(
    db: Path, make_registry: MakeRegistry
) -> None:
    reg = await make_registry()
    url = provider(8001)
    server, offline = (
        f"{SERVICE}/server/127.0.0.1:8001",
        f"{SERVICE}/unavailableServer/127.0.0.1:8001",
    )

    await reg.register(url)
    assert rows(db, SERVICE) == {offline: (url.to_ext_info(), reg.owner, 1)}
    assert [s.status for s in reg.status()] == [RegistryStatus.NOT_REGISTER]

    await reg.available(url)
    assert rows(db, SERVICE) == {server: (url.to_ext_info(), reg.owner, 1)}
    assert [s.status for s in reg.status()] == [RegistryStatus.REGISTER_SUCCESS]

    await reg.unavailable(url)
    assert set(rows(db, SERVICE)) == {offline}
    assert [s.status for s in reg.status()] == [RegistryStatus.UNREGISTER_SUCCESS]

    await reg.unregister(url)
    assert rows(db, SERVICE) == {}
    assert reg.status() == []


async def test_available_none_moves_every_registered_url(
    db: Path, make_registry: MakeRegistry
) -> None:
    reg = await make_registry()
    first, second = provider(8001), provider(8002, path="com.example.Other")
    await reg.register(first)
    await reg.register(second)
    await reg.available()
    assert {p.rsplit("/", 2)[-2] for p in rows(db)} == {"server"}
    await reg.unavailable()
    assert {p.rsplit("/", 2)[-2] for p in rows(db)} == {"unavailableServer"}
    status = {(s.group, s.service, s.status, s.registry) for s in reg.status()}
    assert status == {
        ("demo", "com.example.Echo", RegistryStatus.UNREGISTER_SUCCESS, reg.name),
        ("demo", "com.example.Other", RegistryStatus.UNREGISTER_SUCCESS, reg.name),
    }


async def test_subscribe_gets_current_list_then_changes(make_registry: MakeRegistry) -> None:
    server, client = await make_registry(), await make_registry()
    await server.register(provider(8001))
    await server.available(provider(8001))
    seen = Providers()
    await client.subscribe(refer(), seen)
    assert seen.ports() == [[8001]]

    await server.register(provider(8002))
    await server.available(provider(8002))
    await wait_until(lambda: seen.last_ports == [8001, 8002], "the second provider")
    await server.unavailable(provider(8001))
    await wait_until(lambda: seen.last_ports == [8002], "the first provider going offline")
    assert seen.ports() == [[8001], [8001, 8002], [8002]]
    assert seen.calls[-1] == [provider(8002)]


async def test_subscribe_to_unknown_service_waits_for_providers(
    make_registry: MakeRegistry,
) -> None:
    server, client = await make_registry(), await make_registry()
    seen = Providers()
    await client.subscribe(refer(), seen)
    assert seen.calls == []
    await server.available(provider(8003))
    await wait_until(lambda: seen.last_ports == [8003], "the first provider")


async def test_subscribe_records_client_node_until_unsubscribe(
    db: Path, make_registry: MakeRegistry
) -> None:
    reg = await make_registry()
    first, second = Providers(), Providers()
    await reg.subscribe(refer(), first)
    await reg.subscribe(refer(), second)
    client_path = f"{SERVICE}/client/10.0.0.9:0"
    data, owner, ephemeral = rows(db, f"{SERVICE}/client/")[client_path]
    assert URL.parse(data).node_type == "referer"
    assert (owner, ephemeral) == (reg.owner, 1)
    await reg.unsubscribe(refer(), first)
    assert client_path in rows(db)
    await reg.unsubscribe(refer(), second)
    assert client_path not in rows(db)


async def test_unsubscribed_listener_is_not_called(make_registry: MakeRegistry) -> None:
    server, client = await make_registry(), await make_registry(**QUIET)
    kept, dropped = Providers(), Providers()
    await client.subscribe(refer(), kept)
    await client.subscribe(refer(), dropped)
    await client.unsubscribe(refer(), dropped)
    await server.available(provider(8001))
    await client.refresh()
    assert kept.ports() == [[8001]]
    assert dropped.calls == []


async def test_discover_reads_available_providers(make_registry: MakeRegistry) -> None:
    server, client = await make_registry(), await make_registry()
    await server.register(provider(8001))
    assert await client.discover(refer()) == []
    await server.available(provider(8001))
    assert await client.discover(refer()) == [provider(8001)]


async def test_explicit_unregister_of_last_provider_notifies_empty(
    make_registry: MakeRegistry,
) -> None:
    server, client = await make_registry(), await make_registry(**QUIET)
    await server.available(provider(8001))
    seen = Providers()
    await client.subscribe(refer(), seen)
    await server.unregister(provider(8001))
    await client.refresh()
    assert seen.ports() == [[8001], []]


async def test_vanished_last_provider_keeps_last_known_good(make_registry: MakeRegistry) -> None:
    server, client = await make_registry(), await make_registry(**QUIET)
    await server.available(provider(8001))
    seen = Providers()
    await client.subscribe(refer(), seen)
    await server.close()  # its nodes vanish without an unregister
    await client.refresh()
    assert await client.discover(refer()) == []
    assert seen.ports() == [[8001]]
    # a newcomer replaces the kept list
    other = await make_registry()
    await other.available(provider(8009))
    await client.refresh()
    assert seen.ports() == [[8001], [8009]]


async def test_offline_last_provider_keeps_last_known_good(make_registry: MakeRegistry) -> None:
    server, client = await make_registry(), await make_registry(**QUIET)
    await server.available(provider(8001))
    seen = Providers()
    await client.subscribe(refer(), seen)
    await server.unavailable(provider(8001))  # /503 is a soft signal
    await client.refresh()
    assert seen.ports() == [[8001]]
    await server.available(provider(8001))  # /200 again: nothing new to tell
    await client.refresh()
    await server.unregister(provider(8001))  # now it is gone on purpose
    await client.refresh()
    assert seen.ports() == [[8001], []]


async def test_only_unregistered_providers_are_dropped_from_kept_list(
    make_registry: MakeRegistry,
) -> None:
    leaving, dying = await make_registry(), await make_registry()
    client = await make_registry(**QUIET)
    await leaving.available(provider(8001))
    await dying.available(provider(8002))
    seen = Providers()
    await client.subscribe(refer(), seen)
    await leaving.unregister(provider(8001))
    await dying.close()
    await client.refresh()  # both changes seen at once: the list went empty
    assert seen.ports() == [[8001, 8002], [8002]]


async def test_expired_rows_are_ignored_and_not_notified_as_empty(
    make_registry: MakeRegistry,
) -> None:
    server = await make_registry()
    await server.available(provider(8001))
    offset = [0.0]
    client = await make_registry(clock=lambda: time.time() + offset[0], **QUIET)
    seen = Providers()
    await client.subscribe(refer(), seen)
    offset[0] = 3600.0  # from the client's view every other lease has long expired
    assert await client.discover(refer()) == []
    await client.refresh()
    assert seen.ports() == [[8001]]


async def test_commands_set_get_subscribe_and_delete(make_registry: MakeRegistry) -> None:
    writer, reader = await make_registry(), await make_registry()
    assert await reader.get_command("demo") is None
    await writer.set_command("demo", '{"clientCommandList":[]}')
    seen = Commands()
    await reader.subscribe_command("demo", seen)
    assert seen.calls == ['{"clientCommandList":[]}']
    await writer.set_command("demo", '{"clientCommandList":[{"index":1}]}')
    await wait_until(lambda: len(seen.calls) == 2, "the changed command")
    await writer.set_command("demo", None)
    await wait_until(lambda: len(seen.calls) == 3, "the deleted command")
    assert seen.calls[1:] == ['{"clientCommandList":[{"index":1}]}', None]
    assert await reader.get_command("demo") is None


async def test_command_node_is_persistent_at_its_path(
    db: Path, make_registry: MakeRegistry
) -> None:
    writer = await make_registry()
    await writer.set_command("demo", "cmd")
    await writer.set_agent_command("app1", "agent-cmd")
    await writer.close()
    assert rows(db) == {
        "/motan/demo/command": ("cmd", "", 0),
        "/motan/agent/app1/command": ("agent-cmd", "", 0),
    }


async def test_agent_command_subscription(make_registry: MakeRegistry) -> None:
    writer, reader = await make_registry(), await make_registry(**QUIET)
    seen, other = Commands(), Commands()
    await reader.subscribe_agent_command("app1", seen)
    await reader.subscribe_command("app1", other)  # a service group of the same name
    assert seen.calls == []
    await writer.set_agent_command("app1", "A")
    await reader.refresh()
    assert (seen.calls, other.calls) == (["A"], [])
    assert await reader.get_agent_command("app1") == "A"
    await writer.set_agent_command("app1", "")  # an empty node means no command
    await reader.refresh()
    assert seen.calls == ["A", None]
    await reader.unsubscribe_agent_command("app1", seen)
    await writer.set_agent_command("app1", "B")
    await reader.refresh()
    assert seen.calls == ["A", None]


async def test_register_agent_node(db: Path, make_registry: MakeRegistry) -> None:
    reg = await make_registry()
    agent = URL("motan2", "10.1.2.3", 9981, "", "", {"application": "app1", "mport": "8002"})
    await reg.register_agent(agent)
    (path, (data, _, ephemeral)) = next(iter(rows(db, "/motan/agent/").items()))
    assert path == "/motan/agent/app1/node/10.1.2.3:8002"
    assert URL.parse(data).node_type == "agent"
    assert ephemeral == 1
    await reg.unregister_agent(agent)
    assert rows(db, "/motan/agent/") == {}
    with pytest.raises(RegistryError, match="application"):
        await reg.register_agent(agent.without_params("application"))


async def test_close_removes_own_ephemeral_nodes(db: Path, make_registry: MakeRegistry) -> None:
    reg = await make_registry()
    await reg.register(provider(8001))
    await reg.subscribe(refer(), Providers())
    assert len(rows(db)) == 2
    await reg.close()
    assert rows(db) == {}


@pytest.mark.parametrize("content", [b"this is not a database" * 100, None])
async def test_unusable_file_fails_start_clearly(tmp_path: Path, content: bytes | None) -> None:
    target = tmp_path / "broken.db"
    if content is None:
        target.mkdir()  # a directory where the file should be
    else:
        target.write_bytes(content)
    reg = EmbeddedRegistry(embedded_url(target))
    with pytest.raises(RegistryError, match=str(target)):
        await reg.start()
    with pytest.raises(RegistryError, match="not started"):
        await reg.register(provider(8001))


async def test_newer_schema_is_refused(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(RegistryError, match="schema version 99"):
        await EmbeddedRegistry(embedded_url(db)).start()


@pytest.mark.parametrize(
    "params",
    [{"ttl": "1", "leaseInterval": "1"}, {"pollInterval": "0"}, {"ttl": "-3"}],
)
def test_bad_timing_parameters_are_refused(db: Path, params: dict[str, str]) -> None:
    with pytest.raises(RegistryError):
        EmbeddedRegistry(embedded_url(db, **params))


def test_file_comes_from_file_address_or_path(tmp_path: Path) -> None:
    assert EmbeddedRegistry(URL("embedded", parameters={"address": "/a/b.db"})).file == "/a/b.db"
    assert EmbeddedRegistry(URL.parse("embedded:///var/x.db")).file == "/var/x.db"
    default = EmbeddedRegistry(URL("embedded"))
    assert default.file == str(Path("motanmesh-registry.db").resolve())
    assert default.name == f"embedded://{default.file}"


async def test_unreadable_database_keeps_last_lists_and_recovers(
    db: Path, make_registry: MakeRegistry
) -> None:
    server, client = await make_registry(), await make_registry(**QUIET)
    await server.available(provider(8001))
    seen, commands = Providers(), Commands()
    await client.subscribe(refer(), seen)
    await server.set_command("demo", "cmd")
    await client.subscribe_command("demo", commands)

    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE nodes")
    conn.execute("DROP TABLE changes")
    conn.close()
    with pytest.raises(RegistryError, match="no such table"):
        await client.refresh()
    assert await client.discover(refer()) == [provider(8001)]
    with pytest.raises(RegistryError):
        await client.register(provider(8005))
    (failed,) = client.status()
    assert failed.status is RegistryStatus.REGISTER_FAILED
    assert "no such table" in failed.err_msg
    assert (seen.ports(), commands.calls) == ([[8001]], ["cmd"])

    repair = EmbeddedRegistry(embedded_url(db))  # starting re-creates the tables
    await repair.start()
    await repair.close()
    await wait_until(
        lambda: client.status()[0].status is RegistryStatus.NOT_REGISTER, "the failback"
    )
    assert f"{SERVICE}/unavailableServer/127.0.0.1:8005" in rows(db)


async def test_sqlite_waits_off_the_event_loop(db: Path, make_registry: MakeRegistry) -> None:
    reg = await make_registry()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # hold the write lock
    ticks = 0
    pending = asyncio.create_task(reg.register(provider(8001)))
    try:
        while ticks < 10:
            await asyncio.sleep(0.01)
            ticks += 1
        assert not pending.done()
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    await pending
    assert f"{SERVICE}/unavailableServer/127.0.0.1:8001" in rows(db)


async def test_write_failing_on_busy_lock_is_retried_by_lease(
    db: Path, make_registry: MakeRegistry
) -> None:
    reg = await make_registry(busyTimeout="0.05")
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(RegistryError, match="locked"):
            await reg.available(provider(8001))
        assert reg.status()[0].status is RegistryStatus.REGISTER_FAILED
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    await wait_until(
        lambda: reg.status()[0].status is RegistryStatus.REGISTER_SUCCESS, "the failback"
    )
    assert f"{SERVICE}/server/127.0.0.1:8001" in rows(db)


@pytest.mark.parametrize("reregister", [True, False])
async def test_coming_back_after_unregister_clears_the_tombstone(
    make_registry: MakeRegistry, reregister: bool
) -> None:
    server, client = await make_registry(), await make_registry(**QUIET)
    await server.available(provider(8001))
    seen = Providers()
    await client.subscribe(refer(), seen)
    await server.unregister(provider(8001))
    await client.refresh()
    if reregister:
        await server.register(provider(8001))
    await server.available(provider(8001))
    await client.refresh()
    await server.close()  # now it vanishes: that must not look like an unregister
    await client.refresh()
    assert seen.ports() == [[8001], [], [8001]]


async def test_the_file_s_directory_is_created(tmp_path: Path) -> None:
    db = tmp_path / "not" / "yet" / "registry.db"
    registry = EmbeddedRegistry(embedded_url(db))
    await registry.start()
    try:
        provider = URL("motan2", "127.0.0.1", 9982, "a.B", "g")
        await registry.register(provider)
        await registry.available(provider)
        assert db.exists()
        assert await registry.discover(provider) == [provider]
    finally:
        await registry.close()


def test_opening_waits_for_another_process_creating_the_file(tmp_path: Path) -> None:
    """Agents started together race to create the file. While one holds the write lock of a
    file still in rollback-journal mode, SQLite refuses the switch to WAL at once ("database
    is locked", without the busy timeout); opening must wait for the lock, not fail."""
    file = tmp_path / "registry.db"
    holder = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("CREATE TABLE creating (a)")
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO creating VALUES (1)")
        release = threading.Timer(0.3, holder.execute, ("COMMIT",))
        release.start()
        store = SqliteStore(str(file), "owner", 3.0, 10.0, time.time)
        store.open()  # returns once the other connection commits
        release.join()
        assert not holder.in_transaction
        assert store.children("/motan/g/s") == []
        store.close()
    finally:
        holder.close()
