"""The ``embedded`` registry: no server, one SQLite file shared by the agents of a host.

Every agent process on the machine opens the same file (``file`` or ``address`` parameter, or
the path of ``embedded:///abs/path.db``; default ``./motanmesh-registry.db``). The file holds
the ZooKeeper node layout of ``motanmesh.registry.base`` as rows::

    nodes(path PRIMARY KEY, data, owner, ephemeral, expires)
    changes(counter)          bumped by every write
    tombstones(path, at)      server nodes removed by an explicit unregister

Ephemeral nodes belong to one registry instance (``owner``) and carry a lease: the instance
renews it every ``leaseInterval`` seconds (default 1) for ``ttl`` seconds (default 3). Readers
ignore expired rows and every renewer deletes them, so the nodes of a process that died vanish
after at most ``ttl`` plus one lease interval. Each instance polls the change counter every
``pollInterval`` seconds (default 0.2) and, when it moved, re-reads only the watched paths.

Keep last known good (see ``base``): when a watched service's ``server`` list becomes empty,
the providers whose node has a tombstone are dropped, the others (vanished ones) are kept; the
empty list is notified only when every last-notified provider was unregistered on purpose.

Writes use ``BEGIN IMMEDIATE`` and short transactions; the file is in WAL mode with a busy
timeout (``busyTimeout`` seconds, default 5). All SQLite work runs on one worker thread, never
on the event loop. ``start`` fails with a clear ``RegistryError`` when the file is unusable;
afterwards read failures are logged and subscribers keep their lists, failed writes raise
``RegistryError`` (and show in ``status``) and are re-applied by the next successful lease
renewal, which rewrites every node this instance owns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar, TypeVar

from motanmesh.registry.base import (
    NODE_AGENT,
    NODE_CLIENT,
    NODE_SERVER,
    NODE_UNAVAILABLE_SERVER,
    ROOT,
    CommandListener,
    CommandView,
    NodeRegistry,
    NotifyListener,
    ProviderView,
    Registration,
    RegistrationStatus,
    RegistryError,
    RegistryStatus,
    agent_node_path,
    agent_node_url,
    node_path,
    node_url,
    registrations_to_move,
    service_dir,
    statuses_of,
)
from motanmesh.registry.sqlite_store import Batch, Row, Snapshot, SqliteStore
from motanmesh.url import URL

__all__ = ["DEFAULT_FILE", "REGISTRY_TYPE", "EmbeddedRegistry", "registry_file"]

log = logging.getLogger("motanmesh.registry.embedded")

DEFAULT_FILE = "./motanmesh-registry.db"
_T = TypeVar("_T")


def registry_file(url: URL) -> str:
    """The SQLite file an ``embedded`` registry URL names, as an absolute path."""
    name = url.get("file") or url.get("address")
    if not name:
        name = "/" + url.path if url.path else DEFAULT_FILE
    return os.path.abspath(os.path.expanduser(name))


def _seconds(url: URL, key: str, default: float) -> float:
    value = url.get_float(key, default)
    if not value > 0:
        raise RegistryError(f"embedded registry parameter {key}={url.get(key)!r} must be > 0")
    return value


@dataclass
class _ServiceWatch:
    """One watched service: its listeners and the server nodes they last received."""

    refer: URL
    directory: str
    view: ProviderView = field(default_factory=ProviderView)
    notified: dict[str, URL] = field(default_factory=dict)  # server node path → URL
    clients: set[str] = field(default_factory=set)

    def offer(self, rows: list[Row], withdrawn: frozenset[str]) -> None:
        if not rows and self.notified:
            kept = {p: u for p, u in self.notified.items() if p not in withdrawn}
            if self.view.offer(list(kept.values()), all_withdrawn=not kept):
                self.notified = kept
            return
        prefix = f"{self.directory}/{NODE_SERVER}/"
        fresh: dict[str, URL] = {}
        for name, data in rows:
            url = node_url(name, data, self.refer)
            if url is not None:
                fresh[prefix + name] = url
        if self.view.offer(list(fresh.values())):
            self.notified = fresh


class EmbeddedRegistry(NodeRegistry):
    """A registry in a SQLite file shared by the processes of one host (see module doc)."""

    supports_commands: ClassVar[bool] = True

    def __init__(self, url: URL, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(url)
        self.file = registry_file(url)
        self.ttl = _seconds(url, "ttl", 3.0)
        self.lease_interval = _seconds(url, "leaseInterval", 1.0)
        self.poll_interval = _seconds(url, "pollInterval", 0.2)
        if self.ttl <= self.lease_interval:
            raise RegistryError(
                f"embedded registry: ttl ({self.ttl}) must exceed leaseInterval "
                f"({self.lease_interval})"
            )
        self.owner = f"{socket.gethostname()}/{os.getpid()}/{os.urandom(6).hex()}"
        busy_timeout = _seconds(url, "busyTimeout", 5)
        self._store = SqliteStore(self.file, self.owner, self.ttl, busy_timeout, clock)
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._nodes: dict[str, str] = {}  # ephemeral nodes owned here: path → data
        self._registrations: dict[str, Registration] = {}  # keyed by server node path
        self._services: dict[str, _ServiceWatch] = {}  # keyed by service directory
        self._commands: dict[str, CommandView] = {}  # keyed by command node path
        self._seen: int | None = None
        self._force = False
        self._resync = False
        self._poll_lock = asyncio.Lock()
        self._errors: dict[str, str] = {}
        #: why the last start failed ("" once started)
        self._start_error = ""

    @property
    def name(self) -> str:
        return f"embedded://{self.file}"

    # ------------------------------------------------------------------ plumbing

    async def _run(self, call: Callable[[], _T]) -> _T:
        if self._executor is None:
            why = f": {self._start_error}" if self._start_error else ""
            raise RegistryError(f"{self.name} is not started{why}")
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def _write(self, batch: Batch) -> None:
        try:
            await self._run(partial(self._store.write, batch))
        except RegistryError:
            self._resync = True
            raise

    def _report(self, activity: str, err: Exception | None) -> None:
        """Log a background failure once per streak, and its recovery."""
        if err is None:
            if self._errors.pop(activity, None) is not None:
                log.info("%s: %s works again", self.name, activity)
        elif self._errors.get(activity) != str(err):
            self._errors[activity] = str(err)
            log.warning("%s: %s failed, keeping the last known state: %s", self.name, activity, err)

    async def start(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="motanmesh-registry")
        try:
            await self._run(self._store.open)
        except BaseException as err:
            self._executor.shutdown(wait=False)
            self._executor = None
            self._start_error = str(err)
            raise
        self._start_error = ""
        # what was recorded while the file was unusable (a start tried again): write every
        # node now and read every watched service
        self._resync = self._resync or bool(self._nodes)
        self._force = True
        self._tasks = [
            asyncio.create_task(self._loop(self.poll_interval, self._poll_quietly)),
            asyncio.create_task(self._loop(self.lease_interval, self._renew)),
        ]

    async def close(self) -> None:
        if self._executor is None:
            return
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:
            await self._run(self._store.drop_owned)
        except RegistryError as err:
            log.warning("%s: could not remove this instance's nodes: %s", self.name, err)
        await self._run(self._store.close)
        self._executor.shutdown(wait=False)
        self._executor = None
        self._nodes.clear()
        self._registrations.clear()
        self._services.clear()
        self._commands.clear()

    @staticmethod
    async def _loop(interval: float, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await step()
            except Exception:
                log.exception("embedded registry background step failed")

    async def _renew(self) -> None:
        resync, self._resync = self._resync, False
        try:
            await self._run(partial(self._store.renew, dict(self._nodes), resync))
        except RegistryError as err:
            self._resync = True
            self._report("lease renewal", err)
            return
        self._report("lease renewal", None)
        if resync:
            for reg in self._registrations.values():
                if reg.status is RegistryStatus.REGISTER_FAILED:
                    reg.status = (
                        RegistryStatus.REGISTER_SUCCESS
                        if reg.available
                        else RegistryStatus.NOT_REGISTER
                    )
                elif reg.status is RegistryStatus.UNREGISTER_FAILED:
                    reg.status = RegistryStatus.UNREGISTER_SUCCESS
                reg.err_msg = ""

    async def _poll_quietly(self) -> None:
        try:
            await self._poll(force=False)
        except RegistryError as err:
            self._report("watch", err)
        else:
            self._report("watch", None)

    async def _poll(self, *, force: bool) -> None:
        async with self._poll_lock:
            force, self._force = force or self._force, False
            services = {d: tuple(w.notified) for d, w in self._services.items()}
            read = partial(
                self._store.read,
                None if force else self._seen,
                services,
                list(self._commands),
            )
            try:
                snapshot = await self._run(read)
            except RegistryError:
                self._force = self._force or force
                raise
            if snapshot is not None:
                self._apply(snapshot)

    def _apply(self, snapshot: Snapshot) -> None:
        self._seen = snapshot.counter
        for directory, (rows, withdrawn) in snapshot.services.items():
            watch = self._services.get(directory)
            if watch is not None:
                watch.offer(rows, withdrawn)
        for path, value in snapshot.commands.items():
            view = self._commands.get(path)
            if view is not None:
                view.offer(value)

    async def refresh(self) -> None:
        """Re-read every watched node now and notify; ``RegistryError`` if unreadable."""
        await self._poll(force=True)

    # ------------------------------------------------------------------ services

    async def register(self, url: URL) -> None:
        server = node_path(url, NODE_SERVER)
        offline = node_path(url, NODE_UNAVAILABLE_SERVER)
        data = url.to_ext_info()
        reg = self._registrations[server] = Registration(url)
        self._nodes.pop(server, None)
        self._nodes[offline] = data
        try:
            await self._write(Batch(ephemeral={offline: data}, delete=[server]))
        except RegistryError as err:
            reg.status, reg.err_msg = RegistryStatus.REGISTER_FAILED, str(err)
            raise

    async def unregister(self, url: URL) -> None:
        server = node_path(url, NODE_SERVER)
        offline = node_path(url, NODE_UNAVAILABLE_SERVER)
        self._registrations.pop(server, None)
        self._nodes.pop(server, None)
        self._nodes.pop(offline, None)
        await self._write(Batch(delete=[server, offline], tombstone=[server]))

    async def available(self, url: URL | None = None) -> None:
        await self._move(url, available=True)

    async def unavailable(self, url: URL | None = None) -> None:
        await self._move(url, available=False)

    async def _move(self, url: URL | None, *, available: bool) -> None:
        targets = registrations_to_move(self._registrations, url)
        if not targets:
            return
        batch = Batch()
        for reg in targets:
            server = node_path(reg.url, NODE_SERVER)
            offline = node_path(reg.url, NODE_UNAVAILABLE_SERVER)
            source, target = (offline, server) if available else (server, offline)
            data = reg.url.to_ext_info()
            self._nodes.pop(source, None)
            self._nodes[target] = data
            batch.ephemeral[target] = data
            batch.delete.append(source)
            if available:
                batch.untomb.append(server)
            reg.available = available
        try:
            await self._write(batch)
        except RegistryError as err:
            failed = (
                RegistryStatus.REGISTER_FAILED if available else RegistryStatus.UNREGISTER_FAILED
            )
            for reg in targets:
                reg.status, reg.err_msg = failed, str(err)
            raise
        done = RegistryStatus.REGISTER_SUCCESS if available else RegistryStatus.UNREGISTER_SUCCESS
        for reg in targets:
            reg.status, reg.err_msg = done, ""

    def status(self) -> list[RegistrationStatus]:
        return statuses_of(self.name, self._registrations.values())

    async def subscribe(self, url: URL, listener: NotifyListener) -> None:
        directory = service_dir(url.group, url.path)
        watch = self._services.get(directory)
        if watch is None:
            try:
                rows = await self._run(partial(self._store.children, directory))
            except RegistryError as err:
                self._report("watch", err)
                rows = []
            watch = self._services.get(directory)
            if watch is None:
                watch = self._services[directory] = _ServiceWatch(url, directory)
                watch.offer(rows, frozenset())
                self._force = True
        watch.view.add(listener)
        client = node_path(url, NODE_CLIENT)
        if client not in watch.clients:
            watch.clients.add(client)
            data = url.with_params(nodeType="referer").to_ext_info()
            self._nodes[client] = data
            try:
                await self._write(Batch(ephemeral={client: data}))
            except RegistryError as err:
                log.warning("%s: could not record client node %s: %s", self.name, client, err)

    async def unsubscribe(self, url: URL, listener: NotifyListener) -> None:
        directory = service_dir(url.group, url.path)
        watch = self._services.get(directory)
        if watch is None:
            return
        watch.view.remove(listener)
        if watch.view.listeners:
            return
        del self._services[directory]
        for client in watch.clients:
            self._nodes.pop(client, None)
        try:
            await self._write(Batch(delete=sorted(watch.clients)))
        except RegistryError as err:
            log.warning("%s: could not remove client nodes: %s", self.name, err)

    async def discover(self, url: URL) -> list[URL]:
        directory = service_dir(url.group, url.path)
        try:
            rows = await self._run(partial(self._store.children, directory))
        except RegistryError:
            watch = self._services.get(directory)
            if watch is None:
                raise
            return list(watch.view.urls)
        found = (node_url(name, data, url) for name, data in rows)
        return sorted((u for u in found if u is not None), key=URL.to_ext_info)

    # ------------------------------------------------------------------ commands and agents

    async def _watch_node(self, path: str, listener: CommandListener) -> None:
        view = self._commands.get(path)
        if view is None:
            try:
                value = await self._run(partial(self._store.get, path))
            except RegistryError as err:
                self._report("watch", err)
                value = None
            view = self._commands.get(path)
            if view is None:
                view = self._commands[path] = CommandView(value)
                self._force = True
        view.add(listener)

    async def _unwatch_node(self, path: str, listener: CommandListener) -> None:
        view = self._commands.get(path)
        if view is not None:
            view.remove(listener)
            if not view.listeners:
                del self._commands[path]

    async def _get_node(self, path: str) -> str | None:
        return await self._run(partial(self._store.get, path)) or None

    async def _set_node(self, path: str, data: str | None) -> None:
        if data is None:
            await self._write(Batch(delete=[path]))
        else:
            await self._write(Batch(persistent={path: data}))

    async def register_agent(self, url: URL) -> None:
        path = agent_node_path(url)
        if url.node_type != NODE_AGENT:
            url = url.with_params(nodeType=NODE_AGENT)
        self._nodes[path] = data = url.to_ext_info()
        await self._write(Batch(ephemeral={path: data}))

    async def unregister_agent(self, url: URL) -> None:
        path = agent_node_path(url)
        self._nodes.pop(path, None)
        await self._write(Batch(delete=[path]))

    async def agent_nodes(self) -> list[URL]:
        rows = await self._run(partial(self._store.descendants, f"{ROOT}/{NODE_AGENT}/"))
        found = (agent_node_url(path, data) for path, data in rows)
        return [u for u in found if u is not None]


REGISTRY_TYPE = EmbeddedRegistry
"""What ``create_registry`` builds for this protocol."""
