"""ServerLimits over real loopback sockets: each limit closes, refuses or pauses only the
connection that hit it, and is counted."""

from __future__ import annotations

import asyncio

import pytest

from motanmesh.transport import FakeClock, MotanServer
from motanmesh.transport.limits import LimitError, ServerLimits
from motanmesh.wire.frame import Frame, parse_exception, request_frame
from tests.transport.support import RawClient, Recorder, echo, req, until


async def started(server: MotanServer) -> str:
    host, port = await server.listen_tcp()
    return f"{host}:{port}"


async def round_trip(client: RawClient, rid: int) -> Frame:
    await client.send(req(rid).encode())
    return await client.read_frame()


# ---------------------------------------------------------------------------- configuration


def test_limits_from_agent_params() -> None:
    limits = ServerLimits.from_params(
        {"maxConnections": "5", "readTimeout": "2500", "idleTimeout": "0", "port": "9981"}
    )
    assert limits.max_connections == 5
    assert limits.read_timeout == 2.5
    assert limits.idle_timeout is None
    assert limits.max_pending_bytes == ServerLimits().max_pending_bytes
    assert ServerLimits.from_params({}) == ServerLimits()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"maxConnections": "many"}, "maxConnections: not an integer"),
        ({"maxPendingBytes": "0"}, "maxPendingBytes: must be positive"),
        ({"writeTimeout": "-1"}, "writeTimeout: must be 0 (off)"),
    ],
)
def test_bad_limits_are_refused_by_name(params: dict[str, str], message: str) -> None:
    with pytest.raises(LimitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ServerLimits.from_params(params)


# ---------------------------------------------------------------------------- connections


async def test_connections_over_the_limit_are_refused_and_counted() -> None:
    server = MotanServer(echo, limits=ServerLimits(max_connections=3))
    address = await started(server)
    kept = [await RawClient.open(address) for _ in range(3)]
    for i, client in enumerate(kept):
        assert (await round_trip(client, i + 1)).request_id == i + 1
    refused = [await RawClient.open(address) for _ in range(2)]
    for client in refused:
        assert await client.closed_by_peer()
    assert server.limit_hits["connectionsRefused"] == 2
    assert server.connection_count == 3
    for i, client in enumerate(kept):  # the others keep working
        assert (await round_trip(client, 10 + i)).request_id == 10 + i
    await kept[0].close()
    await until(lambda: server.connection_count == 2, "a slot freed")
    again = await RawClient.open(address)
    assert (await round_trip(again, 20)).request_id == 20
    for client in [*kept, *refused, again]:
        await client.close()
    await server.close(deadline=0)


# ---------------------------------------------------------------------------- pending requests


async def test_pending_requests_over_the_limit_pause_reading_until_half_are_answered() -> None:
    recorder = Recorder()
    server = MotanServer(recorder, limits=ServerLimits(max_pending_requests=4))
    client = await RawClient.open(await started(server))
    for rid in range(1, 5):
        await client.send(req(rid).encode())
        await until(lambda rid=rid: len(recorder.held) == rid, f"request {rid} held")  # type: ignore[misc]
    (conn,) = server.connections
    assert conn.reading_paused
    assert server.limit_hits["pendingPaused"] == 1
    await client.send(b"".join(req(rid).encode() for rid in range(5, 9)))
    for _ in range(20):
        await asyncio.sleep(0.005)
        assert len(recorder.held) == 4  # not read while four are pending
    # answering one is not enough (4 -> 3 pending), two bring it to half of the limit
    frame, respond, _ = recorder.held.pop(0)
    respond(Frame(1, 0, 6, frame.request_id, {}, b"").encode())
    await asyncio.sleep(0.01)
    assert len(recorder.held) == 3
    frame, respond, _ = recorder.held.pop(0)
    respond(Frame(1, 0, 6, frame.request_id, {}, b"").encode())
    await until(lambda: len(recorder.held) == 6, "the waiting requests read")
    recorder.answer_all()
    ids = sorted([(await client.read_frame()).request_id for _ in range(8)])
    assert ids == list(range(1, 9))
    await client.close()
    await server.close(deadline=0)


async def test_pending_bytes_over_the_limit_pause_reading() -> None:
    recorder = Recorder()
    limits = ServerLimits(max_pending_bytes=100 * 1024)
    server = MotanServer(recorder, limits=limits)
    client = await RawClient.open(await started(server))
    big = b"b" * 64 * 1024
    await client.send(req(1, body=big).encode())
    await until(lambda: len(recorder.held) == 1)
    (conn,) = server.connections
    assert not conn.reading_paused
    await client.send(req(2, body=big).encode())
    await until(lambda: len(recorder.held) == 2)
    assert conn.reading_paused
    await client.send(req(3, body=big).encode())
    await asyncio.sleep(0.05)
    assert len(recorder.held) == 2
    recorder.answer_all()
    await until(lambda: len(recorder.held) == 1, "read again once answered")
    recorder.answer_all()
    assert sorted([(await client.read_frame()).request_id for _ in range(3)]) == [1, 2, 3]
    assert server.limit_hits["pendingPaused"] >= 1
    await client.close()
    await server.close(deadline=0)


# ---------------------------------------------------------------------------- metadata


@pytest.mark.parametrize(
    ("limits", "metadata"),
    [
        (ServerLimits(max_metadata_entries=8), {f"k{i}": "v" for i in range(20)}),
        (ServerLimits(max_metadata_size=256), {"M_p": "s", "big": "x" * 300}),
    ],
    ids=["entries", "size"],
)
async def test_metadata_over_its_limit_closes_only_its_connection(
    limits: ServerLimits, metadata: dict[str, str]
) -> None:
    server = MotanServer(echo, limits=limits)
    address = await started(server)
    good = await RawClient.open(address)
    bad = await RawClient.open(address)
    await bad.send(request_frame(77, metadata, b"x").encode())
    answer = await bad.read_frame()
    assert answer.request_id == 77
    assert "metadata" in parse_exception(answer.metadata["M_e"]).errmsg
    assert await bad.closed_by_peer()
    assert server.limit_hits["frameTooLarge"] == 1
    assert (await round_trip(good, 5)).request_id == 5
    await good.close()
    await bad.close()
    await server.close(deadline=0)


async def test_garbage_closes_only_its_connection_and_is_counted() -> None:
    server = MotanServer(echo)
    address = await started(server)
    good = await RawClient.open(address)
    for _ in range(3):
        bad = await RawClient.open(address)
        await bad.send(b"GET / HTTP/1.1\r\n\r\n")
        assert await bad.closed_by_peer()
        await bad.close()
    assert server.limit_hits["malformed"] == 3
    assert (await round_trip(good, 9)).request_id == 9
    await good.close()
    await server.close(deadline=0)


# ---------------------------------------------------------------------------- timeouts


async def test_a_frame_that_does_not_complete_in_the_read_timeout_closes() -> None:
    clock = FakeClock()
    limits = ServerLimits(read_timeout=5.0, write_timeout=None)
    server = MotanServer(echo, limits=limits, clock=clock)
    address = await started(server)
    slow = await RawClient.open(address)
    quiet = await RawClient.open(address)
    steady = await RawClient.open(address)
    assert (await round_trip(quiet, 1)).request_id == 1
    whole = req(2).encode()
    await slow.send(whole[:10])
    await until(lambda: any(c._decoder.buffered for c in server.connections), "partial read")
    clock.advance(3.0)
    await slow.send(whole[10:12])  # a trickle is not progress: the frame's age counts
    await asyncio.sleep(0.01)
    assert (await round_trip(steady, 3)).request_id == 3
    clock.advance(2.5)
    assert await slow.closed_by_peer()
    assert server.limit_hits["readTimeout"] == 1
    # a connection between frames is not timed out by the read timeout
    clock.advance(30.0)
    assert (await round_trip(quiet, 4)).request_id == 4
    assert (await round_trip(steady, 5)).request_id == 5
    for c in (slow, quiet, steady):
        await c.close()
    await server.close(deadline=0)


async def test_a_peer_that_reads_nothing_for_the_write_timeout_is_closed() -> None:
    clock = FakeClock()
    limits = ServerLimits(write_buffer_size=16 * 1024, write_timeout=60.0, read_timeout=None)
    server = MotanServer(echo, limits=limits, clock=clock)
    address = await started(server)
    reader = await RawClient.open(address)
    stalled = await RawClient.open(address, rcvbuf=4096)
    frames = b"".join(req(i, body=b"w" * 16384).encode() for i in range(2000))
    sender = asyncio.create_task(stalled.send(frames))
    await until(lambda: server.limit_hits["writePaused"] >= 1, "write buffer full")
    clock.advance(30.0)
    await asyncio.sleep(0.01)
    assert server.connection_count == 2
    clock.advance(31.0)
    await until(lambda: server.connection_count == 1, "the stalled peer closed")
    assert server.limit_hits["writeTimeout"] == 1
    assert (await round_trip(reader, 1)).request_id == 1
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    await reader.close()
    await stalled.close()
    await server.close(deadline=0)
