"""The endpoint interface the cluster layer selects from and calls."""

from __future__ import annotations

import asyncio
from typing import Protocol

from motanmesh.url import URL
from motanmesh.wire.frame import Frame

__all__ = ["EndpointLike"]


class EndpointLike(Protocol):
    """One provider node as the cluster sees it.

    ``request`` sends ``frame`` (with the metadata ``changes`` applied on the wire, the frame
    object itself left untouched, so the same frame may go to two endpoints at once) and
    returns a future for the response. A failure before a response arrives sets a
    :class:`motanmesh.transport.errors.TransportError` on the future (or raises it). An
    exception response is a normal result: a status-1 frame carrying ``M_e``. Cancelling the
    future abandons the request.
    """

    @property
    def url(self) -> URL:
        """The provider URL: host, port, group and parameters such as ``META_WEIGHT``."""
        ...

    @property
    def available(self) -> bool: ...

    @property
    def in_flight(self) -> int:
        """Requests sent and not answered yet."""
        ...

    def request(
        self,
        frame: Frame,
        changes: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> asyncio.Future[Frame]: ...
