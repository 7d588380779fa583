"""The service library over a real MotanServer: handler kinds, dispatch and every error."""

from __future__ import annotations

import asyncio
import threading
import zlib

import pytest

from motanmesh.sdk import (
    MotanBizError,
    MotanClient,
    MotanRemoteError,
    MotanServiceError,
    ServiceRegistry,
    ServiceServer,
)
from motanmesh.transport.errors import ConnectionLost
from motanmesh.wire.frame import (
    ERRTYPE_BIZ,
    ERRTYPE_SERVICE,
    FLAG_GZIP,
    M_EXCEPTION,
    M_PROCESS_TIME,
    STATUS_EXCEPTION,
    STATUS_NORMAL,
    parse_exception,
)
from motanmesh.wire.serialization import BREEZE, JSON, SIMPLE

from .conftest import TEST_GROUP, TEST_SERVICE


async def test_plain_handlers_run_in_the_pool(test_client: MotanClient) -> None:
    name = await test_client.call(TEST_SERVICE, "thread_name")
    assert name.startswith("motanmesh-service")


async def test_inline_and_async_handlers_run_on_the_loop(test_client: MotanClient) -> None:
    here = threading.current_thread().name
    assert await test_client.call(TEST_SERVICE, "inline_thread_name") == here
    assert await test_client.call(TEST_SERVICE, "async_thread_name") == here


async def test_concurrent_calls_of_every_kind(test_client: MotanClient) -> None:
    calls = []
    for i in range(100):
        calls.append(test_client.call("com.example.Calculator", "add", i, 1))
        calls.append(test_client.call(TEST_SERVICE, "async_thread_name"))
        calls.append(test_client.call(TEST_SERVICE, "inline_thread_name"))
    results = await asyncio.gather(*calls)
    assert results[0::3] == [i + 1 for i in range(100)]


async def test_add_object_serves_public_methods(test_client: MotanClient) -> None:
    assert await test_client.call("com.example.Calculator", "add", 2, 3) == 5
    assert await test_client.call("com.example.Calculator", "scaled", 4) == 40
    # registered without a group: answers any group
    assert await test_client.call("com.example.Calculator", "add", 1, 1, group="other") == 2
    for hidden in ("_private", "hidden_property", "scale"):
        with pytest.raises(MotanServiceError) as info:
            await test_client.call("com.example.Calculator", hidden)
        assert info.value.errmsg == f"method {hidden} is not found in provider."


@pytest.mark.parametrize("method", ["crash", "async_crash"])
async def test_handler_exception_is_a_service_error(
    test_client: MotanClient, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    args = ("boom",) if method == "crash" else ()
    with pytest.raises(MotanServiceError) as info:
        await test_client.call(TEST_SERVICE, method, *args)
    assert info.value.errtype == ERRTYPE_SERVICE
    assert info.value.errcode == 500
    assert info.value.errmsg == ("boom" if method == "crash" else "'missing'")
    assert any("failed" in r.getMessage() for r in caplog.records)


async def test_biz_errors_keep_their_code(test_client: MotanClient) -> None:
    with pytest.raises(MotanBizError) as info:
        await test_client.call(TEST_SERVICE, "biz", 409)
    assert (info.value.errcode, info.value.errtype) == (409, ERRTYPE_BIZ)
    assert info.value.errmsg == "no such account"
    with pytest.raises(MotanBizError) as info:
        await test_client.call(TEST_SERVICE, "async_biz")
    assert (info.value.errcode, info.value.errtype) == (500, ERRTYPE_BIZ)


async def test_raised_service_error_keeps_its_code(test_client: MotanClient) -> None:
    with pytest.raises(MotanServiceError) as info:
        await test_client.call(TEST_SERVICE, "service_error")
    assert (info.value.errcode, info.value.errtype) == (503, ERRTYPE_SERVICE)


async def test_unknown_service_is_404_with_go_message(test_client: MotanClient) -> None:
    with pytest.raises(MotanServiceError) as info:
        await test_client.call("no.such.Service", "hello", "x")
    assert info.value.errcode == 404
    assert info.value.errmsg == f"provider not exist serviceKey={TEST_GROUP}_no.such.Service"
    # a service registered in one group does not answer another
    with pytest.raises(MotanServiceError) as info:
        await test_client.call(TEST_SERVICE, "thread_name", group="")
    assert info.value.errmsg == f"provider not exist serviceKey=_{TEST_SERVICE}"


async def test_unknown_method(test_client: MotanClient) -> None:
    with pytest.raises(MotanServiceError) as info:
        await test_client.call(TEST_SERVICE, "nope")
    assert (info.value.errcode, info.value.errtype) == (500, ERRTYPE_SERVICE)
    assert info.value.errmsg == "method nope is not found in provider."


async def test_bad_body(test_client: MotanClient) -> None:
    frame = test_client.request(TEST_SERVICE, "crash", ())
    frame.body = b"\x01\x00\x00\x00\x09abc"  # a string that claims 9 bytes, has 3
    reply = await test_client.call_frame(frame)
    assert reply.status == STATUS_EXCEPTION
    exc = parse_exception(reply.metadata[M_EXCEPTION])
    assert (exc.errcode, exc.errtype) == (500, ERRTYPE_SERVICE)
    assert exc.errmsg.startswith("deserialize fail. err:")
    assert exc.errmsg.endswith(" method:crash")


async def test_unknown_serialization(test_client: MotanClient) -> None:
    frame = test_client.request(TEST_SERVICE, "thread_name", ())
    frame.serialization = JSON  # an id with no serialization registered
    frame.body = b"[]"
    reply = await test_client.call_frame(frame)
    assert reply.status == STATUS_EXCEPTION
    assert reply.serialization == SIMPLE
    exc = parse_exception(reply.metadata[M_EXCEPTION])
    assert (exc.errcode, exc.errtype) == (500, ERRTYPE_SERVICE)
    assert exc.errmsg.startswith("deserialize fail. err:message serialize not found")
    assert exc.errmsg.endswith("method:thread_name")


async def test_reply_uses_the_request_serialization(test_server: ServiceServer) -> None:
    for name, ident in (("simple", SIMPLE), ("breeze", BREEZE)):
        async with MotanClient(test_server.address, serialization=name, group=TEST_GROUP) as c:
            reply = await c.call_frame(c.request("com.example.Calculator", "add", (1, 2)))
            assert reply.status == STATUS_NORMAL
            assert reply.serialization == ident
            assert int(reply.metadata[M_PROCESS_TIME]) >= 0
            with pytest.raises(MotanRemoteError):
                await c.call(TEST_SERVICE, "nope")
            error = await c.call_frame(c.request(TEST_SERVICE, "nope", ()))
            assert error.serialization == ident
            assert M_PROCESS_TIME in error.metadata


async def test_gzip_request_body(test_client: MotanClient) -> None:
    frame = test_client.request("com.example.Calculator", "add", (20, 22))
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    frame.body = c.compress(frame.body) + c.flush()
    frame.flags |= FLAG_GZIP
    reply = await test_client.call_frame(frame)
    assert reply.status == STATUS_NORMAL
    assert test_client.serialization.decode(reply.body) == 42


async def test_context_handler_sees_metadata_and_adds_reply_metadata(
    test_client: MotanClient,
) -> None:
    test_client.application = "ctx-app"
    result = await test_client.call(TEST_SERVICE, "whoami", "!", attachments={"x-trace": "t1"})
    assert result == {
        "path": TEST_SERVICE,
        "method": "whoami",
        "group": TEST_GROUP,
        "source": "ctx-app",
        "trace": "t1",
        "suffix": "!",
    }
    reply = await test_client.call_frame(test_client.request(TEST_SERVICE, "whoami", ("?",)))
    assert reply.metadata["x-answer"] == "42"


async def test_unencodable_result(test_client: MotanClient) -> None:
    with pytest.raises(MotanServiceError) as info:
        await test_client.call(TEST_SERVICE, "unencodable")
    assert info.value.errmsg.startswith("convert to response fail. err:")


async def test_none_result_is_an_empty_body(test_client: MotanClient) -> None:
    reply = await test_client.call_frame(test_client.request(TEST_SERVICE, "nothing", ()))
    assert reply.status == STATUS_NORMAL
    assert reply.body == b""
    assert await test_client.call(TEST_SERVICE, "nothing") is None


async def test_async_handler_with_wrong_arguments(test_client: MotanClient) -> None:
    with pytest.raises(MotanServiceError) as info:
        await test_client.call(TEST_SERVICE, "async_biz", "unexpected")
    assert info.value.errcode == 500
    assert "argument" in info.value.errmsg


async def test_close_cancels_what_outlives_the_deadline() -> None:
    registry = ServiceRegistry()
    started = asyncio.Event()

    @registry.service("com.x.Slow").method()
    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    server = await registry.serve()
    async with MotanClient(server.address, timeout=30) as client:
        call = asyncio.create_task(client.call("com.x.Slow", "forever"))
        await started.wait()
        assert server.dispatcher.pending == 1
        await server.close(deadline=0)
        assert server.dispatcher.pending == 0
        with pytest.raises(ConnectionLost):
            await call
