"""The call of a server-side chain: answered to the caller's connection.

Kept here, beside :class:`~motanmesh.filters.base.Call` (both are compiled by mypyc), rather
than in the agent: the agent hands in how an answer is encoded
(:func:`motanmesh.agent.providers.answer_bytes`), so this layer needs nothing above it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from motanmesh.filters.base import ROLE_SERVER, Call
from motanmesh.url import URL
from motanmesh.wire.frame import Frame

__all__ = ["Encoder", "ServerCall"]

#: the bytes the server agent writes back for ``(request, response, exception)``
Encoder = Callable[[Frame, Frame | None, BaseException | None], bytes]


class ServerCall(Call):
    """A server-side call. As a ``Reply`` (``set_result``/``set_exception``) it takes the
    provider's answer frame, encodes it at once (filters see its size), then ends the call;
    the end writes the bytes to the caller with ``respond``."""

    __slots__ = ("_encode", "_respond")

    def __init__(
        self,
        frame: Frame,
        url: URL,
        conn: Any,
        respond: Callable[[bytes], None],
        encode: Encoder,
    ) -> None:
        super().__init__(frame, url, ROLE_SERVER, conn.peer, {})
        self.conn = conn
        self._respond = respond
        self._encode = encode

    def set_result(self, result: Frame, /) -> None:
        self.answered(result, None)

    def set_exception(self, exception: BaseException, /) -> None:
        self.answered(None, exception)

    def answered(self, response: Frame | None, exc: BaseException | None) -> None:
        """The provider's response frame: encode it now (filters see its size), then end
        the call."""
        if self._done:
            return
        raw = self._encode(self.request, response, exc)
        self.raw_response = raw
        self.response_size = len(raw)
        self.complete(response, exc)

    def _end(self, response: Frame | None, exc: BaseException | None) -> None:
        raw = self.raw_response
        if raw is None:
            raw = self._encode(self.request, response, exc)
            self.response_size = len(raw)
        self._respond(raw)
