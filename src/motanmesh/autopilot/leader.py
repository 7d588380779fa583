"""One autopilot writes at a time: leader election through the registry's backend.

* ``zookeeper``: kazoo's lock recipe on ``/motanmesh/autopilot/<name>/leader`` (ephemeral
  sequential nodes of the autopilot's own session). Leadership ends with the session: a
  suspended connection stops writing at once, a lost session gives the lock to the next one.
* ``etcd``: a lease (``leaderTtl`` seconds) and a transaction that creates
  ``/motanmesh/autopilot/<name>/leader`` only if it does not exist, bound to the lease. The
  leader keeps the lease alive; it stops writing as soon as a keepalive is not answered
  within half the lease, well before the key expires and another autopilot can win.
* ``embedded`` (one host): an exclusive ``flock`` on ``<registry file>.autopilot-<name>.lock``.
  The kernel releases it when the process dies, so the next autopilot takes over at once.

``is_leader`` is checked right before every write.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import logging
import os
import socket
import time
import uuid
from typing import Any, Protocol

import aiohttp
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import CancelledError as LockCancelledError
from kazoo.exceptions import KazooException

from motanmesh.registry.base import RegistryError
from motanmesh.registry.embedded import registry_file
from motanmesh.registry.etcd import etcd_endpoints
from motanmesh.registry.zookeeper import zookeeper_hosts
from motanmesh.url import URL

__all__ = [
    "EtcdLeadership",
    "FileLeadership",
    "Leadership",
    "ZooKeeperLeadership",
    "create_leadership",
    "identity",
]

log = logging.getLogger("motanmesh.autopilot.leader")


def identity() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class Leadership(Protocol):
    identifier: str

    @property
    def is_leader(self) -> bool: ...

    def describe(self) -> str: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class FileLeadership:
    """An exclusive ``flock`` on a file beside the embedded registry's database."""

    def __init__(self, path: str, identifier: str = "", retry: float = 0.5) -> None:
        self.path = path
        self.identifier = identifier or identity()
        self.retry = retry
        self._fd: int | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        return self._fd is not None

    def describe(self) -> str:
        return f"file lock {self.path}"

    def _try(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, self.identifier.encode())
        self._fd = fd
        return True

    async def start(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        if not self._try():
            self._task = asyncio.create_task(self._wait())

    async def _wait(self) -> None:
        while not self._try():
            await asyncio.sleep(self.retry)
        log.info("autopilot: leader now (%s)", self.describe())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class ZooKeeperLeadership:
    """kazoo's ``Lock`` recipe on a connection of its own."""

    def __init__(self, hosts: str, path: str, identifier: str = "", timeout: float = 10.0) -> None:
        self.hosts = hosts
        self.path = path
        self.identifier = identifier or identity()
        self.timeout = timeout
        self._client: Any = None
        self._lock: Any = None
        self._held = False
        self._connected = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self._held and self._connected

    def describe(self) -> str:
        return f"zookeeper lock {self.hosts}{self.path}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        client = KazooClient(hosts=self.hosts, timeout=self.timeout)

        def listener(state: str) -> None:  # kazoo's thread
            self._connected = state == KazooState.CONNECTED
            if state == KazooState.LOST:
                loop.call_soon_threadsafe(self._lost.set)

        client.add_listener(listener)
        try:
            await asyncio.to_thread(client.start, self.timeout)
        except Exception as exc:
            await asyncio.to_thread(client.close)
            raise RegistryError(
                f"leader election: cannot reach ZooKeeper {self.hosts}: {exc}"
            ) from exc
        self._connected = True
        self._client = client
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._closing:
            self._lost.clear()
            lock = self._client.Lock(self.path, self.identifier)
            self._lock = lock
            try:
                got = await asyncio.to_thread(lock.acquire, True, None)
            except LockCancelledError:
                return
            except KazooException as exc:
                log.warning("autopilot: leader election failed (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            if not got:
                continue
            self._held = True
            log.info("autopilot: leader now (%s)", self.describe())
            await self._lost.wait()
            self._held = False
            log.warning("autopilot: ZooKeeper session lost; no longer leader")

    async def close(self) -> None:
        self._closing = True
        self._held = False
        if self._lock is not None:
            self._lock.cancel()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._lock.release)
        if self._task is not None:
            self._lost.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await asyncio.to_thread(self._client.stop)
            await asyncio.to_thread(self._client.close)
            self._client = None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


class EtcdLeadership:
    """A leased key created by a compare-and-create transaction (etcd's JSON gateway)."""

    def __init__(
        self, endpoints: list[str], key: str, identifier: str = "", ttl: float = 10.0
    ) -> None:
        self.endpoints = endpoints
        self.key = key
        self.identifier = identifier or identity()
        self.ttl = max(2, round(ttl))
        self.lease: int | None = None
        self._alive_at = -1e18
        self._held = False
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        return self._held and time.monotonic() - self._alive_at < self.ttl / 2

    def describe(self) -> str:
        return f"etcd key {self.key} ({','.join(self.endpoints)})"

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self._session is not None
        errors = []
        for endpoint in self.endpoints:
            try:
                async with self._session.post(endpoint + path, json=body) as resp:
                    data: Any = await resp.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                errors.append(f"{endpoint}: {exc or type(exc).__name__}")
                continue
            if isinstance(data, dict) and isinstance(data.get("result"), dict):
                data = data["result"]
            if not isinstance(data, dict) or data.get("error"):
                raise RegistryError(f"{endpoint}{path}: {data}")
            return data
        raise RegistryError("; ".join(errors))

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=max(1.0, self.ttl / 4))
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._task = asyncio.create_task(self._run())

    async def _step(self) -> None:
        if self.lease is None:
            answer = await self._call("/v3/lease/grant", {"TTL": str(self.ttl)})
            self.lease = int(answer["ID"])
            self._alive_at = time.monotonic()
        else:
            answer = await self._call("/v3/lease/keepalive", {"ID": str(self.lease)})
            if int(answer.get("TTL", 0)) <= 0:
                self.lease, self._held = None, False
                return
            self._alive_at = time.monotonic()
        if self._held:
            return
        key = _b64(self.key)
        answer = await self._call(
            "/v3/kv/txn",
            {
                "compare": [{"key": key, "target": "CREATE", "create_revision": "0"}],
                "success": [
                    {
                        "request_put": {
                            "key": key,
                            "value": _b64(self.identifier),
                            "lease": str(self.lease),
                        }
                    }
                ],
                "failure": [{"request_range": {"key": key}}],
            },
        )
        if answer.get("succeeded"):
            self._held = True
            log.info("autopilot: leader now (%s)", self.describe())

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except (RegistryError, KeyError, ValueError) as exc:
                if self._held and not self.is_leader:
                    log.warning("autopilot: etcd lease not renewed (%s); not leader", exc)
                    self._held = False
                    self.lease = None
            await asyncio.sleep(self.ttl / 4 if self._held else 0.5)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.lease is not None and self._session is not None:
            with contextlib.suppress(RegistryError):
                await self._call("/v3/lease/revoke", {"ID": str(self.lease)})
        self._held = False
        if self._session is not None:
            await self._session.close()


def create_leadership(registry: URL, name: str, ttl: float) -> Leadership:
    """The election that fits the registry the autopilot writes to."""
    if registry.protocol == "zookeeper":
        return ZooKeeperLeadership(
            zookeeper_hosts(registry), f"/motanmesh/autopilot/{name}/leader", timeout=ttl
        )
    if registry.protocol == "etcd":
        return EtcdLeadership(
            etcd_endpoints(registry), f"/motanmesh/autopilot/{name}/leader", ttl=ttl
        )
    return FileLeadership(f"{registry_file(registry)}.autopilot-{name}.lock")
