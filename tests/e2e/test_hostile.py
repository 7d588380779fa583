"""Hostile clients against a real client agent (app → client agent → server agent → demo
service, four processes): each costs bounded memory, closes only its own connection, is
counted, and normal calls keep being served."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from motanmesh.sdk.client import MotanClient
from motanmesh.wire.frame import Frame, parse_exception, parse_frame, request_frame
from motanmesh.wire.simple import SimpleSerialization
from tests.e2e.harness import (
    DEMO_GROUP,
    DEMO_SERVICE,
    AgentProcess,
    Mesh,
    client_agent_config,
    demo_export,
    export_port,
    refer,
    server_agent_config,
    set_available,
    wait_endpoints,
    wait_for,
)

#: the client agent's read timeout in these tests (ms): a trickling frame is closed after it
READ_TIMEOUT_MS = 3000
MB = 1024 * 1024


@dataclass
class Chain:
    mesh: Mesh
    client_agent: AgentProcess


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    mesh = Mesh(tmp_path_factory.mktemp("hostile"))
    try:
        _service, backend = mesh.demo_service("demo-service")
        export = demo_export(backend)
        server = mesh.agent(
            "server-agent", server_agent_config("server", mesh.registry, {"demo": export})
        )
        set_available(server)
        refers = {"demo": refer(DEMO_SERVICE, DEMO_GROUP, requestTimeout=5000)}
        config = client_agent_config("client", mesh.registry, refers)
        config["motan-agent"]["readTimeout"] = READ_TIMEOUT_MS
        client = mesh.agent("client-agent", config)
        wait_endpoints(client, "demo", {f"127.0.0.1:{export_port(export)}"})
        yield Chain(mesh, client)
        mesh.check_alive()
    finally:
        mesh.close()


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def client_port_info(agent: AgentProcess) -> dict[str, Any]:
    info = agent.management_json("/runtime/info?keys=servers")
    return dict(info["servers"]["agentServer"])


def app(chain: Chain) -> MotanClient:
    return MotanClient(chain.client_agent.address, application="e2e-app", group=DEMO_GROUP)


async def calls_work(client: MotanClient, n: int = 5) -> None:
    for i in range(n):
        assert await client.call(DEMO_SERVICE, "hello", f"n{i}") == f"hello n{i}"


def echo_request(rid: int, body_size: int) -> bytes:
    body = SimpleSerialization().encode_multi(["x" * body_size])
    meta = {"M_p": DEMO_SERVICE, "M_m": "echo", "M_g": DEMO_GROUP, "M_s": "hostile"}
    return request_frame(rid, meta, body).encode()


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    head = await asyncio.wait_for(reader.readexactly(17), 10)
    (mlen,) = struct.unpack_from(">I", head, 13)
    rest = await asyncio.wait_for(reader.readexactly(mlen + 4), 10)
    (blen,) = struct.unpack_from(">I", rest, mlen)
    body = await asyncio.wait_for(reader.readexactly(blen), 10)
    return parse_frame(head + rest + body)


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), 10) == b""
    except ConnectionError:  # a reset, or a write after the agent closed
        return True


async def test_a_client_that_never_reads_is_bounded_and_its_memory_comes_back(
    chain: Chain,
) -> None:
    agent = chain.client_agent
    async with app(chain) as client:
        await calls_work(client, 20)
        own = client_port_info(agent)["connections"]
        base = rss(agent.pid)
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", agent.port))
        one = echo_request(1, 64 * 1024)
        total = 3000  # 192 MiB of requests, and as much in answers, if nothing held it back
        sent = 0
        peak = base
        stalled = False
        try:
            while sent < total:
                try:
                    await asyncio.wait_for(loop.sock_sendall(sock, one), 3.0)
                except TimeoutError:
                    stalled = True  # the agent stopped reading from this connection
                    break
                sent += 1
                if sent % 16 == 0:
                    peak = max(peak, rss(agent.pid))
            assert stalled, f"the agent read all {total} requests of a client that never reads"
            for _ in range(10):
                await asyncio.sleep(0.1)
                peak = max(peak, rss(agent.pid))
            # other applications are still served while this connection is held back
            await calls_work(client)
            hits = client_port_info(agent)["limitHits"]
            assert hits["pendingPaused"] + hits["writePaused"] >= 1
        finally:
            sock.close()
        # a few MB per connection (maxPendingBytes + writeBufferSize + answers in flight)
        assert peak - base < 48 * MB, f"grew by {(peak - base) / MB:.1f} MB"
        wait_for(lambda: client_port_info(agent)["connections"] == own, "the hostile one gone")
        await calls_work(client)
        # what it cost is given back (the agent returns freed memory to the system)
        wait_for(lambda: rss(agent.pid) - base < 4 * MB, "memory given back", timeout=10)


async def test_a_thousand_trickling_connections_do_not_stop_normal_calls(chain: Chain) -> None:
    agent = chain.client_agent
    before = client_port_info(agent)["limitHits"]["readTimeout"]
    async with app(chain) as client:
        await calls_work(client)
        base = rss(agent.pid)
        frame = echo_request(7, 16)
        conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        for _ in range(1000):
            conns.append(await asyncio.open_connection("127.0.0.1", agent.port))
        peak = base
        try:
            for second in range(READ_TIMEOUT_MS // 1000 + 3):
                for _reader, writer in conns:
                    with contextlib.suppress(ConnectionError):
                        writer.write(frame[second : second + 1])  # one byte per second
                await calls_work(client, 3)
                peak = max(peak, rss(agent.pid))
                await asyncio.sleep(1.0)
            assert peak - base < 64 * MB, f"grew by {(peak - base) / MB:.1f} MB"
            # each trickled frame outlived the read timeout: every one of them was closed
            wait_for(
                lambda: client_port_info(agent)["limitHits"]["readTimeout"] - before >= 1000,
                "read timeouts",
            )
            for reader, _writer in conns:
                assert await closed_by_peer(reader)
            await calls_work(client)
        finally:
            for _reader, writer in conns:
                writer.close()


async def test_oversized_and_malformed_frames_close_only_their_connection(chain: Chain) -> None:
    agent = chain.client_agent
    before = client_port_info(agent)["limitHits"]
    async with app(chain) as client:
        await calls_work(client, 2)
        big_r, big_w = await asyncio.open_connection("127.0.0.1", agent.port)
        bad_r, bad_w = await asyncio.open_connection("127.0.0.1", agent.port)
        # a header announcing a body of 64 MiB (over the 10 MiB default), request id 99
        head = request_frame(99, {"M_p": DEMO_SERVICE}, b"").encode()
        big_w.write(head[:-4] + struct.pack(">I", 64 * MB))
        answer = await read_frame(big_r)
        assert answer.request_id == 99
        assert "over the limit" in parse_exception(answer.metadata["M_e"]).errmsg
        assert await asyncio.wait_for(big_r.read(), 10) == b""
        bad_w.write(b"\x00" * 64)
        assert await asyncio.wait_for(bad_r.read(), 10) == b""
        await calls_work(client)  # the app's own connection was never touched
        after = client_port_info(agent)["limitHits"]
        assert after["frameTooLarge"] == before["frameTooLarge"] + 1
        assert after["malformed"] == before["malformed"] + 1
        big_w.close()
        bad_w.close()


async def test_unknown_service_flood_is_answered_and_counted_not_logged(chain: Chain) -> None:
    agent = chain.client_agent
    missing = "com.example.hostile.NoSuchService"
    before = client_port_info(agent)["notFoundServiceCount"]
    reader, writer = await asyncio.open_connection("127.0.0.1", agent.port)
    n = 2000
    meta = {"M_p": missing, "M_m": "m", "M_g": "g"}
    writer.write(b"".join(request_frame(i, meta, b"").encode() for i in range(1, n + 1)))
    ids = set()
    for _ in range(n):
        answer = await read_frame(reader)
        assert "cluster not found" in parse_exception(answer.metadata["M_e"]).errmsg
        ids.add(answer.request_id)
    assert ids == set(range(1, n + 1))
    assert client_port_info(agent)["notFoundServiceCount"] == before + n
    assert agent.output().count(missing) < 3
    writer.close()
    async with app(chain) as client:
        await calls_work(client)
