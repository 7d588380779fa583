"""The ``zookeeper`` registry: the Motan node layout of ``base`` in a ZooKeeper ensemble.

Nodes are the ones motan-go and Java motan use, node for node: ephemeral
``server``/``unavailableServer``/``client`` children whose data is the URL text, persistent
command nodes, ephemeral agent nodes. Data written by Java motan's serializer (``AC ED 00 05``
then a string record) is read as well (``decode_node_data``).

URL: ``zookeeper://host:port`` or ``address=h1:p1,h2:p2`` (port 2181 when missing), plus

* ``registrySessionTimeout``: seconds, as the Go agent reads it (default 1000). The request is
  capped at 300 s and the server caps it again to its ``maxSessionTimeout`` (by default 20
  ticks, 40 s), so the default means "as long as the server allows".
* ``requestTimeout``: milliseconds one ZooKeeper operation may take (default 5000); also how
  long a connection attempt may stay unanswered (a starting server accepts connections
  before it serves them, and kazoo alone would wait a whole session timeout) before it is
  aborted and retried.
* ``connectTimeout``: milliseconds ``start`` waits for a first session (default 3000).

Behaviour:

* Watches are one-shot: every event re-reads the node and sets a new watch. A subscription
  works before ``/motan/<group>/<service>/server`` exists (an exists-watch waits for it).
  Subscribers are notified through ``ProviderView`` (keep last known good): an empty list is
  passed on only when this registry itself unregistered every last-notified provider, since
  ZooKeeper cannot tell a deliberate removal by another process from an expired session.
* Commands: subscribing creates the command node when missing and watches its data; non-empty
  data is notified; empty data or a deleted node is notified as ``None``.
* Connection loss: listeners keep their lists and are not notified. register, unregister,
  available, unavailable, client and agent nodes made meanwhile are queued (the call returns,
  ``status`` shows them failed with the reason) and applied in order on reconnect. On a new
  session (the old one expired) every ephemeral node of this registry is re-created in its
  current state. Watches are re-set and re-read after every reconnect. A node this registry
  writes that already exists for another session (an earlier process on the same address) is
  replaced.
* ``start`` waits at most ``connectTimeout``; if ZooKeeper is not reachable it logs a warning
  and returns, and the client keeps reconnecting in the background.
* Reads and writes of commands (``get_command``/``set_command``) need a live connection and
  raise ``RegistryError`` otherwise.

kazoo runs the protocol on its own threads; its callbacks only hop onto the event loop, and
every call made from the loop uses kazoo's non-blocking API, bounded by ``requestTimeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    ConnectionLoss,
    KazooException,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
    SessionMovedError,
)
from kazoo.protocol.states import EventType, KazooState

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
    RegistrationStatus,
    RegistryError,
    RegistryStatus,
    agent_node_path,
    agent_node_url,
    node_path,
    node_url,
    service_dir,
    statuses_of,
)
from motanmesh.url import URL

__all__ = ["REGISTRY_TYPE", "ZookeeperRegistry", "decode_node_data", "zookeeper_hosts"]

log = logging.getLogger("motanmesh.registry.zookeeper")
_kazoo_log = logging.getLogger("motanmesh.registry.zookeeper.kazoo")

DEFAULT_PORT = 2181
DEFAULT_SESSION_TIMEOUT = 1000.0  # seconds, the Go agent's default
SESSION_TIMEOUT_CAP = 300.0
DEFAULT_REQUEST_TIMEOUT_MS = 5000
DEFAULT_CONNECT_TIMEOUT_MS = 3000
RETRY_DELAY = 1.0  # seconds before retrying a failed operation while connected
RECONNECT_MAX_DELAY = 2.0

_JAVA_MAGIC = b"\xac\xed\x00\x05"
_TC_STRING, _TC_LONGSTRING = 0x74, 0x7C
_U16, _U64 = struct.Struct(">H"), struct.Struct(">Q")


class _NotConnectedError(Exception):
    """An operation was attempted while no ZooKeeper session is live."""


_TRANSIENT = (
    ConnectionLoss,
    SessionExpiredError,  # includes ConnectionClosedError
    SessionMovedError,
    OperationTimeoutError,
    TimeoutError,
    _NotConnectedError,
)
_FAILED = {
    RegistryStatus.NOT_REGISTER: RegistryStatus.REGISTER_FAILED,
    RegistryStatus.REGISTER_SUCCESS: RegistryStatus.REGISTER_FAILED,
    RegistryStatus.UNREGISTER_SUCCESS: RegistryStatus.UNREGISTER_FAILED,
}

Steps = list[tuple[str, bytes | None]]
"""Node writes applied in order: ``(path, data)`` creates an ephemeral node, ``None`` deletes."""


def decode_node_data(raw: bytes | None) -> str:
    """The text of a node: UTF-8, or a Java-serialized string with its header stripped."""
    if not raw:
        return ""
    if raw.startswith(_JAVA_MAGIC) and len(raw) > 4:
        tag = raw[4]
        if tag == _TC_STRING and len(raw) >= 7:
            (size,) = _U16.unpack_from(raw, 5)
            raw = raw[7 : 7 + size]
        elif tag == _TC_LONGSTRING and len(raw) >= 13:
            (size,) = _U64.unpack_from(raw, 5)
            raw = raw[13 : 13 + size]
        try:  # Java's modified UTF-8: NUL as C0 80, astral characters as surrogate pairs
            text = raw.replace(b"\xc0\x80", b"\x00").decode("utf-8", "surrogatepass")
            return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        except UnicodeDecodeError:
            pass
    return raw.decode("utf-8", "replace")


def zookeeper_hosts(url: URL) -> str:
    """The kazoo connect string of a registry URL: ``address`` entries, else host:port."""
    entries = url.get_list("address")
    if not entries and url.host:
        host = f"[{url.host}]" if ":" in url.host else url.host
        entries = [f"{host}:{url.port}" if url.port else host]
    if not entries:
        raise RegistryError(f"zookeeper registry {url} needs host:port or an address parameter")
    hosts = []
    for entry in entries:
        if entry.startswith("[") and "]" in entry:
            port_text = entry[entry.index("]") + 1 :].removeprefix(":")
        else:
            _, _, port_text = entry.rpartition(":") if ":" in entry else ("", "", "")
        if not port_text:
            hosts.append(f"{entry}:{DEFAULT_PORT}")
        elif port_text.isdigit() and 0 < int(port_text) <= 65535:
            hosts.append(entry)
        else:
            raise RegistryError(f"zookeeper registry address {entry!r} has a bad port")
    return ",".join(hosts)


def _positive(url: URL, key: str, default: float) -> float:
    value = url.get_float(key, default)
    if not value > 0:
        raise RegistryError(f"zookeeper registry parameter {key}={url.get(key)!r} must be > 0")
    return value


def _describe(err: BaseException) -> str:
    text = str(err)
    if isinstance(err, _NotConnectedError):
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@dataclass(eq=False, kw_only=True)
class _Registration:
    url: URL
    available: bool = False
    target: RegistryStatus = RegistryStatus.NOT_REGISTER  # status once written
    status: RegistryStatus = RegistryStatus.NOT_REGISTER
    err_msg: str = ""
    batch: _Batch | None = None  # the latest write concerning this URL


@dataclass(eq=False, kw_only=True)
class _Batch:
    """The node writes of one call; ``waiter`` gets ``None`` or the error to raise."""

    steps: Steps
    waiter: asyncio.Future[BaseException | None]
    regs: list[_Registration] = field(default_factory=list)

    def settle(self, err: str | None) -> None:
        for reg in self.regs:
            if reg.batch is self:
                if err is None:
                    reg.status, reg.err_msg = reg.target, ""
                else:
                    reg.status, reg.err_msg = _FAILED[reg.target], err

    def release(self, err: BaseException | None = None) -> None:
        if not self.waiter.done():
            self.waiter.set_result(err)


@dataclass(eq=False, kw_only=True)
class _Watch:
    watcher: Callable[[Any], None]
    reading: asyncio.Future[None] | None = None  # resolved when the running read ends
    dirty: bool = False  # an event arrived during the running read: read again


@dataclass(eq=False, kw_only=True)
class _ServiceWatch(_Watch):
    refer: URL
    directory: str
    view: ProviderView = field(default_factory=ProviderView)
    notified: dict[str, URL] = field(default_factory=dict)  # server node path → URL
    clients: set[str] = field(default_factory=set)

    def offer(self, rows: list[tuple[str, str]], withdrawn: set[str]) -> None:
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


@dataclass(eq=False, kw_only=True)
class _CommandWatch(_Watch):
    path: str
    view: CommandView = field(default_factory=CommandView)
    create: bool = True  # create the node on the first read when it is missing


class ZookeeperRegistry(NodeRegistry):
    """A registry in ZooKeeper, compatible with motan-go and Java motan (see module doc)."""

    supports_commands: ClassVar[bool] = True

    def __init__(self, url: URL) -> None:
        super().__init__(url)
        self.hosts = zookeeper_hosts(url)
        seconds = _positive(url, "registrySessionTimeout", DEFAULT_SESSION_TIMEOUT)
        self.requested_session_timeout = min(seconds, SESSION_TIMEOUT_CAP)
        self.request_timeout = _positive(url, "requestTimeout", DEFAULT_REQUEST_TIMEOUT_MS) / 1e3
        self.connect_timeout = _positive(url, "connectTimeout", DEFAULT_CONNECT_TIMEOUT_MS) / 1e3
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._connected = False
        self._connected_event = asyncio.Event()
        self._session_id: int | None = None
        self._had_session = False
        self._owned: dict[str, bytes] = {}  # ephemeral nodes this registry keeps: path → data
        self._registrations: dict[str, _Registration] = {}  # keyed by server node path
        self._withdrawn: set[str] = set()  # server node paths unregistered here
        self._pending: deque[_Batch] = deque()
        self._services: dict[str, _ServiceWatch] = {}  # keyed by service directory
        self._commands: dict[str, _CommandWatch] = {}  # keyed by command node path
        self._tasks: set[asyncio.Task[None]] = set()
        self._drain_task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self._errors: dict[str, str] = {}

    @property
    def name(self) -> str:
        return f"zookeeper://{self.hosts}"

    @property
    def connected(self) -> bool:
        """Whether a ZooKeeper session is live right now."""
        return self._connected

    @property
    def reachable(self) -> bool:
        return self._connected

    @property
    def session_id(self) -> int | None:
        """The id of the current (or last) ZooKeeper session."""
        return self._session_id

    async def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a live session; whether there is one."""
        try:
            async with asyncio.timeout(timeout):
                await self._connected_event.wait()
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ connection

    async def start(self) -> None:
        if self._client is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._closed = False
        retry = {"max_tries": -1, "delay": 0.1, "backoff": 2, "max_delay": RECONNECT_MAX_DELAY}
        try:
            client = KazooClient(
                hosts=self.hosts,
                timeout=self.requested_session_timeout,
                connection_retry=retry,
                logger=_kazoo_log,
            )
        except (ValueError, KazooException) as err:
            raise RegistryError(f"{self.name}: {_describe(err)}") from err
        client.add_listener(self._on_state)
        self._client = client
        await asyncio.to_thread(client.start_async)
        self._spawn(self._watch_handshake(client))
        if not await self.wait_connected(self.connect_timeout):
            log.warning(
                "%s: ZooKeeper not reachable within %.1fs; reconnecting in the background, "
                "registrations are queued until then",
                self.name,
                self.connect_timeout,
            )

    async def refresh(self) -> None:
        """Re-read every watched node now and notify changes; ``RegistryError`` if offline."""
        self._require_started()
        if not self._connected:
            raise RegistryError(f"{self.name}: not connected")
        await asyncio.gather(
            *(self._refresh_service(watch) for watch in list(self._services.values())),
            *(self._refresh_command(watch) for watch in list(self._commands.values())),
        )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        self._closed = True
        self._connected = False
        self._connected_event.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for batch in self._pending:
            batch.release()
        client.remove_listener(self._on_state)
        stopping = asyncio.ensure_future(asyncio.to_thread(self._stop_client, client))
        await asyncio.wait({stopping}, timeout=1.0)
        while not stopping.done():  # an unanswered connection attempt must not hold it up
            _abort(_handshake_socket(client))
            await asyncio.wait({stopping}, timeout=0.1)
        await stopping
        self._pending.clear()
        self._owned.clear()
        self._registrations.clear()
        self._withdrawn.clear()
        self._services.clear()
        self._commands.clear()
        self._session_id = None
        self._had_session = False

    @staticmethod
    def _stop_client(client: Any) -> None:
        try:
            client.stop()  # closes the session: the server drops its ephemeral nodes now
        except Exception as err:
            log.warning("zookeeper client did not stop cleanly: %s", _describe(err))
        finally:
            client.close()

    async def _watch_handshake(self, client: Any) -> None:
        """Abort a connection attempt the server leaves unanswered for ``requestTimeout``.

        A starting ZooKeeper server accepts connections before it answers them, and kazoo
        waits a whole session timeout for that answer; closing the socket makes it retry now
        (keeping its session).
        """
        assert self._loop is not None
        interval = min(1.0, self.request_timeout / 2)
        seen: Any = None
        since = 0.0
        while True:
            await asyncio.sleep(interval)
            sock = _handshake_socket(client)
            if sock is None or sock is not seen:
                seen, since = sock, self._loop.time()
            elif self._loop.time() - since >= self.request_timeout:
                log.warning(
                    "%s: no answer to a connection attempt within %.1fs; retrying",
                    self.name,
                    self.request_timeout,
                )
                _abort(sock)
                seen = None

    def _threadsafe(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` on the event loop (called from kazoo's threads)."""
        loop = self._loop
        if loop is None or self._closed:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed
            loop.call_soon_threadsafe(callback, *args)

    def _on_state(self, state: str) -> None:  # kazoo's connection thread
        session: int | None = None
        client = self._client
        if state == KazooState.CONNECTED and client is not None:
            client_id = client.client_id
            session = client_id[0] if client_id else None
        self._threadsafe(self._state_changed, state, session)

    def _state_changed(self, state: str, session: int | None) -> None:
        if self._closed:
            return
        if state != KazooState.CONNECTED:
            if self._connected:
                log.warning(
                    "%s: %s; keeping the last known providers, queueing changes",
                    self.name,
                    "session lost" if state == KazooState.LOST else "connection lost",
                )
            self._connected = False
            self._connected_event.clear()
            return
        restore = self._had_session and session != self._session_id
        self._session_id = session
        self._had_session = self._connected = True
        self._connected_event.set()
        log.info(
            "%s: connected (session 0x%x%s)",
            self.name,
            session or 0,
            ", new session: re-creating nodes" if restore else "",
        )
        if self._resync_task is not None:
            self._resync_task.cancel()
        self._resync_task = self._spawn(self._resync(restore))

    async def _resync(self, restore: bool) -> None:
        """After a (re)connect: re-create nodes on a new session, apply the queue, re-watch."""
        if restore:
            regs = list(self._registrations.values())
            batch = _Batch(steps=list(self._owned.items()), regs=regs, waiter=self._loop_future())
            for reg in regs:
                reg.batch = batch
            dropped, self._pending = self._pending, deque([batch])
            for old in dropped:
                old.release()
            if self._drain_task is not None:
                self._drain_task.cancel()
                self._drain_task = None
            self._kick()
            await batch.waiter
        else:
            self._kick()
        for watch in list(self._services.values()):
            self._spawn(self._refresh_service(watch))
        for command in list(self._commands.values()):
            self._spawn(self._refresh_command(command))

    def _loop_future(self) -> asyncio.Future[Any]:
        assert self._loop is not None
        return self._loop.create_future()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: background task failed", self.name, exc_info=task.exception())

    def _report(self, activity: str, err: BaseException | None) -> None:
        """Log a background failure once per streak, and its recovery."""
        if err is None:
            if self._errors.pop(activity, None) is not None:
                log.info("%s: %s works again", self.name, activity)
        elif self._errors.get(activity) != _describe(err):
            self._errors[activity] = _describe(err)
            log.warning("%s: %s failed: %s", self.name, activity, _describe(err))

    def _require_started(self) -> None:
        if self._client is None:
            raise RegistryError(f"{self.name} is not started")

    # ------------------------------------------------------------------ kazoo calls

    async def _zk(self, call: Callable[[Any], Any]) -> Any:
        """Start one asynchronous kazoo call on the live client and await its result."""
        client = self._client
        if client is None or not self._connected:
            raise _NotConnectedError(f"not connected to {self.name}")
        future: asyncio.Future[Any] = self._loop_future()
        call(client).rawlink(lambda result: self._threadsafe(_resolve, future, result))
        async with asyncio.timeout(self.request_timeout):
            return await future

    async def _put(self, path: str, data: bytes) -> None:
        """Make ``path`` an ephemeral node of this session holding ``data``."""
        for _ in range(4):
            try:
                await self._zk(lambda c: c.create_async(path, data, ephemeral=True, makepath=True))
                return
            except NodeExistsError:
                pass
            try:
                current, stat = await self._zk(lambda c: c.get_async(path))
            except NoNodeError:
                continue
            version: int = stat.version
            try:
                if stat.ephemeralOwner == self._session_id:
                    if current != data:
                        await self._zk(partial(_set_data, path=path, data=data, version=version))
                    return
                # A node of another (older) session: replace it with ours.
                await self._zk(partial(_delete_node, path=path, version=version))
            except (NoNodeError, BadVersionError):
                continue
        raise RegistryError(f"node {path} keeps changing under this registry")

    async def _delete(self, path: str) -> None:
        with contextlib.suppress(NoNodeError):
            await self._zk(partial(_delete_node, path=path, version=-1))

    # ------------------------------------------------------------------ the write queue

    async def _submit(self, steps: Steps, regs: Iterable[_Registration] = ()) -> None:
        """Queue node writes; wait for them while connected; raise what fails for good."""
        batch = _Batch(steps=steps, regs=list(regs), waiter=self._loop_future())
        for reg in batch.regs:
            reg.batch = batch
        self._pending.append(batch)
        if not self._connected:
            batch.settle(f"queued until {self.name} is reachable")
            self._report("write", _NotConnectedError("not connected, changes are queued"))
            return
        self._kick()
        err = await batch.waiter
        if err is not None:
            raise err

    def _kick(self) -> None:
        if not (self._connected and self._pending):
            return
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = self._spawn(self._drain())

    async def _drain(self) -> None:
        while self._pending and self._connected:
            batch = self._pending[0]
            try:
                for path, data in batch.steps:
                    await (self._delete(path) if data is None else self._put(path, data))
            except _TRANSIENT as err:
                batch.settle(f"waiting for {self.name}: {_describe(err)}")
                batch.release()
                self._report("write", err)
                if self._connected:
                    await asyncio.sleep(RETRY_DELAY)
                continue
            except Exception as err:  # refused for good (no permission, bad path, ...)
                failure = RegistryError(f"{self.name}: {_describe(err)}")
                log.warning("%s: node write failed: %s", self.name, _describe(err))
                batch.settle(str(failure))
                batch.release(failure)
            else:
                self._report("write", None)
                batch.settle(None)
                batch.release()
            if self._pending and self._pending[0] is batch:
                self._pending.popleft()

    # ------------------------------------------------------------------ watches

    def _watcher(self, handler: Callable[[str], None], key: str) -> Callable[[Any], None]:
        def watch(event: Any) -> None:  # kazoo's callback thread
            if event.type != EventType.NONE:  # NONE: the connection dropped; resync follows
                self._threadsafe(handler, key)

        return watch

    async def _refresh(self, watch: _Watch, step: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``step`` (a read that re-sets the watch) until no event arrived meanwhile.

        Returns once a read that started after this call has finished.
        """
        if watch.reading is not None:
            watch.dirty = True
            await asyncio.shield(watch.reading)
            return
        reading = watch.reading = self._loop_future()
        try:
            while True:
                watch.dirty = False
                try:
                    await step()
                except _TRANSIENT as err:
                    self._report("watch", err)
                    if self._connected:
                        self._spawn(self._retry_later(watch, step))
                    return
                except KazooException as err:
                    self._report("watch", err)
                    return
                self._report("watch", None)
                if not watch.dirty:
                    return
        finally:
            watch.reading = None
            reading.set_result(None)

    async def _retry_later(
        self, watch: _Watch, step: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        await asyncio.sleep(RETRY_DELAY)
        await self._refresh(watch, step)

    async def _read_providers(
        self, directory: str, watcher: Callable[[Any], None] | None
    ) -> list[tuple[str, str]]:
        """``(node name, data)`` of the ``server`` children; sets ``watcher`` if given."""
        server = f"{directory}/{NODE_SERVER}"
        for _ in range(3):
            try:
                names: list[str] = await self._zk(
                    lambda c: c.get_children_async(server, watch=watcher)
                )
                break
            except NoNodeError:
                if watcher is None:
                    return []
            if await self._zk(lambda c: c.exists_async(server, watch=watcher)) is None:
                return []  # the exists-watch fires when the node appears
        else:
            return []
        results = await asyncio.gather(
            *(self._zk(partial(_get_data, path=f"{server}/{name}")) for name in names),
            return_exceptions=True,
        )
        rows: list[tuple[str, str]] = []
        for name, result in zip(names, results, strict=True):
            if isinstance(result, NoNodeError):
                continue
            if isinstance(result, BaseException):
                raise result
            rows.append((name, decode_node_data(result[0])))
        return rows

    def _service_event(self, directory: str) -> None:
        watch = self._services.get(directory)
        if watch is not None:
            self._spawn(self._refresh_service(watch))

    async def _refresh_service(self, watch: _ServiceWatch) -> None:
        async def step() -> None:
            rows = await self._read_providers(watch.directory, watch.watcher)
            if self._services.get(watch.directory) is watch:
                watch.offer(rows, self._withdrawn)

        await self._refresh(watch, step)

    async def _read_command(self, watch: _CommandWatch) -> str | None:
        path = watch.path
        for _ in range(3):
            try:
                data, _stat = await self._zk(lambda c: c.get_async(path, watch=watch.watcher))
                watch.create = False
                return decode_node_data(data) or None
            except NoNodeError:
                pass
            if watch.create:
                watch.create = False
                try:
                    await self._zk(lambda c: c.create_async(path, b"", makepath=True))
                except NodeExistsError:
                    pass
                except _TRANSIENT:
                    raise
                except KazooException as err:  # e.g. no permission: watch for it instead
                    log.warning("%s: cannot create %s: %s", self.name, path, _describe(err))
                continue
            if await self._zk(lambda c: c.exists_async(path, watch=watch.watcher)) is None:
                return None
        return None

    def _command_event(self, path: str) -> None:
        watch = self._commands.get(path)
        if watch is not None:
            self._spawn(self._refresh_command(watch))

    async def _refresh_command(self, watch: _CommandWatch) -> None:
        async def step() -> None:
            value = await self._read_command(watch)
            if self._commands.get(watch.path) is watch:
                watch.view.offer(value)

        await self._refresh(watch, step)

    # ------------------------------------------------------------------ services

    async def register(self, url: URL) -> None:
        self._require_started()
        server = node_path(url, NODE_SERVER)
        offline = node_path(url, NODE_UNAVAILABLE_SERVER)
        data = url.to_ext_info().encode()
        reg = self._registrations[server] = _Registration(url=url)
        self._withdrawn.discard(server)
        self._owned.pop(server, None)
        self._owned[offline] = data
        await self._submit([(server, None), (offline, data)], [reg])

    async def unregister(self, url: URL) -> None:
        self._require_started()
        server = node_path(url, NODE_SERVER)
        offline = node_path(url, NODE_UNAVAILABLE_SERVER)
        self._registrations.pop(server, None)
        self._owned.pop(server, None)
        self._owned.pop(offline, None)
        self._withdrawn.add(server)
        await self._submit([(server, None), (offline, None)])

    async def available(self, url: URL | None = None) -> None:
        await self._move(url, available=True)

    async def unavailable(self, url: URL | None = None) -> None:
        await self._move(url, available=False)

    async def _move(self, url: URL | None, *, available: bool) -> None:
        self._require_started()
        if url is None:
            targets = list(self._registrations.values())
        else:
            server = node_path(url, NODE_SERVER)
            reg = self._registrations.get(server)
            if reg is None or reg.url != url:
                reg = self._registrations[server] = _Registration(url=url)
            targets = [reg]
        if not targets:
            return
        steps: Steps = []
        for reg in targets:
            server = node_path(reg.url, NODE_SERVER)
            offline = node_path(reg.url, NODE_UNAVAILABLE_SERVER)
            source, target = (offline, server) if available else (server, offline)
            data = reg.url.to_ext_info().encode()
            self._owned.pop(source, None)
            self._owned[target] = data
            steps += [(source, None), (target, data)]
            reg.available = available
            if available:
                reg.target = RegistryStatus.REGISTER_SUCCESS
                self._withdrawn.discard(server)
            else:
                reg.target = RegistryStatus.UNREGISTER_SUCCESS
        await self._submit(steps, targets)

    def status(self) -> list[RegistrationStatus]:
        return statuses_of(self.name, self._registrations.values())

    async def subscribe(self, url: URL, listener: NotifyListener) -> None:
        self._require_started()
        directory = service_dir(url.group, url.path)
        watch = self._services.get(directory)
        if watch is None:
            watcher = self._watcher(self._service_event, directory)
            watch = _ServiceWatch(watcher=watcher, refer=url, directory=directory)
            self._services[directory] = watch
            if self._connected:
                await self._refresh_service(watch)
        watch.view.add(listener)
        client = node_path(url, NODE_CLIENT)
        if client not in watch.clients:
            watch.clients.add(client)
            data = url.with_params(nodeType="referer").to_ext_info().encode()
            self._owned[client] = data
            try:
                await self._submit([(client, data)])
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
            self._owned.pop(client, None)
        if self._client is None:
            return
        try:
            await self._submit([(client, None) for client in sorted(watch.clients)])
        except RegistryError as err:
            log.warning("%s: could not remove client nodes: %s", self.name, err)

    async def discover(self, url: URL) -> list[URL]:
        self._require_started()
        directory = service_dir(url.group, url.path)
        try:
            rows = await self._read_providers(directory, None)
        except (*_TRANSIENT, KazooException) as err:
            watch = self._services.get(directory)
            if watch is not None:
                return list(watch.view.urls)
            raise RegistryError(f"{self.name}: cannot read {directory}: {_describe(err)}") from err
        found = (node_url(name, data, url) for name, data in rows)
        return sorted((u for u in found if u is not None), key=URL.to_ext_info)

    # ------------------------------------------------------------------ commands and agents

    async def _watch_node(self, path: str, listener: CommandListener) -> None:
        self._require_started()
        watch = self._commands.get(path)
        if watch is None:
            watch = _CommandWatch(watcher=self._watcher(self._command_event, path), path=path)
            self._commands[path] = watch
            if self._connected:
                await self._refresh_command(watch)
        watch.view.add(listener)

    async def _unwatch_node(self, path: str, listener: CommandListener) -> None:
        watch = self._commands.get(path)
        if watch is not None:
            watch.view.remove(listener)
            if not watch.view.listeners:
                del self._commands[path]

    async def _get_node(self, path: str) -> str | None:
        self._require_started()
        try:
            data, _stat = await self._zk(lambda c: c.get_async(path))
        except NoNodeError:
            return None
        except (*_TRANSIENT, KazooException) as err:
            raise RegistryError(f"{self.name}: cannot read {path}: {_describe(err)}") from err
        return decode_node_data(data) or None

    async def _set_node(self, path: str, data: str | None) -> None:
        self._require_started()
        try:
            if data is None:
                await self._delete(path)
                return
            raw = data.encode()
            try:
                await self._zk(lambda c: c.set_async(path, raw))
            except NoNodeError:
                try:
                    await self._zk(lambda c: c.create_async(path, raw, makepath=True))
                except NodeExistsError:
                    await self._zk(lambda c: c.set_async(path, raw))
        except (*_TRANSIENT, KazooException) as err:
            raise RegistryError(f"{self.name}: cannot write {path}: {_describe(err)}") from err

    async def register_agent(self, url: URL) -> None:
        self._require_started()
        path = agent_node_path(url)
        if url.node_type != NODE_AGENT:
            url = url.with_params(nodeType=NODE_AGENT)
        self._owned[path] = data = url.to_ext_info().encode()
        await self._submit([(path, data)])

    async def unregister_agent(self, url: URL) -> None:
        self._require_started()
        path = agent_node_path(url)
        self._owned.pop(path, None)
        await self._submit([(path, None)])

    async def agent_nodes(self) -> list[URL]:
        self._require_started()
        top = f"{ROOT}/{NODE_AGENT}"
        found: list[URL] = []
        try:
            try:
                applications = await self._zk(lambda c: c.get_children_async(top))
            except NoNodeError:
                return []
            for application in sorted(applications):
                directory = f"{top}/{application}/node"
                try:
                    names = await self._zk(partial(_children, path=directory))
                except NoNodeError:
                    continue
                for name in sorted(names):
                    path = f"{directory}/{name}"
                    try:
                        data, _stat = await self._zk(partial(_get_data, path=path))
                    except NoNodeError:
                        continue
                    url = agent_node_url(path, decode_node_data(data))
                    if url is not None:
                        found.append(url)
        except (*_TRANSIENT, KazooException) as err:
            raise RegistryError(f"{self.name}: cannot list agent nodes: {_describe(err)}") from err
        return found


def _children(client: Any, *, path: str) -> Any:
    return client.get_children_async(path)


def _handshake_socket(client: Any) -> Any:
    """The socket of kazoo's connection attempt in progress, if there is one."""
    if client.connected:
        return None
    sock = getattr(getattr(client, "_connection", None), "_socket", None)
    if sock is None or sock.fileno() < 0:
        return None
    return sock


def _abort(sock: Any) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _get_data(client: Any, *, path: str) -> Any:
    return client.get_async(path)


def _set_data(client: Any, *, path: str, data: bytes, version: int) -> Any:
    return client.set_async(path, data, version=version)


def _delete_node(client: Any, *, path: str, version: int) -> Any:
    return client.delete_async(path, version=version)


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    """Copy a finished kazoo result into an asyncio future (on the event loop)."""
    if future.done():
        return
    err = result.exception
    if err is not None:
        future.set_exception(err)
    else:
        future.set_result(result.value)


REGISTRY_TYPE = ZookeeperRegistry
"""What ``create_registry`` builds for this protocol."""
