"""Endpoint filters in front of a server-side provider: what reaches the provider and what
goes back to the caller."""

from __future__ import annotations

from typing import Any, cast

from motanmesh.agent.dispatcher import Provider
from motanmesh.agent.filtering import FilteredProvider, with_filters
from motanmesh.filters import Call, Filter, FilterContext, Handler, register_filter
from motanmesh.transport.server import Responder, ServerConnection
from motanmesh.url import URL
from motanmesh.wire.frame import M_METHOD, M_PATH, Frame, parse_frame, request_frame
from motanmesh.wire.frame import response_frame as make_response

SERVICE = URL("motan2", "127.0.0.1", 0, "com.example.Echo", "g1")
SIZES: list[int] = []


class AddHeader(Filter):
    name = "srvAddHeader"

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        call.changes["x-srv"] = call.peer
        call.on_complete(lambda c, r, e: SIZES.append(c.response_size))
        proceed(call)


register_filter(AddHeader)


class EchoProvider:
    """Answers each request with its own metadata as the body."""

    def __init__(self) -> None:
        self.url = SERVICE
        self.seen: list[Frame] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        self.seen.append(frame)
        body = repr(sorted(frame.metadata.items())).encode()
        respond(make_response(frame.request_id, {"k": "v"}, body).encode())


class Conn:
    peer = "10.0.0.9:4567"


def test_changes_reach_the_provider_and_its_bytes_go_back_unchanged() -> None:
    inner = EchoProvider()
    provider = with_filters(
        cast(Provider, inner), SERVICE.with_params(filter="srvAddHeader"), FilterContext()
    )
    assert isinstance(provider, FilteredProvider)
    answers: list[bytes] = []
    request = request_frame(42, {M_PATH: SERVICE.path, M_METHOD: "m"}, b"payload")
    provider(request, answers.append, cast(ServerConnection, cast(Any, Conn())))
    assert inner.seen[0].metadata["x-srv"] == "10.0.0.9:4567"
    assert inner.seen[0].body == b"payload"
    assert len(answers) == 1
    answer = parse_frame(answers[0])
    assert answer.request_id == 42 and answer.metadata == {"k": "v"}
    assert b"x-srv" in answer.body
    assert SIZES[-1] == len(answers[0])


def test_no_endpoint_filter_leaves_the_provider_as_it_is() -> None:
    inner = EchoProvider()
    provider = with_filters(cast(Provider, inner), SERVICE, FilterContext())
    assert provider is cast(Provider, inner)
