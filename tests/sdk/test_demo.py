"""The SDK client against the demo service over a real MotanServer, simple and breeze."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from motanmesh.demo import DEMO_GROUP, DEMO_SERVICE, MotanDemoService, demo_registry
from motanmesh.sdk import MotanBizError, MotanClient, MotanServiceError, ServiceServer
from motanmesh.wire.frame import ERRTYPE_BIZ, ERRTYPE_SERVICE


@pytest.fixture(params=["simple", "breeze"])
async def client(
    request: pytest.FixtureRequest, demo_server: ServiceServer
) -> AsyncIterator[MotanClient]:
    async with MotanClient(
        demo_server.address, serialization=request.param, group=DEMO_GROUP, timeout=5.0
    ) as c:
        yield c


async def test_hello(client: MotanClient) -> None:
    assert await client.call(DEMO_SERVICE, "hello", "world") == "hello world"
    assert await client.call(DEMO_SERVICE, "hello", "中文") == "hello 中文"


async def test_echo_one_argument_comes_back_as_it_is(client: MotanClient) -> None:
    value = {"name": "ray", "tags": ["a", "b"], "n": 7}
    assert await client.call(DEMO_SERVICE, "echo", value) == value
    assert await client.call(DEMO_SERVICE, "echo", -12345678901) == -12345678901
    assert await client.call(DEMO_SERVICE, "echo", 2.5) == 2.5
    assert await client.call(DEMO_SERVICE, "echo", True) is True
    assert await client.call(DEMO_SERVICE, "echo", b"\x00\xff") == b"\x00\xff"


async def test_echo_several_arguments_come_back_as_a_list(client: MotanClient) -> None:
    assert await client.call(DEMO_SERVICE, "echo", "a", 7, False) == ["a", 7, False]


async def test_echo_without_arguments_is_null(client: MotanClient) -> None:
    assert await client.call(DEMO_SERVICE, "echo") is None


async def test_sleep_returns_its_argument(client: MotanClient) -> None:
    assert await client.call(DEMO_SERVICE, "sleep", 20) == 20


async def test_fail_is_a_biz_error(client: MotanClient) -> None:
    with pytest.raises(MotanBizError) as info:
        await client.call(DEMO_SERVICE, "fail")
    assert info.value.errtype == ERRTYPE_BIZ
    assert info.value.errcode == 500
    assert info.value.errmsg == "demo business error"
    with pytest.raises(MotanBizError, match="custom reason"):
        await client.call(DEMO_SERVICE, "fail", "custom reason")


async def test_wrong_arguments_are_a_service_error(client: MotanClient) -> None:
    with pytest.raises(MotanServiceError) as info:
        await client.call(DEMO_SERVICE, "hello")
    assert info.value.errtype == ERRTYPE_SERVICE
    assert info.value.errcode == 500
    assert "name" in info.value.errmsg


async def test_other_group_is_404(client: MotanClient) -> None:
    with pytest.raises(MotanServiceError) as info:
        await client.call(DEMO_SERVICE, "hello", "x", group="no-such-group")
    assert info.value.errcode == 404
    assert info.value.errmsg == f"provider not exist serviceKey=no-such-group_{DEMO_SERVICE}"


async def test_many_calls_in_flight(client: MotanClient) -> None:
    names = [f"n{i}" for i in range(300)]
    sleeps = [client.call(DEMO_SERVICE, "sleep", 30) for _ in range(50)]
    results = await asyncio.gather(*(client.call(DEMO_SERVICE, "hello", n) for n in names), *sleeps)
    assert results[: len(names)] == [f"hello {n}" for n in names]
    assert results[len(names) :] == [30] * 50


async def test_unix_socket(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = str(tmp_path_factory.mktemp("sock") / "demo.sock")
    server = await demo_registry().serve(port=None, unix_path=path)
    try:
        assert server.addresses == [f"unix://{path}"]
        async with MotanClient(f"unix://{path}", group=DEMO_GROUP) as c:
            assert await c.call(DEMO_SERVICE, "hello", "unix") == "hello unix"
    finally:
        await server.close()


def test_demo_object_directly() -> None:
    demo = MotanDemoService()
    assert demo.hello("x") == "hello x"
    assert demo.echo() is None
    assert demo.echo(1) == 1
    assert demo.echo(1, 2) == [1, 2]
    assert asyncio.run(demo.sleep(0)) == 0
    with pytest.raises(MotanBizError):
        demo.fail()


async def test_close_lets_calls_in_flight_finish(
    demo_server: ServiceServer, demo_client: MotanClient
) -> None:
    call = asyncio.create_task(demo_client.call(DEMO_SERVICE, "sleep", 200))
    while demo_server.server.in_flight == 0:
        await asyncio.sleep(0.001)
    await demo_server.close()
    assert await call == 200
    assert demo_server.dispatcher.pending == 0
