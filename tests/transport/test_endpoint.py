"""Endpoint against real MotanServers on loopback: multiplexing, timeouts, health, reconnects."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from motanmesh.transport import (
    ConnectError,
    ConnectionLost,
    Endpoint,
    EndpointUnavailable,
    FakeClock,
    MotanServer,
    RemoteError,
    RequestTimeout,
    Responder,
    ServerConnection,
    parse_address,
    raise_for_status,
)
from motanmesh.transport.endpoint import MAX_CONCURRENT_CONNECTS
from motanmesh.transport.writes import JOIN_LIMIT
from motanmesh.wire.frame import (
    ERRTYPE_BIZ,
    FLAG_PROXY,
    FLAG_RESPONSE,
    Frame,
)
from motanmesh.wire.passthrough import SPLIT_BODY, forward, forward_into
from tests.transport.support import Recorder, answer, echo, failure, req, until

BIG_ID = (1 << 64) - 2


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:9981") == ("127.0.0.1", 9981)
    assert parse_address("[::1]:9982") == ("::1", 9982)
    assert parse_address("unix:///tmp/agent.sock") == "/tmp/agent.sock"
    assert parse_address("unix:/tmp/a.sock") == "/tmp/a.sock"
    for bad in ("nohost", ":80", "host:", "host:x", "unix://"):
        with pytest.raises(ValueError):
            parse_address(bad)


async def test_call_restores_the_callers_id_and_uses_its_own_stream_ids(
    held_server: tuple[MotanServer, Recorder, str],
) -> None:
    _server, recorder, address = held_server
    ep = Endpoint(address, connections=1)
    await ep.connect()
    assert ep.available and ep.connected == 1
    pending = [ep.request(req(BIG_ID)), ep.request(req(BIG_ID)), ep.request(req(7))]
    await until(lambda: len(recorder.held) == 3)
    wire_ids = [f.request_id for f, _r, _c in recorder.held]
    assert len(set(wire_ids)) == 3 and BIG_ID not in wire_ids
    assert ep.in_flight == 3
    recorder.answer_all()
    got = await asyncio.gather(*pending)
    assert [f.request_id for f in got] == [BIG_ID, BIG_ID, 7]
    assert all(f.is_response and f.body == b"payload" for f in got)
    assert ep.in_flight == 0
    await ep.close()


async def test_concurrent_calls_on_one_connection_answered_in_reverse(
    held_server: tuple[MotanServer, Recorder, str],
) -> None:
    server, recorder, address = held_server
    ep = Endpoint(address, connections=1)
    await ep.connect()
    calls = [ep.request(req(1000 + i, body=b"%d" % i)) for i in range(64)]
    await until(lambda: len(recorder.held) == 64, "64 requests held")
    assert server.connection_count == 1
    order: list[int] = []
    for frame, respond, _conn in reversed(recorder.held):
        order.append(int(frame.body))
        respond(answer(frame))
    assert order == list(range(63, -1, -1))
    got = await asyncio.gather(*calls)
    assert [(f.request_id, f.body) for f in got] == [(1000 + i, b"%d" % i) for i in range(64)]
    await ep.close()


async def test_round_robin_over_the_pool_and_proxy_flag_and_changes(
    held_server: tuple[MotanServer, Recorder, str],
) -> None:
    server, recorder, address = held_server
    ep = Endpoint(address, connections=3, proxy=True)
    await ep.connect()
    assert server.connection_count == 3
    calls = [ep.request(req(i), {"M_g": "rewritten", "M_rid": str(i)}) for i in range(6)]
    await until(lambda: len(recorder.held) == 6)
    conns = {id(c) for _f, _r, c in recorder.held}
    assert len(conns) == 3
    for frame, _r, _c in recorder.held:
        assert frame.flags & FLAG_PROXY
        assert frame.metadata["M_g"] == "rewritten"
    assert sorted(f.metadata["M_rid"] for f, _r, _c in recorder.held) == [str(i) for i in range(6)]
    recorder.answer_all()
    await asyncio.gather(*calls)
    plain = Endpoint(address, connections=1)
    await plain.connect()
    call = plain.request(req(1))
    await until(lambda: len(recorder.held) == 1)
    assert not recorder.held[0][0].flags & FLAG_PROXY
    recorder.answer_all()
    await call
    await plain.close()
    await ep.close()


async def test_exception_responses_resolve_normally() -> None:
    def refuse(frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        respond(failure(frame, 503, "busy", ERRTYPE_BIZ))

    server = MotanServer(refuse)
    host, port = await server.listen_tcp()
    ep = Endpoint(f"{host}:{port}")
    await ep.connect()
    got = await ep.call(req(9))
    assert (got.request_id, got.status) == (9, 1)
    with pytest.raises(RemoteError) as info:
        raise_for_status(got)
    assert (info.value.errcode, info.value.errtype) == (503, ERRTYPE_BIZ)
    assert ep.error_count == 0  # biz errors are not endpoint errors
    await ep.close()
    await server.close()


# ---------------------------------------------------------------------------- timeouts


async def test_request_timeout_and_m_tmo_bounds(
    held_server: tuple[MotanServer, Recorder, str],
) -> None:
    _server, recorder, address = held_server
    clock = FakeClock()
    ep = Endpoint(address, connections=1, request_timeout=1.0, clock=clock)
    await ep.connect()
    cases = [  # (request, expected timeout)
        (req(1), 1.0),
        (req(2, M_tmo="1500"), 1.5),  # within [0.5, 2.0]: honoured
        (req(3, M_tmo="500"), 0.5),
        (req(4, M_tmo="2000"), 2.0),
        (req(5, M_tmo="5000"), 1.0),  # over the maximum: ignored
        (req(6, M_tmo="100"), 1.0),  # under the minimum: ignored
        (req(7, M_tmo="soon"), 1.0),  # not a number: ignored
    ]
    for frame, expected in cases:
        start = clock.time()
        fut = ep.request(frame)
        clock.advance(expected - 0.01)
        assert not fut.done(), frame.metadata
        clock.advance(0.02)
        assert fut.done(), frame.metadata
        with pytest.raises(RequestTimeout):
            fut.result()
        clock.advance(5 - (clock.time() - start))
    explicit = ep.request(req(8), timeout=3.0)
    clock.advance(2.9)
    assert not explicit.done()
    clock.advance(0.2)
    with pytest.raises(RequestTimeout):
        explicit.result()
    # answers that come after the timeout are dropped quietly
    await until(lambda: len(recorder.held) == 8)
    recorder.answer_all()
    await asyncio.sleep(0.01)
    assert ep.in_flight == 0
    await ep.close()


async def test_custom_timeout_bounds(held_server: tuple[MotanServer, Recorder, str]) -> None:
    _server, _recorder, address = held_server
    clock = FakeClock()
    ep = Endpoint(
        address, request_timeout=1.0, min_request_timeout=0.1, max_request_timeout=10, clock=clock
    )
    await ep.connect()
    fut = ep.request(req(1, M_tmo="8000"))
    clock.advance(7.9)
    assert not fut.done()
    clock.advance(0.2)
    assert isinstance(fut.exception(), RequestTimeout)
    await ep.close()


async def test_cancelled_calls_do_not_count_as_errors(
    held_server: tuple[MotanServer, Recorder, str],
) -> None:
    _server, recorder, address = held_server
    clock = FakeClock()
    ep = Endpoint(address, connections=1, clock=clock)
    await ep.connect()
    fut = ep.request(req(1))
    fut.cancel()
    clock.advance(5)
    assert ep.error_count == 0
    await until(lambda: len(recorder.held) == 1)
    recorder.answer_all()
    await asyncio.sleep(0.01)
    assert ep.in_flight == 0
    await ep.close()


# ---------------------------------------------------------------------------- failures


@pytest.mark.parametrize("how", ["close", "abort"])
async def test_server_killed_mid_call_fails_pending_calls_promptly(
    held_server: tuple[MotanServer, Recorder, str], how: str
) -> None:
    server, recorder, address = held_server
    ep = Endpoint(address, connections=2, request_timeout=3600)
    await ep.connect()
    calls = [ep.request(req(i)) for i in range(10)]
    await until(lambda: len(recorder.held) == 10)
    if how == "close":
        await server.close(deadline=0)
    else:
        for conn in server.connections:
            conn.abort()
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
    assert all(isinstance(r, ConnectionLost) for r in results), results
    assert ep.error_count == 10
    await ep.close()


async def test_reconnects_after_the_server_comes_back() -> None:
    clock = FakeClock()
    server = MotanServer(echo)
    host, port = await server.listen_tcp()
    ep = Endpoint(
        f"{host}:{port}",
        connections=3,
        connect_retry_interval=5.0,
        clock=clock,
        error_count_threshold=0,
    )
    await ep.connect()
    assert (await ep.call(req(1))).request_id == 1
    clock.advance(1.0 + 0.01)  # past the request's deadline: no timers left
    assert clock.pending == 0
    await server.close()
    await until(lambda: ep.connected == 0, "all connections lost")
    assert not ep.available
    with pytest.raises(ConnectError):
        await ep.call(req(2))
    # the immediate reconnect fails; retries are scheduled with a backoff
    await until(lambda: clock.pending == 3, "retries scheduled")
    first = clock.next_deadline()
    assert first is not None
    first_delay = first - clock.time()
    assert 0 < first_delay <= 5.0
    clock.advance(first_delay)
    await until(lambda: clock.pending == 3, "retries rescheduled")
    second = clock.next_deadline()
    assert second is not None
    assert second - clock.time() > first_delay  # the delay grew
    server = MotanServer(echo)
    await server.listen_tcp(host, port)
    clock.advance(5.0)
    await until(lambda: ep.connected == 3, "reconnected")
    assert ep.available
    assert (await ep.call(req(3))).request_id == 3
    await ep.close()
    await server.close()


async def test_connect_to_nothing_retries_in_background() -> None:
    clock = FakeClock()
    probe = MotanServer(echo)
    host, port = await probe.listen_tcp()
    await probe.close()
    ep = Endpoint(f"{host}:{port}", connections=2, clock=clock)
    await ep.connect()  # does not raise
    assert not ep.available and ep.connected == 0
    with pytest.raises(ConnectError, match="no connection"):
        await ep.call(req(1))
    server = MotanServer(echo)
    await server.listen_tcp(host, port)
    clock.advance(5.0)
    await until(lambda: ep.connected == 2)
    assert (await ep.call(req(2))).request_id == 2
    await ep.close()
    await server.close()


async def test_a_server_that_drops_every_connection_is_not_hammered() -> None:
    accepted = 0

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()

    listener = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    clock = FakeClock()
    ep = Endpoint(f"127.0.0.1:{port}", connections=1, clock=clock)
    await ep.connect()
    await until(lambda: ep.connected == 0 and clock.pending == 1, "dropped, retry scheduled")
    assert accepted == 1
    for attempts, delay in enumerate((0.1, 0.2, 0.4), start=1):
        deadline = clock.next_deadline()
        assert deadline is not None
        assert deadline - clock.time() == pytest.approx(delay)
        await asyncio.sleep(0.02)
        assert accepted == attempts  # no new attempt before the backoff timer
        clock.advance(delay)
        await until(lambda: ep.connected == 0 and clock.pending == 1, "dropped again")
    assert accepted == 4
    await ep.connect()  # an explicit connect tries at once
    await until(lambda: accepted == 5 and clock.pending == 1)
    await ep.close()
    assert clock.pending == 0
    listener.close()
    await listener.wait_closed()


async def test_bad_bytes_from_the_server_fail_the_connection() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the client gives up
        writer.close()

    listener = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    ep = Endpoint(f"127.0.0.1:{port}", connections=1, request_timeout=3600)
    await ep.connect()
    with pytest.raises(ConnectionLost, match="magic"):
        await asyncio.wait_for(ep.call(req(1)), 10)
    await ep.close()
    listener.close()
    await listener.wait_closed()


# ---------------------------------------------------------------------------- health


def flaky_handler(frame: Frame, respond: Responder, conn: ServerConnection) -> None:
    method = frame.metadata.get("M_m")
    if method == "fail":
        respond(failure(frame, 500, "service failed"))
    elif method == "biz":
        respond(failure(frame, 409, "business says no", ERRTYPE_BIZ))
    elif method == "missing":
        respond(failure(frame, 404, "provider not exist serviceKey=test_com.example.Echo"))
    else:
        echo(frame, respond, conn)


@pytest.fixture
async def flaky() -> tuple[MotanServer, str]:
    server = MotanServer(flaky_handler)
    host, port = await server.listen_tcp()
    return server, f"{host}:{port}"


async def test_error_threshold_then_heartbeats_bring_it_back(
    flaky: tuple[MotanServer, str],
) -> None:
    server, address = flaky
    clock = FakeClock()
    ep = Endpoint(
        address, connections=2, error_count_threshold=3, keepalive_interval=1.0, clock=clock
    )
    await ep.connect()
    await ep.call(req(1, M_m="fail"))
    await ep.call(req(2, M_m="biz"))  # a biz exception resets the count
    assert ep.error_count == 0
    await ep.call(req(3, M_m="fail"))
    await ep.call(req(4, M_m="fail"))
    await ep.call(req(5))  # a success resets it too
    assert ep.error_count == 0 and ep.available
    for i in range(3):
        await ep.call(req(10 + i, M_m="fail"))
    assert ep.error_count == 3
    assert not ep.available and not ep.profile
    with pytest.raises(EndpointUnavailable, match="3 errors"):
        await ep.call(req(20))
    # heartbeats while the server refuses them keep it down
    server.heartbeat_enabled = False
    before = server.connections
    clock.advance(1.0)
    await until(lambda: any(c.closed for c in before), "the heartbeat's connection closed")
    await until(lambda: ep.connected == 2, "reconnected")
    assert not ep.available
    server.heartbeat_enabled = True
    clock.advance(1.0)
    await until(lambda: ep.available, "a heartbeat answered")
    assert ep.error_count == 0
    assert (await ep.call(req(21))).request_id == 21
    await ep.close()
    await server.close()


async def test_timeouts_count_as_errors_and_heartbeats_still_get_through(
    held_server: tuple[MotanServer, Recorder, str],
) -> None:
    _server, recorder, address = held_server
    clock = FakeClock()
    ep = Endpoint(address, connections=1, error_count_threshold=2, clock=clock)
    await ep.connect()
    first, second = ep.request(req(1)), ep.request(req(2))
    clock.advance(1.0 + 0.01)
    assert isinstance(first.exception(), RequestTimeout)
    assert isinstance(second.exception(), RequestTimeout)
    assert not ep.available
    # the heartbeat is answered by the server itself even though requests are stuck
    clock.advance(1.0)
    await until(lambda: ep.available, "recovered by heartbeat")
    assert len(recorder.held) == 2
    await ep.close()


async def test_threshold_zero_never_marks_down(flaky: tuple[MotanServer, str]) -> None:
    server, address = flaky
    ep = Endpoint(address, error_count_threshold=0)
    await ep.connect()
    for i in range(30):
        await ep.call(req(i, M_m="fail"))
    assert ep.error_count == 30 and ep.available
    await ep.close()
    await server.close()


async def test_provider_not_exist_enters_profile_mode(flaky: tuple[MotanServer, str]) -> None:
    server, address = flaky
    clock = FakeClock()
    ep = Endpoint(address, error_count_threshold=2, clock=clock)
    await ep.connect()
    await ep.call(req(1, M_m="missing"))
    await ep.call(req(2, M_m="missing"))
    assert ep.profile and not ep.available
    clock.advance(1.0 + 0.01)  # past the requests' deadlines
    assert clock.pending == 0  # no keepalive heartbeats in profile mode
    clock.advance(60)
    await asyncio.sleep(0.01)
    assert not ep.available
    with pytest.raises(EndpointUnavailable, match="provider does not exist"):
        await ep.call(req(3))
    ep.reset()  # the registry announced the node again
    assert ep.available and not ep.profile and ep.error_count == 0
    assert (await ep.call(req(4))).request_id == 4
    await ep.close()
    await server.close()


# ---------------------------------------------------------------------------- misc


async def test_close_fails_pending_calls_and_refuses_new_ones(
    held_server: tuple[MotanServer, Recorder, str],
) -> None:
    server, recorder, address = held_server
    ep = Endpoint(address)
    await ep.connect()
    call = ep.request(req(1))
    await until(lambda: len(recorder.held) == 1)
    await ep.close()
    with pytest.raises(ConnectionLost, match="closed"):
        await call
    with pytest.raises(EndpointUnavailable, match="closed"):
        await ep.call(req(2))
    with pytest.raises(EndpointUnavailable):
        await ep.connect()
    await ep.close()  # idempotent
    await until(lambda: server.connection_count == 0)


async def test_unix_socket_endpoint(tmp_path: Path) -> None:
    path = str(tmp_path / "motan.sock")
    server = MotanServer(echo)
    await server.listen_unix(path)
    ep = Endpoint(f"unix://{path}", connections=2)
    await ep.connect()
    assert ep.connected == 2
    got = await asyncio.gather(*(ep.call(req(i)) for i in range(10)))
    assert [f.request_id for f in got] == list(range(10))
    await ep.close()
    await server.close()


def test_needs_a_connection() -> None:
    with pytest.raises(ValueError):
        Endpoint("127.0.0.1:1", connections=0)


async def test_large_frames_written_in_one_batch_arrive_whole(
    held_server: tuple[MotanServer, Recorder, str],
) -> None:
    """Requests and answers far over the join limit, many per loop iteration (handed to the
    transport without joining), each arrive whole and in order on one connection."""
    server, recorder, address = held_server
    ep = Endpoint(address, connections=1)
    await ep.connect()
    bodies = [bytes([i]) * (200_000 + i) for i in range(12)]
    assert sum(map(len, bodies)) > 20 * JOIN_LIMIT
    calls = [ep.request(req(2000 + i, body=b)) for i, b in enumerate(bodies)]
    await until(lambda: len(recorder.held) == 12, "12 large requests held")
    assert [f.body for f, _r, _c in recorder.held] == bodies
    recorder.answer_all()  # all answers in one batch
    got = await asyncio.gather(*calls)
    assert [(f.request_id, f.body) for f in got] == [(2000 + i, b) for i, b in enumerate(bodies)]
    assert server.connection_count == 1
    await ep.close()


async def test_connection_attempts_are_bounded_per_loop(
    echo_server: tuple[MotanServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many endpoints starting at once connect a bounded number at a time, and every one of
    them gets its connection at the first attempt."""
    server, address = echo_server
    loop = asyncio.get_running_loop()
    real = loop.create_connection
    active = peak = attempts = 0

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal active, peak, attempts
        active += 1
        attempts += 1
        peak = max(peak, active)
        try:
            await asyncio.sleep(0)  # let the other attempts start
            return await real(*args, **kwargs)
        finally:
            active -= 1

    monkeypatch.setattr(loop, "create_connection", counting)
    # a connect timeout far above what a busy machine needs: the test counts attempts, and a
    # timed-out attempt would be retried (an attempt waits for the gate outside its timeout)
    endpoints = [
        Endpoint(address, connections=1, connect_timeout=60.0)
        for _ in range(MAX_CONCURRENT_CONNECTS + 40)
    ]
    await asyncio.gather(*(ep.connect() for ep in endpoints))
    assert peak == MAX_CONCURRENT_CONNECTS
    assert attempts == len(endpoints)
    assert all(ep.connected == 1 for ep in endpoints)
    await until(lambda: server.connection_count == len(endpoints), "every connection accepted")
    await asyncio.gather(*(ep.close() for ep in endpoints))


async def test_answers_in_pieces_arrive_whole_beside_joined_ones(
    held_server: tuple[MotanServer, Recorder, str],
) -> None:
    """Answers written as header and body pieces (``respond_pieces``), some within the read
    of their request and some later, large and small mixed, each arrive whole and in order;
    the large requests were read into buffers of their own, and none is held afterwards."""
    server, recorder, address = held_server
    ep = Endpoint(address, connections=1)
    await ep.connect()
    bodies = [bytes([i]) * (300_000 if i % 3 else 10) for i in range(9)]
    calls = [ep.request(req(3000 + i, body=b)) for i, b in enumerate(bodies)]
    await until(lambda: len(recorder.held) == 9, "9 requests held")
    assert [f.body for f, _r, _c in recorder.held] == bodies
    held, recorder.held = recorder.held, []
    for frame, _respond, conn in held:
        pieces: list[bytes] = []
        forward_into(pieces, frame, frame.request_id, {"k": "v"}, set_flags=FLAG_RESPONSE)
        assert len(pieces) == (2 if len(frame.body) >= SPLIT_BODY else 1)
        assert b"".join(pieces) == forward(
            frame, frame.request_id, {"k": "v"}, set_flags=FLAG_RESPONSE
        )
        conn.respond_pieces(pieces)
    got = await asyncio.gather(*calls)
    assert [(f.request_id, f.body, f.metadata["k"]) for f in got] == [
        (3000 + i, b, "v") for i, b in enumerate(bodies)
    ]
    (conn,) = server.connections
    assert conn._decoder.buffered == 0 and conn._decoder._big is None
    await ep.close()


async def test_answers_in_pieces_within_the_read_of_their_requests() -> None:
    """A handler answering in pieces while its request's read is served (the batch path)."""

    def handler(frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        pieces: list[bytes] = []
        forward_into(pieces, frame, frame.request_id, set_flags=FLAG_RESPONSE)
        conn.respond_pieces(pieces)

    server = MotanServer(handler)
    host, port = await server.listen_tcp()
    ep = Endpoint(f"{host}:{port}", connections=1)
    await ep.connect()
    bodies = [bytes([i]) * (70_000 * i + 1) for i in range(6)]
    got = await asyncio.gather(*(ep.request(req(10 + i, body=b)) for i, b in enumerate(bodies)))
    assert [(f.request_id, f.body) for f in got] == [(10 + i, b) for i, b in enumerate(bodies)]
    await ep.close()
    await server.close(deadline=0)
