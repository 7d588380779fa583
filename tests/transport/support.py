"""Helpers shared by the transport tests: handlers, raw sockets, waiting on conditions."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable

from motanmesh.transport import Responder, ServerConnection
from motanmesh.wire.frame import (
    ERRTYPE_SERVICE,
    FLAG_RESPONSE,
    Frame,
    exception_frame,
    parse_frame,
    request_frame,
)
from motanmesh.wire.passthrough import forward

#: a real-time guard for conditions that must come true; tests never depend on its length
PATIENCE = 10.0


def echo(frame: Frame, respond: Responder, conn: ServerConnection) -> None:
    """Answer with the request's own metadata and body, response bit set."""
    respond(forward(frame, frame.request_id, set_flags=FLAG_RESPONSE))


def answer(frame: Frame, body: bytes | None = None) -> bytes:
    return (
        forward(frame, frame.request_id, set_flags=FLAG_RESPONSE)
        if body is None
        else (Frame(FLAG_RESPONSE, 0, frame.serialization, frame.request_id, {}, body).encode())
    )


def failure(frame: Frame, errcode: int, errmsg: str, errtype: int = ERRTYPE_SERVICE) -> bytes:
    return exception_frame(frame.request_id, errcode, errmsg, errtype).encode()


class Recorder:
    """A handler that keeps the requests; the test answers them (or not) when it likes."""

    def __init__(self) -> None:
        self.held: list[tuple[Frame, Responder, ServerConnection]] = []

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        self.held.append((frame, respond, conn))

    def answer_all(self, make: Callable[[Frame], bytes] = answer) -> None:
        held, self.held = self.held, []
        for frame, respond, _conn in held:
            respond(make(frame))


async def until(predicate: Callable[[], bool], what: str = "condition") -> None:
    """Wait (yielding to the loop) until ``predicate()`` holds; fail after :data:`PATIENCE`."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + PATIENCE
    while not predicate():
        if loop.time() > give_up:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.002)


def req(rid: int = 1, body: bytes = b"payload", **meta: str) -> Frame:
    metadata = {"M_p": "com.example.Echo", "M_m": "hello", "M_g": "test"}
    metadata.update(meta)
    return request_frame(rid, metadata, body)


class RawClient:
    """A plain socket to a server, for byte-exact exchanges."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, address: str, *, rcvbuf: int | None = None) -> RawClient:
        """Connect; ``rcvbuf`` shrinks the socket's receive buffer (a slow reader)."""
        if address.startswith("unix://"):
            r, w = await asyncio.open_unix_connection(address[7:])
            return cls(r, w)
        host, _, port = address.rpartition(":")
        if rcvbuf is None:
            r, w = await asyncio.open_connection(host, int(port))
            return cls(r, w)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        except OSError:
            sock.close()
            raise
        r, w = await asyncio.open_connection(sock=sock, limit=rcvbuf)
        return cls(r, w)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_exactly(self, n: int) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(n), PATIENCE)

    async def read_frame(self) -> Frame:
        """Read one whole Motan2 frame."""
        head = await self.read_exactly(17)
        (mlen,) = struct.unpack_from(">I", head, 13)
        meta_and_blen = await self.read_exactly(mlen + 4)
        (blen,) = struct.unpack_from(">I", meta_and_blen, mlen)
        body = await self.read_exactly(blen)
        return parse_frame(head + meta_and_blen + body)

    async def read_v1(self) -> bytes:
        """Read one whole Motan v1 message (16-byte header, then its length)."""
        head = await self.read_exactly(16)
        (length,) = struct.unpack_from(">I", head, 12)
        return head + await self.read_exactly(length)

    async def closed_by_peer(self) -> bool:
        """True when the server closed the connection (EOF, or a reset) with nothing more."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), PATIENCE)
        except ConnectionResetError:
            return True
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
