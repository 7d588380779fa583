"""The ``etcd`` registry: the motanmesh node layout as keys of an etcd v3 cluster.

Keys are the node paths of ``motanmesh.registry.base`` (``/motan/<group>/<service>/server/
<ip:port>`` ...), values the URL text form. One addition: ``unregister`` leaves a marker
``/motan/<group>/<service>/unregisteredServer/<ip:port>`` so that subscribers can tell a
provider removed on purpose from one that vanished (keep last known good, see ``base``).

Addresses come from the ``address`` parameter (``host:port,host:port``, tried in order) or else
from the registry URL's host and port (2379 when missing). Parameters: ``ttl`` (lease seconds,
default 10), ``timeout`` (seconds per request, default 3), ``retryInterval`` (seconds between
reconnection attempts, default 1).

The client speaks etcd's v3 JSON gateway (``/v3/kv/*``, ``/v3/lease/*``, ``/v3/watch``, keys
and values in base64) over aiohttp. The ``etcd3`` Python package is not used: it is
unmaintained and breaks with current protobuf releases.

Behaviour:

* Every ephemeral node (registrations, client and agent nodes, markers) is put with the one
  lease of this instance, kept alive every ``ttl / 3`` seconds; ``close`` revokes it.
* Each watched service is one prefix watch on its directory; each command one key watch. A
  broken stream is followed by a fresh read (range) and a watch from that revision + 1.
* While etcd is unreachable, subscribers keep their lists; ``register``, ``unregister``,
  ``available``, ``unavailable``, agent and client nodes are queued (``status`` shows them as
  failed with the reason) and applied in order when etcd answers again. If the lease expired
  meanwhile, a new one is granted and every node of this instance is written again with its
  current state. Command reads and writes raise ``RegistryError`` instead.
* ``start`` waits at most ``timeout`` per address: when etcd cannot be reached it logs a
  warning, returns and keeps retrying in the background. An address that answers HTTP but is
  not an etcd v3 gateway makes ``start`` raise ``RegistryError``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp

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
from motanmesh.url import URL

__all__ = ["DEFAULT_PORT", "NODE_UNREGISTERED", "REGISTRY_TYPE", "EtcdRegistry", "etcd_endpoints"]

log = logging.getLogger("motanmesh.registry.etcd")

DEFAULT_PORT = 2379
NODE_UNREGISTERED = "unregisteredServer"
_MAX_TXN_OPS = 128  # etcd's default --max-txn-ops
_MAX_LINE = 64 << 20
_UNAVAILABLE_CODES = frozenset({4, 14})  # gRPC DeadlineExceeded, Unavailable
_Json = dict[str, Any]


class _UnreachableError(RegistryError):
    """No etcd endpoint answered."""


class _LeaseLostError(RegistryError):
    """etcd no longer knows this instance's lease."""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def _text(value: str) -> str:
    return base64.b64decode(value).decode("utf-8", "replace")


def _prefix_end(prefix: str) -> str:
    """The ``range_end`` that selects every key starting with ``prefix`` (base64)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1  # prefixes end with "/", never 0xff
    return base64.b64encode(bytes(raw)).decode("ascii")


def etcd_endpoints(url: URL) -> list[str]:
    """The ``http://host:port`` endpoints an ``etcd`` registry URL names, in order."""
    entries = url.get_list("address") or ([url.address] if url.host else [])
    endpoints = []
    for entry in entries:
        scheme, sep, authority = entry.partition("://")
        if not sep:
            scheme, authority = "http", entry
        if scheme not in ("http", "https") or not authority.strip("/"):
            raise RegistryError(f"etcd registry address {entry!r} is not host:port")
        authority = authority.strip("/")
        host, colon, port = authority.rpartition(":")
        if not colon or "]" in port:
            host, port = authority, ""
        port = port if port not in ("", "0") else str(DEFAULT_PORT)
        if not host or not port.isdigit():
            raise RegistryError(f"etcd registry address {entry!r} is not host:port")
        endpoints.append(f"{scheme}://{host}:{port}")
    if not endpoints:
        raise RegistryError(f"etcd registry {url} names no address (host:port or address=)")
    return endpoints


class _Gateway:
    """A minimal client of etcd's v3 JSON gateway, failing over between endpoints."""

    def __init__(self, endpoints: list[str], timeout: float) -> None:
        self.endpoints = endpoints
        self.timeout = timeout
        self.current = 0
        self.session: aiohttp.ClientSession | None = None

    @property
    def endpoint(self) -> str:
        return self.endpoints[self.current]

    async def call(self, path: str, body: _Json, timeout: float | None = None) -> _Json:
        if self.session is None:
            raise RegistryError("etcd registry is not started")
        limit = aiohttp.ClientTimeout(total=timeout or self.timeout)
        errors = []
        for step in range(len(self.endpoints)):
            index = (self.current + step) % len(self.endpoints)
            endpoint = self.endpoints[index]
            try:
                async with self.session.post(endpoint + path, json=body, timeout=limit) as resp:
                    status, raw = resp.status, await resp.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as err:
                errors.append(f"{endpoint}: {str(err) or type(err).__name__}")
                continue
            self.current = index
            return self._answer(endpoint + path, status, raw)
        raise _UnreachableError("; ".join(errors))

    @staticmethod
    def _answer(where: str, status: int, raw: bytes) -> _Json:
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            if status >= 500:
                raise _UnreachableError(f"{where}: HTTP {status}")
            raise RegistryError(f"{where}: HTTP {status}, not an etcd v3 JSON gateway")
        if "result" in data and isinstance(data["result"], dict):
            data = data["result"]
        error = data.get("error")
        if error is None and status == 200:
            return data
        message = str(data.get("message") or error or f"HTTP {status}")
        if data.get("code") in _UNAVAILABLE_CODES or status in (502, 503, 504):
            raise _UnreachableError(f"{where}: {message}")
        if "lease not found" in message:
            raise _LeaseLostError(f"{where}: {message}")
        raise RegistryError(f"{where}: {message}")

    async def stream(self, path: str, body: _Json) -> aiohttp.ClientResponse:
        """Open a streaming call on the current endpoint (no read timeout)."""
        if self.session is None:
            raise RegistryError("etcd registry is not started")
        limit = aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_connect=self.timeout)
        try:
            resp = await self.session.post(self.endpoint + path, json=body, timeout=limit)
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise _UnreachableError(f"{self.endpoint}: {str(err) or type(err).__name__}") from err
        if resp.status != 200:
            raw = await resp.read()
            resp.close()
            self._answer(self.endpoint + path, resp.status, raw)
            raise RegistryError(f"{self.endpoint}{path}: HTTP {resp.status}")
        return resp

    @staticmethod
    async def messages(resp: aiohttp.ClientResponse) -> AsyncIterator[_Json]:
        """The newline-delimited JSON objects of a streaming answer."""
        pending: list[bytes] = []
        size = 0
        try:
            async for chunk in resp.content.iter_any():
                pending.append(chunk)
                size += len(chunk)
                if b"\n" not in chunk:
                    if size > _MAX_LINE:
                        raise _UnreachableError("etcd watch message too large")
                    continue
                *lines, tail = b"".join(pending).split(b"\n")
                pending, size = [tail], len(tail)
                for line in lines:
                    message = json.loads(line) if line.strip() else None
                    if isinstance(message, dict):
                        yield message
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as err:
            raise _UnreachableError(
                f"watch stream broken: {str(err) or type(err).__name__}"
            ) from err


class _Watch:
    """One watched key or prefix: its keys and values as last read, and the revision."""

    def __init__(self, key: str, prefix: bool) -> None:
        self.key = key
        self.body: _Json = {"key": _b64(key)}
        if prefix:
            self.body["range_end"] = _prefix_end(key)
        self.nodes: dict[str, str] = {}
        self.revision = 0
        self.synced = False
        self.stream: aiohttp.ClientResponse | None = None
        self.task: asyncio.Task[None] | None = None

    def load(self, nodes: dict[str, str], revision: int) -> None:
        self.nodes, self.revision, self.synced = nodes, revision, True
        self.publish()

    def apply(self, events: list[_Json]) -> None:
        seen, changed = self.revision, False
        for event in events:
            kv = event.get("kv", {})
            revision = int(kv.get("mod_revision", 0))
            if revision <= seen:  # already part of the last read
                continue
            self.revision, changed = max(revision, self.revision), True
            key = _text(kv.get("key", ""))
            if event.get("type") == "DELETE":
                self.nodes.pop(key, None)
            else:
                self.nodes[key] = _text(kv.get("value", ""))
        if changed:
            self.publish()

    def publish(self) -> None:
        raise NotImplementedError


class _ServiceWatch(_Watch):
    """A prefix watch on one service directory; offers its ``server`` list to the view."""

    def __init__(self, refer: URL, directory: str) -> None:
        super().__init__(directory + "/", prefix=True)
        self.refer = refer
        self.view = ProviderView()
        self.notified: dict[str, URL] = {}  # server node name → URL last notified
        self.clients: set[str] = set()

    def publish(self) -> None:
        servers: dict[str, str] = {}
        withdrawn: set[str] = set()
        for key, value in self.nodes.items():
            kind, _, name = key[len(self.key) :].partition("/")
            if kind == NODE_SERVER:
                servers[name] = value
            elif kind == NODE_UNREGISTERED:
                withdrawn.add(name)
        if not servers and self.notified:
            kept = {n: u for n, u in self.notified.items() if n not in withdrawn}
            if self.view.offer(list(kept.values()), all_withdrawn=not kept):
                self.notified = kept
            return
        fresh = {}
        for name, data in servers.items():
            url = node_url(name, data, self.refer)
            if url is not None:
                fresh[name] = url
        if self.view.offer(list(fresh.values())):
            self.notified = fresh


class _CommandWatch(_Watch):
    def __init__(self, path: str) -> None:
        super().__init__(path, prefix=False)
        self.view = CommandView()

    def publish(self) -> None:
        self.view.offer(self.nodes.get(self.key))


@dataclass
class _Txn:
    """Ephemeral puts and deletes applied together; ``done`` gets the error or ``None``."""

    put: dict[str, str] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    done: Callable[[str | None], None] | None = None
    error: str | None = None
    applied: bool = False


def _seconds(url: URL, key: str, default: float) -> float:
    value = url.get_float(key, default)
    if not value > 0:
        raise RegistryError(f"etcd registry parameter {key}={url.get(key)!r} must be > 0")
    return value


class EtcdRegistry(NodeRegistry):
    """A registry stored in etcd v3, reached through its JSON gateway (see module doc)."""

    supports_commands: ClassVar[bool] = True

    def __init__(self, url: URL) -> None:
        super().__init__(url)
        self.ttl = url.get_int("ttl", 10)
        if self.ttl < 1:
            raise RegistryError(f"etcd registry parameter ttl={url.get('ttl')!r} must be >= 1")
        self.timeout = _seconds(url, "timeout", 3.0)
        self.retry_interval = _seconds(url, "retryInterval", 1.0)
        self._gateway = _Gateway(etcd_endpoints(url), self.timeout)
        self.lease: int | None = None
        self._recreate = False
        self._online = asyncio.Event()
        self._wake = asyncio.Event()
        self._offline_reason: str | None = None
        self._queue: deque[_Txn] = deque()
        self._flush_lock = asyncio.Lock()
        self._nodes: dict[str, str] = {}  # ephemeral nodes of this instance: path → data
        self._registrations: dict[str, Registration] = {}  # keyed by server node path
        self._services: dict[str, _ServiceWatch] = {}  # keyed by service directory
        self._commands: dict[str, _CommandWatch] = {}  # keyed by command path
        self._keeper: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return "etcd://" + ",".join(e.partition("://")[2] for e in self._gateway.endpoints)

    @property
    def online(self) -> bool:
        """Whether etcd answered the last lease keepalive."""
        return self._online.is_set()

    @property
    def reachable(self) -> bool:
        return self.online

    # ------------------------------------------------------------------ connection

    async def start(self) -> None:
        if self._gateway.session is not None:
            return
        self._gateway.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        try:
            await self._connect()
        except _UnreachableError as err:
            self._offline_reason = str(err)
            log.warning(
                "%s is unreachable at start (%s); registrations are queued, retrying every %gs "
                "in the background",
                self.name,
                err,
                self.retry_interval,
            )
        except RegistryError:
            await self._gateway.session.close()
            self._gateway.session = None
            raise
        self._keeper = asyncio.create_task(self._keep())

    async def close(self) -> None:
        session = self._gateway.session
        if session is None:
            return
        tasks = [w.task for w in self._watches() if w.task is not None]
        if self._keeper is not None:
            tasks.append(self._keeper)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._close_streams()
        if self.lease is not None and self.online:
            try:
                await self._gateway.call("/v3/lease/revoke", {"ID": str(self.lease)})
            except RegistryError as err:
                log.warning("%s: could not revoke lease %x: %s", self.name, self.lease, err)
        await session.close()
        self._gateway.session = None
        self._online.clear()
        self.lease, self._keeper = None, None
        for store in (self._nodes, self._registrations, self._services, self._commands):
            store.clear()
        self._queue.clear()

    def _watches(self) -> list[_Watch]:
        return [*self._services.values(), *self._commands.values()]

    def _close_streams(self) -> None:
        for watch in self._watches():
            if watch.stream is not None:
                watch.stream.close()

    def _went_offline(self, err: Exception) -> None:
        """Stop streaming and queue writes until the keeper reconnects."""
        self._offline_reason = str(err)
        if not self._online.is_set():
            return
        log.warning(
            "%s is unreachable (%s); subscribers keep their lists, registrations are queued, "
            "retrying every %gs",
            self.name,
            err,
            self.retry_interval,
        )
        self._online.clear()
        self._wake.set()
        self._close_streams()

    async def _connect(self) -> None:
        """Check or grant the lease, apply queued writes; online afterwards."""
        while True:
            if self.lease is not None:
                answer = await self._gateway.call(
                    "/v3/lease/keepalive", {"ID": str(self.lease)}, min(self.timeout, self.ttl / 2)
                )
                if int(answer.get("TTL", 0)) <= 0:
                    log.warning("%s: lease %x expired; granting a new one", self.name, self.lease)
                    self.lease = None
            if self.lease is None:
                answer = await self._gateway.call("/v3/lease/grant", {"TTL": str(self.ttl)})
                self.lease = int(answer["ID"])
                self._recreate = bool(self._nodes)
            try:
                await self._flush()
                if self._recreate:
                    await self._apply(_Txn(put=dict(self._nodes)))
                    self._recreate = False
                    log.info(
                        "%s: wrote %d nodes again under a new lease", self.name, len(self._nodes)
                    )
            except _LeaseLostError:
                self.lease = None
                continue
            break
        if not self._online.is_set():
            if self._offline_reason is not None:
                log.info("%s is reachable again", self.name)
            self._offline_reason = None
            self._online.set()

    async def _keep(self) -> None:
        """Keep the lease alive; reconnect after failures."""
        while True:
            wait = self.ttl / 3 if self.online else self.retry_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            try:
                await self._connect()
            except RegistryError as err:
                self._went_offline(err)
            except Exception:
                log.exception("%s: lease keeper step failed", self.name)

    # ------------------------------------------------------------------ writes

    async def _apply(self, txn: _Txn) -> None:
        if self.lease is None:
            raise _LeaseLostError("no lease")
        lease = str(self.lease)
        ops: list[_Json] = [
            {"request_delete_range": {"key": _b64(k)}} for k in txn.delete if k not in txn.put
        ]
        ops += [
            {"request_put": {"key": _b64(k), "value": _b64(v), "lease": lease}}
            for k, v in txn.put.items()
        ]
        for start in range(0, len(ops), _MAX_TXN_OPS):
            await self._gateway.call("/v3/kv/txn", {"success": ops[start : start + _MAX_TXN_OPS]})

    async def _flush(self) -> None:
        """Apply queued transactions in order; raises when etcd or the lease is gone."""
        async with self._flush_lock:
            while self._queue:
                txn = self._queue[0]
                try:
                    await self._apply(txn)
                except (_UnreachableError, _LeaseLostError):
                    raise
                except RegistryError as err:
                    txn.error = str(err)
                    log.error("%s: write failed and was dropped: %s", self.name, err)
                self._queue.popleft()
                txn.applied = txn.error is None
                if txn.done is not None:
                    txn.done(txn.error)

    async def _submit(self, txn: _Txn) -> None:
        """Apply now when possible, else queue; ``RegistryError`` when etcd refused it."""
        if self._gateway.session is None:
            raise RegistryError(f"{self.name} is not started")
        self._queue.append(txn)
        if self.online:
            try:
                await self._flush()
            except _UnreachableError as err:
                self._went_offline(err)
            except _LeaseLostError as err:
                self._offline_reason = str(err)
                self._online.clear()
                self._wake.set()
        if txn.error is not None:
            raise RegistryError(txn.error)
        if not txn.applied:
            reason = f"queued until etcd answers: {self._offline_reason or 'lease lost'}"
            log.info("%s: %s", self.name, reason)
            if txn.done is not None:
                txn.done(reason)

    async def _range(self, key: str, prefix: bool) -> tuple[dict[str, str], int]:
        body: _Json = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _prefix_end(key)
        answer = await self._gateway.call("/v3/kv/range", body)
        nodes = {_text(kv["key"]): _text(kv.get("value", "")) for kv in answer.get("kvs", [])}
        return nodes, int(answer.get("header", {}).get("revision", 0))

    # ------------------------------------------------------------------ watches

    async def _sync(self, watch: _Watch) -> None:
        nodes, revision = await self._range(watch.key, "range_end" in watch.body)
        watch.load(nodes, revision)

    async def _follow(self, watch: _Watch) -> None:
        """Keep one watch current: read, stream changes, read again after a break."""
        while True:
            await self._online.wait()
            created = False
            try:
                if not watch.synced:
                    await self._sync(watch)
                request = {**watch.body, "start_revision": str(watch.revision + 1)}
                watch.stream = await self._gateway.stream("/v3/watch", {"create_request": request})
                async for message in self._gateway.messages(watch.stream):
                    result = message.get("result") or {}
                    if "error" in message:
                        raise RegistryError(f"watch {watch.key}: {message['error']}")
                    created = created or bool(result.get("created"))
                    if result.get("canceled"):
                        log.info("%s: watch on %s cancelled, reading again", self.name, watch.key)
                        break
                    watch.apply(result.get("events", []))
            except _UnreachableError as err:
                self._went_offline(err)
            except RegistryError as err:
                log.warning("%s: watch on %s failed: %s", self.name, watch.key, err)
            except Exception:
                log.exception("%s: watch on %s failed", self.name, watch.key)
            finally:
                if watch.stream is not None:
                    watch.stream.close()
                    watch.stream = None
            watch.synced = False
            if not created and self.online:
                await asyncio.sleep(self.retry_interval)  # a stream that fails at once

    async def _start_watch(self, watch: _Watch) -> None:
        """Read the watched nodes now when etcd answers, then follow them in the background."""
        try:
            if self.online:
                await self._sync(watch)
        except _UnreachableError as err:
            self._went_offline(err)
        except RegistryError as err:
            log.warning("%s: could not read %s: %s", self.name, watch.key, err)
        finally:
            watch.task = asyncio.create_task(self._follow(watch))

    @staticmethod
    async def _stop_watch(watch: _Watch) -> None:
        if watch.task is not None:
            watch.task.cancel()
            await asyncio.gather(watch.task, return_exceptions=True)
        if watch.stream is not None:
            watch.stream.close()

    async def refresh(self) -> None:
        """Read every watched node now and notify changes; ``RegistryError`` if unreachable."""
        for watch in self._watches():
            nodes, revision = await self._range(watch.key, "range_end" in watch.body)
            if revision >= watch.revision:
                watch.load(nodes, revision)

    # ------------------------------------------------------------------ services

    @staticmethod
    def _mark(
        targets: list[Registration], ok: RegistryStatus, failed: RegistryStatus
    ) -> Callable[[str | None], None]:
        """The ``done`` callback that records a write's outcome on its registrations."""

        def done(error: str | None) -> None:
            for reg in targets:
                reg.status, reg.err_msg = (ok, "") if error is None else (failed, error)

        return done

    async def register(self, url: URL) -> None:
        server, offline = node_path(url, NODE_SERVER), node_path(url, NODE_UNAVAILABLE_SERVER)
        marker = node_path(url, NODE_UNREGISTERED)
        reg = self._registrations[server] = Registration(url)
        data = url.to_ext_info()
        for path in (server, marker):
            self._nodes.pop(path, None)
        self._nodes[offline] = data
        done = self._mark([reg], RegistryStatus.NOT_REGISTER, RegistryStatus.REGISTER_FAILED)
        await self._submit(_Txn({offline: data}, [server, marker], done))

    async def unregister(self, url: URL) -> None:
        server, offline = node_path(url, NODE_SERVER), node_path(url, NODE_UNAVAILABLE_SERVER)
        marker = node_path(url, NODE_UNREGISTERED)
        self._registrations.pop(server, None)
        self._nodes.pop(server, None)
        self._nodes.pop(offline, None)
        self._nodes[marker] = data = url.to_ext_info()
        await self._submit(_Txn({marker: data}, [server, offline]))

    async def available(self, url: URL | None = None) -> None:
        await self._move(url, available=True)

    async def unavailable(self, url: URL | None = None) -> None:
        await self._move(url, available=False)

    async def _move(self, url: URL | None, *, available: bool) -> None:
        targets = registrations_to_move(self._registrations, url)
        if not targets:
            return
        txn = _Txn()
        for reg in targets:
            server = node_path(reg.url, NODE_SERVER)
            offline = node_path(reg.url, NODE_UNAVAILABLE_SERVER)
            source, target = (offline, server) if available else (server, offline)
            data = reg.url.to_ext_info()
            self._nodes.pop(source, None)
            self._nodes[target] = txn.put[target] = data
            txn.delete.append(source)
            if available:
                marker = node_path(reg.url, NODE_UNREGISTERED)
                self._nodes.pop(marker, None)
                txn.delete.append(marker)
            reg.available = available
        if available:
            txn.done = self._mark(
                targets, RegistryStatus.REGISTER_SUCCESS, RegistryStatus.REGISTER_FAILED
            )
        else:
            txn.done = self._mark(
                targets, RegistryStatus.UNREGISTER_SUCCESS, RegistryStatus.UNREGISTER_FAILED
            )
        await self._submit(txn)

    def status(self) -> list[RegistrationStatus]:
        return statuses_of(self.name, self._registrations.values())

    async def subscribe(self, url: URL, listener: NotifyListener) -> None:
        directory = service_dir(url.group, url.path)
        watch = self._services.get(directory)
        if watch is None:
            watch = self._services[directory] = _ServiceWatch(url, directory)
            await self._start_watch(watch)
        watch.view.add(listener)
        client = node_path(url, NODE_CLIENT)
        if client not in watch.clients:
            watch.clients.add(client)
            self._nodes[client] = data = url.with_params(nodeType="referer").to_ext_info()
            try:
                await self._submit(_Txn({client: data}))
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
        await self._stop_watch(watch)
        for client in watch.clients:
            self._nodes.pop(client, None)
        try:
            await self._submit(_Txn(delete=sorted(watch.clients)))
        except RegistryError as err:
            log.warning("%s: could not remove client nodes: %s", self.name, err)

    async def discover(self, url: URL) -> list[URL]:
        directory = service_dir(url.group, url.path)
        try:
            nodes, _ = await self._range(f"{directory}/{NODE_SERVER}/", prefix=True)
        except _UnreachableError:
            watch = self._services.get(directory)
            if watch is None:
                raise
            return list(watch.view.urls)
        found = (node_url(key.rpartition("/")[2], data, url) for key, data in nodes.items())
        return sorted((u for u in found if u is not None), key=URL.to_ext_info)

    # ------------------------------------------------------------------ commands and agents

    async def _watch_node(self, path: str, listener: CommandListener) -> None:
        watch = self._commands.get(path)
        if watch is None:
            watch = self._commands[path] = _CommandWatch(path)
            await self._start_watch(watch)
        watch.view.add(listener)

    async def _unwatch_node(self, path: str, listener: CommandListener) -> None:
        watch = self._commands.get(path)
        if watch is not None:
            watch.view.remove(listener)
            if not watch.view.listeners:
                del self._commands[path]
                await self._stop_watch(watch)

    async def _get_node(self, path: str) -> str | None:
        nodes, _ = await self._range(path, prefix=False)
        return nodes.get(path) or None

    async def _set_node(self, path: str, data: str | None) -> None:
        if data is None:
            await self._gateway.call("/v3/kv/deleterange", {"key": _b64(path)})
        else:
            await self._gateway.call("/v3/kv/put", {"key": _b64(path), "value": _b64(data)})

    async def register_agent(self, url: URL) -> None:
        path = agent_node_path(url)
        if url.node_type != NODE_AGENT:
            url = url.with_params(nodeType=NODE_AGENT)
        self._nodes[path] = data = url.to_ext_info()
        await self._submit(_Txn({path: data}))

    async def unregister_agent(self, url: URL) -> None:
        path = agent_node_path(url)
        self._nodes.pop(path, None)
        await self._submit(_Txn(delete=[path]))

    async def agent_nodes(self) -> list[URL]:
        nodes, _ = await self._range(f"{ROOT}/{NODE_AGENT}/", prefix=True)
        found = (agent_node_url(path, data) for path, data in sorted(nodes.items()))
        return [u for u in found if u is not None]


REGISTRY_TYPE = EtcdRegistry
"""What ``create_registry`` builds for this protocol."""
