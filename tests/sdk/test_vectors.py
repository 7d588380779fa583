"""Frames written by motan-go and motan-php, sent as raw bytes to the demo service.

The motan-go demo client's requests (``app-to-agent`` captures) for the demo service's
``hello`` get ``hello <name>``; requests for any other service get motan-go's 404; the
heartbeat gets a heartbeat answer. motan-php's requests (service ``com.weibo.HelloMTService``)
get the 404 from the demo service, and their arguments reach a service registered for them
exactly as the wire layer decodes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from motanmesh.demo import DEMO_SERVICE
from motanmesh.sdk import CallContext, ServiceRegistry, ServiceServer
from motanmesh.transport.endpoint import parse_address
from motanmesh.wire.decoder import FrameDecoder
from motanmesh.wire.frame import (
    FLAG_RESPONSE,
    M_EXCEPTION,
    STATUS_EXCEPTION,
    STATUS_NORMAL,
    Frame,
    parse_exception,
    parse_frame,
)
from motanmesh.wire.serialization import get_serialization
from tests.vectors import load_vectors

_load = load_vectors


GO_APP_REQUESTS: list[bytes] = [
    bytes.fromhex(f["hex"])
    for f in _load("motan-go-captures.json")["hops"]["app-to-agent"]["frames"]
    if f["dir"] == "c2s"
]
PHP_REQUESTS: list[tuple[str, bytes]] = [
    (v["id"], bytes.fromhex(v["hex"]))
    for v in _load("motan-php-vectors.json")["vectors"]
    if v["kind"] == "request"
]


async def _exchange(address: str, payloads: list[bytes]) -> dict[int, Frame]:
    """Write every payload on one connection (pipelined); return the answers by request id."""
    target = parse_address(address)
    assert isinstance(target, tuple)
    reader, writer = await asyncio.open_connection(*target)
    try:
        writer.write(b"".join(payloads))
        await writer.drain()
        decoder = FrameDecoder()
        answers: dict[int, Frame] = {}
        async with asyncio.timeout(10):
            while len(answers) < len(payloads):
                data = await reader.read(65536)
                assert data, "connection closed before every request was answered"
                for frame in decoder.feed(data):
                    assert isinstance(frame, Frame)
                    answers[frame.request_id] = frame
        return answers
    finally:
        writer.close()
        await writer.wait_closed()


def test_the_captures_hold_demo_hello_requests() -> None:
    demo = [
        parse_frame(raw)
        for raw in GO_APP_REQUESTS
        if not parse_frame(raw).is_heartbeat
        and parse_frame(raw).metadata.get("M_p") == DEMO_SERVICE
    ]
    assert len(demo) >= 2
    assert all(f.metadata["M_m"] == "hello" for f in demo)
    assert len(PHP_REQUESTS) >= 5


async def test_motan_go_requests(demo_server: ServiceServer) -> None:
    requests = [parse_frame(raw) for raw in GO_APP_REQUESTS]
    answers = await _exchange(demo_server.address, GO_APP_REQUESTS)
    checked_hello = 0
    for req in requests:
        reply = answers[req.request_id]
        assert reply.flags & FLAG_RESPONSE
        if req.is_heartbeat:
            assert reply.is_heartbeat
            continue
        assert reply.serialization == req.serialization
        path = req.metadata["M_p"]
        if path == DEMO_SERVICE:
            ser = get_serialization(req.serialization)
            (name,) = ser.decode_multi(req.body)
            assert reply.status == STATUS_NORMAL
            assert ser.decode(reply.body) == f"hello {name}"
            checked_hello += 1
        else:
            assert reply.status == STATUS_EXCEPTION
            exc = parse_exception(reply.metadata[M_EXCEPTION])
            assert (exc.errcode, exc.errtype) == (404, 1)
            group = req.metadata["M_g"]
            assert exc.errmsg == f"provider not exist serviceKey={group}_{path}"
            assert reply.metadata[M_EXCEPTION] == (
                '{"errcode":404,"errmsg":"provider not exist serviceKey='
                f'{group}_{path}","errtype":1}}'
            )
    assert checked_hello >= 2


async def test_motan_php_requests_get_the_404(demo_server: ServiceServer) -> None:
    payloads = [raw for _id, raw in PHP_REQUESTS]
    answers = await _exchange(demo_server.address, payloads)
    for raw in payloads:
        req = parse_frame(raw)
        reply = answers[req.request_id]
        assert reply.status == STATUS_EXCEPTION
        exc = parse_exception(reply.metadata[M_EXCEPTION])
        assert exc.errcode == 404
        assert exc.errmsg == (
            f"provider not exist serviceKey={req.metadata['M_g']}_{req.metadata['M_p']}"
        )


@pytest.fixture
async def php_target() -> AsyncIterator[ServiceServer]:
    """A service for motan-php's requests: every method returns what it received."""
    registry = ServiceRegistry()
    svc = registry.service("com.weibo.HelloMTService", group="motan-demo-rpc")

    def received(ctx: CallContext, *args: Any) -> dict[str, Any]:
        return {"method": ctx.method, "args": list(args), "caller": ctx.metadata.get("x-caller")}

    for method in ("Hello", "Mixed", "List", "Bytes", "Scale", "Ping", "Echo"):
        svc.add(method, received, inline=True, context=True)
    server = await registry.serve()
    yield server
    await server.close()


async def test_motan_php_arguments_reach_the_handler(php_target: ServiceServer) -> None:
    payloads = [raw for _id, raw in PHP_REQUESTS]
    answers = await _exchange(php_target.address, payloads)
    for vector_id, raw in PHP_REQUESTS:
        req = parse_frame(raw)
        reply = answers[req.request_id]
        assert reply.status == STATUS_NORMAL, (vector_id, reply.metadata)
        ser = get_serialization(req.serialization)
        got = ser.decode(reply.body)
        assert got["method"] == req.metadata["M_m"]
        assert got["args"] == (ser.decode_multi(req.body) if req.body else [])
        assert got["caller"] == req.metadata.get("x-caller")
