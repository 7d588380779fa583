"""Fixtures for the etcd registry tests: a real etcd server, registries on it, a TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from motanmesh.registry.etcd import EtcdRegistry
from motanmesh.url import URL
from tests.servers.etcd import EtcdServer, free_port

FAST = {"ttl": "2", "timeout": "1", "retryInterval": "0.1"}

MakeEtcd = Callable[..., Awaitable[EtcdRegistry]]


def etcd_url(address: str, **params: str) -> URL:
    """An etcd registry URL for ``address`` (``host:port``) with short intervals."""
    host, _, port = address.rpartition(":")
    return URL("etcd", host, int(port), parameters={**FAST, **params})


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """One etcd for the whole session (tests that stop it use ``own_etcd``)."""
    server = EtcdServer(tmp_path_factory.mktemp("etcd") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def etcd(etcd_server: EtcdServer) -> EtcdServer:
    """The session etcd with an empty ``/motan/`` tree."""
    etcd_server.delete("/motan/", prefix=True)
    return etcd_server


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """A private etcd that a test may stop and restart."""
    server = EtcdServer(tmp_path / "etcd")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def registries() -> AsyncIterator[list[EtcdRegistry]]:
    """Registries appended here are closed after the test."""
    made: list[EtcdRegistry] = []
    yield made
    for registry in made:
        await registry.close()


@pytest.fixture
def make_etcd(etcd: EtcdServer, registries: list[EtcdRegistry]) -> MakeEtcd:
    """``await make_etcd(**params)``: a started registry on the session etcd."""

    async def make(address: str | None = None, **params: str) -> EtcdRegistry:
        registry = EtcdRegistry(etcd_url(address or etcd.address, **params))
        registries.append(registry)
        await registry.start()
        return registry

    return make


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut`` drops every connection and the port."""

    def __init__(self, target_port: int, port: int) -> None:
        self.target_port = target_port
        self.port = port
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in list(self.writers):
                writer.transport.abort()
            await self.server.wait_closed()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self.writers.discard(w)
                w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


@pytest.fixture
async def proxy(etcd: EtcdServer) -> AsyncIterator[TcpProxy]:
    """A started proxy to the session etcd."""
    relay = TcpProxy(etcd.client_port, free_port())
    await relay.start()
    yield relay
    await relay.cut()
