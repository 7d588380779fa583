"""In-memory endpoints for the cluster layer's logic tests.

The cluster layer only selects endpoints and awaits the futures they return; these
endpoints hand out real asyncio futures that a test resolves (or leaves pending) by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from motanmesh.url import URL
from motanmesh.wire.frame import (
    ERRTYPE_BIZ,
    ERRTYPE_SERVICE,
    M_METHOD,
    M_PATH,
    Frame,
    exception_frame,
    request_frame,
    response_frame,
)

#: what an endpoint does with a request: a frame or an exception to resolve the future with,
#: ``None`` to leave it pending; raising inside the reply raises from ``request`` itself
Reply = Callable[[Frame], Frame | BaseException | None]


def ok(name: str) -> Reply:
    return lambda frame: response_frame(frame.request_id, {}, name.encode())


def pending() -> Reply:
    return lambda frame: None


def fail(exc: BaseException) -> Reply:
    return lambda frame: exc


def remote_error(errcode: int = 500, errtype: int = ERRTYPE_SERVICE) -> Reply:
    return lambda frame: exception_frame(frame.request_id, errcode, "boom", errtype)


def biz_error() -> Reply:
    return remote_error(503, ERRTYPE_BIZ)


class TestEndpoint:
    """An endpoint whose answers come from ``reply`` (or from the test, via ``futures``)."""

    __test__ = False

    def __init__(
        self,
        host: str = "10.0.0.1",
        port: int = 8002,
        *,
        group: str = "g",
        params: dict[str, str] | None = None,
        available: bool = True,
        in_flight: int = 0,
        reply: Reply | None = None,
    ) -> None:
        self.url = URL("motan2", host, port, "svc.Demo", group, params or {})
        self.available = available
        self.in_flight = in_flight
        self.reply: Reply = reply if reply is not None else ok(f"{host}:{port}")
        self.futures: list[asyncio.Future[Frame]] = []
        self.timeouts: list[float | None] = []
        self.changes: list[dict[str, str] | None] = []

    @property
    def name(self) -> str:
        return self.url.address

    def request(
        self, frame: Frame, changes: dict[str, str] | None = None, timeout: float | None = None
    ) -> asyncio.Future[Frame]:
        self.timeouts.append(timeout)
        self.changes.append(changes)
        outcome = self.reply(frame)
        fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        if isinstance(outcome, Frame):
            fut.set_result(outcome)
        elif isinstance(outcome, BaseException):
            fut.set_exception(outcome)
        return fut

    @property
    def calls(self) -> int:
        return len(self.futures)

    def resolve(self, index: int = -1, body: bytes | None = None) -> None:
        """Answer a pending request successfully (body defaults to the endpoint's name)."""
        fut = self.futures[index]
        fut.set_result(response_frame(7, {}, body if body is not None else self.name.encode()))


def endpoints(n: int, *, group: str = "g", reply: Reply | None = None) -> list[TestEndpoint]:
    return [TestEndpoint(f"10.0.0.{i + 1}", 8002, group=group, reply=reply) for i in range(n)]


def request(
    method: str = "echo", request_id: int = 42, meta: dict[str, str] | None = None
) -> Frame:
    metadata = {M_PATH: "svc.Demo", M_METHOD: method}
    if meta:
        metadata.update(meta)
    return request_frame(request_id, metadata, b"body", serialization=8)
