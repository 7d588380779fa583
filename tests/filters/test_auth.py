"""The ``auth`` filter in front of a provider served on a real loopback port: allowed callers
reach the provider, others get the dedicated exception, counted, logged without the body."""

from __future__ import annotations

import logging
from typing import cast

import pytest

from motanmesh.agent.dispatcher import Provider
from motanmesh.agent.filtering import FilteredProvider, with_filters
from motanmesh.filters import FilterContext
from motanmesh.filters.auth import E_AUTH_DENIED, AuthFilter
from motanmesh.transport import MotanServer
from motanmesh.transport.server import Responder, ServerConnection
from motanmesh.url import URL
from motanmesh.wire.frame import (
    M_METHOD,
    M_PATH,
    M_SOURCE,
    Frame,
    parse_exception,
    request_frame,
    response_frame,
)
from tests.transport.support import RawClient

SERVICE = URL("motan2", "127.0.0.1", 0, "com.example.Orders", "g1")
SECRET_BODY = b"card=4111111111111111"


class Backend:
    def __init__(self) -> None:
        self.url = SERVICE
        self.seen: list[Frame] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        self.seen.append(frame)
        respond(response_frame(frame.request_id, {}, b"ok").encode())


async def call(client: RawClient, rid: int, method: str, caller: str | None) -> Frame:
    meta = {M_PATH: SERVICE.path, M_METHOD: method}
    if caller is not None:
        meta[M_SOURCE] = caller
    await client.send(request_frame(rid, meta, SECRET_BODY).encode())
    return await client.read_frame()


async def test_allowed_callers_pass_and_others_are_refused_counted_and_not_logged_in_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = Backend()
    url = SERVICE.with_params(
        filter="auth", **{"auth.allow": "web, mobile", "auth.allow.refund": "billing"}
    )
    provider = with_filters(cast(Provider, backend), url, FilterContext())
    assert isinstance(provider, FilteredProvider)
    server = MotanServer(provider)
    host, port = await server.listen_tcp()
    client = await RawClient.open(f"{host}:{port}")
    try:
        assert (await call(client, 1, "get", "web")).body == b"ok"
        assert (await call(client, 2, "get", "mobile")).body == b"ok"
        assert (await call(client, 3, "refund", "billing")).body == b"ok"
        refused = [
            await call(client, 4, "get", "intruder"),
            await call(client, 5, "refund", "web"),  # the method's list replaces the service's
            await call(client, 6, "get", None),
        ]
        for answer in refused:
            error = parse_exception(answer.metadata["M_e"])
            assert error.errcode == E_AUTH_DENIED
            assert "auth.allow" in error.errmsg
        assert (
            "'intruder' may not call com.example.Orders.get"
            in parse_exception(refused[0].metadata["M_e"]).errmsg
        )
        assert [f.request_id for f in backend.seen] == [1, 2, 3]
        (auth,) = [f for f in provider.filters.endpoint if isinstance(f, AuthFilter)]
        assert auth.denied == 3
        assert auth.info()["denied"] == 3
        assert "refused" in caplog.text
        assert "4111" not in caplog.text
    finally:
        await client.close()
        await server.close(deadline=0)


async def test_without_a_policy_every_call_is_refused() -> None:
    backend = Backend()
    provider = with_filters(
        cast(Provider, backend), SERVICE.with_params(filter="auth"), FilterContext()
    )
    server = MotanServer(provider)
    host, port = await server.listen_tcp()
    client = await RawClient.open(f"{host}:{port}")
    try:
        answer = await call(client, 1, "get", "web")
        assert parse_exception(answer.metadata["M_e"]).errcode == E_AUTH_DENIED
        assert backend.seen == []
    finally:
        await client.close()
        await server.close(deadline=0)


async def test_a_star_allows_every_caller() -> None:
    backend = Backend()
    url = SERVICE.with_params(filter="auth", **{"auth.allow": "*"})
    server = MotanServer(with_filters(cast(Provider, backend), url, FilterContext()))
    host, port = await server.listen_tcp()
    client = await RawClient.open(f"{host}:{port}")
    try:
        assert (await call(client, 1, "get", "anyone")).body == b"ok"
        assert (await call(client, 2, "get", None)).body == b"ok"
    finally:
        await client.close()
        await server.close(deadline=0)
