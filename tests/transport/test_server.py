"""MotanServer over real loopback sockets: heartbeats, v1, limits, idle, backpressure, close."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import pytest

from motanmesh.transport import Endpoint, FakeClock, MotanServer, Responder, ServerConnection
from motanmesh.wire.decoder import FrameDecoder
from motanmesh.wire.frame import (
    FLAG_RESPONSE,
    Frame,
    heartbeat_request,
    heartbeat_response,
    parse_exception,
    parse_frame,
)
from motanmesh.wire.v1 import (
    FLAG_RESPONSE_EXCEPTION,
    HESSIAN_HEARTBEAT,
    V1Frame,
    v1_heartbeat_request,
    v1_heartbeat_response,
)
from tests.transport.support import (
    RawClient,
    Recorder,
    answer,
    echo,
    req,
    until,
)
from tests.vectors import load_vectors


def v1_request(rid: int, service: str, method: str, desc: str = "") -> bytes:
    def utf(s: str) -> bytes:
        b = s.encode()
        return struct.pack(">H", len(b)) + b

    block = utf(service) + utf(method) + utf(desc) + struct.pack(">i", 0)
    stream = b"\xac\xed\x00\x05" + bytes((0x77, len(block))) + block
    return (
        struct.pack(">HBBQI", 0xF1F1, 0, 0, rid, len(stream) + 16)
        + struct.pack(">HBBQI", 0xF0F0, 1, 0, rid, len(stream))
        + stream
    )


def capture_pairs(hop: str) -> list[tuple[bytes, bytes]]:
    frames = load_vectors("motan-go-captures.json")["hops"][hop]["frames"]
    out = []
    for c2s, s2c in zip(frames[::2], frames[1::2], strict=True):
        assert (c2s["dir"], s2c["dir"], c2s["conn"]) == ("c2s", "s2c", s2c["conn"])
        out.append((bytes.fromhex(c2s["hex"]), bytes.fromhex(s2c["hex"])))
    return out


async def started(server: MotanServer) -> str:
    host, port = await server.listen_tcp()
    return f"{host}:{port}"


# ---------------------------------------------------------------------------- heartbeats


@pytest.mark.parametrize("hop", ["agent-to-agent", "app-to-agent"])
async def test_heartbeats_get_the_captured_answer(
    echo_server: tuple[MotanServer, str], hop: str
) -> None:
    _server, address = echo_server
    pairs = [(c, s) for c, s in capture_pairs(hop) if c[2] & 0x10]
    assert pairs, "the captures hold heartbeats"
    client = await RawClient.open(address)
    for request, expected in pairs:
        await client.send(request)
        assert await client.read_exactly(len(expected)) == expected
    await client.close()


async def test_php_heartbeat_vectors_in_both_flavours(echo_server: tuple[MotanServer, str]) -> None:
    _server, address = echo_server
    vectors = [
        v for v in load_vectors("motan-php-vectors.json")["vectors"] if v["kind"] == "heartbeat"
    ]
    assert {v["hex"][4:6] for v in vectors} == {"10", "12"}
    client = await RawClient.open(address)
    for v in vectors:
        rid = int(v["logical"]["header"]["request_id"])
        await client.send(bytes.fromhex(v["hex"]))
        got = await client.read_exactly(21)
        assert got == bytes.fromhex(f"f1f1130830{rid:016x}0000000000000000")
        assert got == heartbeat_response(rid)
    await client.close()


async def test_v1_heartbeat_vector_and_connection_stays_usable(
    echo_server: tuple[MotanServer, str],
) -> None:
    _server, address = echo_server
    (vector,) = [
        v for v in load_vectors("motan-php-vectors.json")["vectors"] if v["kind"] == "v1_heartbeat"
    ]
    rid = int(vector["logical"]["outer"]["request_id"])
    client = await RawClient.open(address)
    await client.send(bytes.fromhex(vector["hex"]))
    got = await client.read_v1()
    assert len(got) == 97
    assert got == v1_heartbeat_response(rid)
    assert got.endswith(HESSIAN_HEARTBEAT)
    await client.send(req(5).encode())
    frame = await client.read_frame()
    assert (frame.request_id, frame.is_response, frame.body) == (5, True, b"payload")
    await client.close()


async def test_other_v1_requests_get_an_exception_and_the_connection_stays(
    echo_server: tuple[MotanServer, str],
) -> None:
    _server, address = echo_server
    client = await RawClient.open(address)
    await client.send(v1_request(77, "com.example.Legacy", "find", "java.lang.String"))
    raw = await client.read_v1()
    (v1,) = FrameDecoder().feed(raw)
    assert isinstance(v1, V1Frame)
    assert (v1.request_id, v1.flag) == (77, FLAG_RESPONSE_EXCEPTION)
    assert b"com.example.Legacy.find" in raw
    assert b"motan2" in raw
    # an unreadable v1 request (bad object stream) is answered the same way
    bad = bytearray(v1_request(78, "x", "y"))
    bad[32:36] = b"\x00\x00\x00\x00"
    await client.send(bytes(bad))
    (v1,) = FrameDecoder().feed(await client.read_v1())
    assert isinstance(v1, V1Frame)
    assert (v1.request_id, v1.flag) == (78, FLAG_RESPONSE_EXCEPTION)
    await client.send(v1_heartbeat_request(79))
    assert await client.read_v1() == v1_heartbeat_response(79)
    await client.send(req(80).encode())
    assert (await client.read_frame()).request_id == 80
    await client.close()


@pytest.mark.parametrize("flavour", ["go", "java", "v1"])
async def test_heartbeat_switch_off_closes_the_connection(
    echo_server: tuple[MotanServer, str], flavour: str
) -> None:
    server, address = echo_server
    beat = v1_heartbeat_request(9) if flavour == "v1" else heartbeat_request(9, style=flavour)
    client = await RawClient.open(address)
    await client.send(beat)  # switch on: answered
    if flavour == "v1":
        assert await client.read_v1() == v1_heartbeat_response(9)
    else:
        assert await client.read_exactly(21) == heartbeat_response(9)
    server.heartbeat_enabled = False
    await client.send(req(1).encode() + beat)  # the request before it is still answered
    assert (await client.read_frame()).request_id == 1
    assert await client.closed_by_peer()
    await client.close()
    await until(lambda: server.connection_count == 0, "connection gone")
    server.heartbeat_enabled = True
    again = await RawClient.open(address)
    await again.send(heartbeat_request(10))
    assert await again.read_exactly(21) == heartbeat_response(10)
    await again.close()


# ---------------------------------------------------------------------------- requests


async def test_many_requests_answered_in_reverse_order(
    held_server: tuple[MotanServer, Recorder, str],
) -> None:
    server, recorder, address = held_server
    client = await RawClient.open(address)
    await client.send(b"".join(req(i, body=b"%d" % i).encode() for i in range(1, 51)))
    await until(lambda: len(recorder.held) == 50, "50 requests held")
    assert server.in_flight == 50
    (conn,) = server.connections
    assert conn.in_flight == 50
    for frame, respond, _conn in reversed(recorder.held):
        respond(answer(frame))
    got = [await client.read_frame() for _ in range(50)]
    assert [f.request_id for f in got] == list(range(50, 0, -1))
    assert all(f.body == b"%d" % f.request_id and f.is_response for f in got)
    assert server.in_flight == 0
    await client.close()


async def test_shared_vector_requests_get_well_formed_answers(
    echo_server: tuple[MotanServer, str],
) -> None:
    _server, address = echo_server
    php = [
        bytes.fromhex(v["hex"])
        for v in load_vectors("motan-php-vectors.json")["vectors"]
        if v["kind"] == "request"
    ]
    go = [c for c, _s in capture_pairs("app-to-agent") if not c[2] & 0x10]
    requests = php + go
    assert len(php) == 10 and len(go) == 6
    client = await RawClient.open(address)
    for raw in requests:  # one at a time
        await client.send(raw)
        sent = parse_frame(raw)
        got = await client.read_frame()
        assert got.request_id == sent.request_id
        assert got.is_response and got.status == 0
        assert got.body == sent.body
    await client.send(b"".join(requests))  # and pipelined in one write
    answers = [await client.read_frame() for _ in requests]
    assert [a.request_id for a in answers] == [parse_frame(r).request_id for r in requests]
    await client.close()


async def test_handler_failure_becomes_an_exception_response() -> None:
    def broken(frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        if frame.metadata.get("M_m") == "boom":
            raise RuntimeError("handler bug")
        echo(frame, respond, conn)

    server = MotanServer(broken)
    client = await RawClient.open(await started(server))
    await client.send(req(3, M_m="boom").encode() + req(4).encode())
    first, second = await client.read_frame(), await client.read_frame()
    assert (first.request_id, first.status) == (3, 1)
    exc = parse_exception(first.metadata["M_e"])
    assert (exc.errcode, exc.errtype) == (500, 1)
    assert "handler bug" in exc.errmsg
    assert (second.request_id, second.status) == (4, 0)
    assert server.in_flight == 0
    await client.close()
    await server.close()


async def test_responses_sent_to_a_server_are_dropped(echo_server: tuple[MotanServer, str]) -> None:
    server, address = echo_server
    client = await RawClient.open(address)
    stray = Frame(FLAG_RESPONSE, 0, 6, 11, {}, b"x").encode()
    await client.send(stray + req(12).encode())
    assert (await client.read_frame()).request_id == 12
    assert server.in_flight == 0
    await client.close()


async def test_answers_after_the_connection_is_gone_are_ignored(
    held_server: tuple[MotanServer, Recorder, str],
) -> None:
    server, recorder, address = held_server
    client = await RawClient.open(address)
    await client.send(req(1).encode() + req(2).encode())
    await until(lambda: len(recorder.held) == 2)
    (conn,) = server.connections
    assert conn.peer.startswith("127.0.0.1:") and conn.local == address
    await client.close()
    await until(lambda: server.connection_count == 0, "server saw the close")
    assert server.in_flight == 0
    assert conn.closed
    recorder.answer_all()  # no error, no effect
    assert server.in_flight == 0


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("part", ["body", "metadata"])
async def test_frame_over_the_limit_is_answered_then_closed(part: str) -> None:
    server = MotanServer(echo, max_content_length=1024)
    client = await RawClient.open(await started(server))
    big = req(41, body=b"b" * 2000) if part == "body" else req(41, M_big="m" * 2000)
    await client.send(req(40).encode() + big.encode())
    assert (await client.read_frame()).request_id == 40
    refusal = await client.read_frame()
    assert (refusal.request_id, refusal.status, refusal.is_response) == (41, 1, True)
    exc = parse_exception(refusal.metadata["M_e"])
    assert (exc.errcode, exc.errtype) == (500, 1)
    assert exc.errmsg.startswith("content length over the limit")
    assert await client.closed_by_peer()
    await client.close()
    await server.close()


async def test_v1_message_over_the_limit_gets_a_v1_refusal() -> None:
    server = MotanServer(echo, max_content_length=64)
    client = await RawClient.open(await started(server))
    await client.send(v1_request(5, "com.example.Svc", "m" * 100))
    (v1,) = FrameDecoder().feed(await client.read_v1())
    assert isinstance(v1, V1Frame)
    assert (v1.request_id, v1.flag) == (5, FLAG_RESPONSE_EXCEPTION)
    assert await client.closed_by_peer()
    await client.close()
    await server.close()


@pytest.mark.parametrize(
    "garbage",
    [b"GET / HTTP/1.1\r\n\r\n", bytes.fromhex("f1f1001830") + bytes(16)],
    ids=["bad-magic", "bad-version"],
)
async def test_undecodable_input_closes_without_reply(
    echo_server: tuple[MotanServer, str], garbage: bytes
) -> None:
    server, address = echo_server
    client = await RawClient.open(address)
    await client.send(req(1).encode() + garbage)
    assert (await client.read_frame()).request_id == 1
    assert await client.closed_by_peer()
    await client.close()
    await until(lambda: server.connection_count == 0)


# ---------------------------------------------------------------------------- idle


async def test_idle_connections_are_closed() -> None:
    clock = FakeClock()
    recorder = Recorder()
    server = MotanServer(recorder, idle_timeout=10, clock=clock)
    address = await started(server)
    client = await RawClient.open(address)
    await until(lambda: server.connection_count == 1)
    clock.advance(6)
    await client.send(heartbeat_request(1))  # activity restarts the idle time
    assert await client.read_exactly(21) == heartbeat_response(1)
    clock.advance(6)
    await asyncio.sleep(0.01)
    assert server.connection_count == 1
    await client.send(req(2).encode())  # a request in flight keeps it open
    await until(lambda: len(recorder.held) == 1)
    clock.advance(100)
    await asyncio.sleep(0.01)
    assert server.connection_count == 1
    recorder.answer_all()
    assert (await client.read_frame()).request_id == 2
    clock.advance(10)
    assert await client.closed_by_peer()
    await until(lambda: server.connection_count == 0, "idle close")
    await client.close()
    await server.close()


# ---------------------------------------------------------------------------- backpressure


async def test_a_client_that_never_reads_does_not_grow_the_server() -> None:
    high = 64 * 1024
    server = MotanServer(echo, write_high_water=high)
    host, port = await server.listen_tcp()
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, (host, port))
    request = req(1, body=b"z" * 32 * 1024).encode()

    async def flood() -> None:
        for _ in range(4000):  # 128 MiB of answers if nothing held it back
            await loop.sock_sendall(sock, request)

    sender = asyncio.create_task(flood())
    await until(lambda: any(c.reading_paused for c in server.connections), "reading paused")
    (conn,) = server.connections
    # the backlog is bounded by the high-water mark plus what one read could answer
    limit = high + 2 * 1024 * 1024
    assert conn.write_buffer_size <= limit
    for _ in range(20):
        await asyncio.sleep(0.01)
        assert conn.reading_paused
        assert conn.write_buffer_size <= limit
    assert not sender.done()  # the client is blocked: the server stopped reading
    sender.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sender
    sock.close()
    await until(lambda: server.connection_count == 0)
    await server.close()


async def test_reading_resumes_when_the_client_catches_up() -> None:
    high = 16 * 1024
    server = MotanServer(echo, write_high_water=high)
    client = await RawClient.open(await started(server), rcvbuf=4096)
    total = 2000
    frames = b"".join(req(i, body=b"q" * 8192).encode() for i in range(1, total + 1))
    send = asyncio.create_task(client.send(frames))
    await until(lambda: any(c.reading_paused for c in server.connections), "reading paused")
    got = [await client.read_frame() for _ in range(total)]
    await send
    assert [f.request_id for f in got] == list(range(1, total + 1))
    (conn,) = server.connections
    assert not conn.reading_paused
    await client.close()
    await server.close()


# ---------------------------------------------------------------------------- close


async def test_graceful_close_answers_accepted_requests_and_refuses_new_connections(
    held_server: tuple[MotanServer, Recorder, str],
) -> None:
    server, recorder, address = held_server
    ep = Endpoint(address, connections=2, request_timeout=30)
    await ep.connect()
    calls = [ep.request(req(i)) for i in range(1, 21)]
    await until(lambda: server.in_flight == 20, "20 requests in flight")
    closing = asyncio.create_task(server.close(deadline=30))
    await until(lambda: server.closing)
    await asyncio.sleep(0.01)
    assert not closing.done()
    with pytest.raises(OSError):
        await RawClient.open(address)
    recorder.answer_all()
    answers = await asyncio.gather(*calls)
    assert [a.request_id for a in answers] == list(range(1, 21))
    await closing
    assert server.connection_count == 0
    await until(lambda: not ep.available, "endpoint saw the close")
    await ep.close()


async def test_close_deadline_drops_what_is_left() -> None:
    clock = FakeClock()
    recorder = Recorder()
    server = MotanServer(recorder, clock=clock)
    client = await RawClient.open(await started(server))
    await client.send(req(1).encode())
    await until(lambda: server.in_flight == 1)
    closing = asyncio.create_task(server.close(deadline=5))
    await until(lambda: server.closing and clock.pending == 1, "drain deadline scheduled")
    clock.advance(4.9)
    await asyncio.sleep(0.01)
    assert not closing.done()
    clock.advance(0.1)
    await closing
    assert server.connection_count == 0
    assert server.in_flight == 0
    assert await client.closed_by_peer()
    await client.close()
    await server.close()  # a second close is a no-op


async def test_unix_socket_server(tmp_path: Path) -> None:
    path = str(tmp_path / "agent.sock")
    server = MotanServer(echo)
    await server.listen_unix(path)
    client = await RawClient.open(f"unix://{path}")
    await client.send(heartbeat_request(3) + req(4).encode())
    assert await client.read_exactly(21) == heartbeat_response(3)
    assert (await client.read_frame()).request_id == 4
    (conn,) = server.connections
    assert conn.local == path and conn.peer == path
    await client.close()
    await server.close()
    assert not Path(path).exists()
    with pytest.raises(RuntimeError):
        await server.listen_tcp()
