"""A small FastCGI client (the responder role), enough to call php-fpm.

The record codec is sans-I/O (:func:`encode_request`, :class:`ResponseReader`); :func:`request`
runs one request on a new connection, as the Go agent does: ``BEGIN_REQUEST`` (responder, no
keep-alive), the parameters, the body on ``STDIN``, then ``STDOUT`` and ``STDERR`` are read
until ``END_REQUEST`` and the server closes the connection.

Record layout (FastCGI 1.0): version, type, request id (2 bytes), content length (2 bytes),
padding length, reserved; then content and padding. Name-value lengths are one byte below 128,
else four bytes with the high bit set.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "FastCgiError",
    "FastCgiResponse",
    "FastCgiUnavailableError",
    "ResponseReader",
    "encode_params",
    "encode_request",
    "request",
]

VERSION: Final = 1
BEGIN_REQUEST: Final = 1
ABORT_REQUEST: Final = 2
END_REQUEST: Final = 3
PARAMS: Final = 4
STDIN: Final = 5
STDOUT: Final = 6
STDERR: Final = 7
RESPONDER: Final = 1
REQUEST_ID: Final = 1
MAX_CONTENT: Final = 0xFFFF
#: protocol status of END_REQUEST
REQUEST_COMPLETE: Final = 0

_HEADER: Final = struct.Struct(">BBHHBx")
_BEGIN: Final = struct.Struct(">HB5x")
_END: Final = struct.Struct(">IB3x")
_PROTOCOL_STATUS: Final = {1: "cannot multiplex connections", 2: "overloaded", 3: "unknown role"}


class FastCgiError(Exception):
    """The FastCGI server broke the protocol or refused the request."""


class FastCgiUnavailableError(FastCgiError):
    """The FastCGI server cannot be reached."""


@dataclass
class FastCgiResponse:
    stdout: bytes
    stderr: bytes
    app_status: int


def _record(kind: int, content: bytes | memoryview) -> bytes:
    padding = -len(content) % 8
    return _HEADER.pack(VERSION, kind, REQUEST_ID, len(content), padding) + content + bytes(padding)


def _stream(kind: int, data: bytes) -> list[bytes]:
    """``data`` as records of ``kind``, closed by an empty one."""
    view = memoryview(data)
    out = [_record(kind, view[i : i + MAX_CONTENT]) for i in range(0, len(data), MAX_CONTENT)]
    out.append(_record(kind, b""))
    return out


def _length(n: int) -> bytes:
    return bytes((n,)) if n < 0x80 else struct.pack(">I", n | 0x80000000)


def encode_params(params: dict[str, str]) -> bytes:
    """Name-value pairs as FastCGI encodes them (UTF-8; surrogate escapes kept as bytes)."""
    out = bytearray()
    for name, value in params.items():
        n = name.encode("utf-8", "surrogateescape")
        v = value.encode("utf-8", "surrogateescape")
        out += _length(len(n))
        out += _length(len(v))
        out += n
        out += v
    return bytes(out)


def encode_request(params: dict[str, str], stdin: bytes = b"", *, keep_conn: bool = False) -> bytes:
    """Every record of one responder request."""
    parts = [_record(BEGIN_REQUEST, _BEGIN.pack(RESPONDER, 1 if keep_conn else 0))]
    parts += _stream(PARAMS, encode_params(params))
    parts += _stream(STDIN, stdin)
    return b"".join(parts)


@dataclass
class ResponseReader:
    """Feed the server's bytes; :attr:`done` once ``END_REQUEST`` arrived."""

    max_size: int = 10 * 1024 * 1024
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    app_status: int = 0
    done: bool = False
    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        while not self.done and len(buf) >= _HEADER.size:
            version, kind, rid, length, padding = _HEADER.unpack_from(buf)
            if version != VERSION:
                raise FastCgiError(f"FastCGI record of version {version}")
            end = _HEADER.size + length + padding
            if len(buf) < end:
                break
            content = bytes(buf[_HEADER.size : _HEADER.size + length])
            del buf[:end]
            if rid != REQUEST_ID:
                continue
            if kind == STDOUT:
                self.stdout += content
            elif kind == STDERR:
                self.stderr += content
            elif kind == END_REQUEST:
                if len(content) < _END.size:
                    raise FastCgiError("short FastCGI END_REQUEST record")
                self.app_status, status = _END.unpack_from(content)
                if status != REQUEST_COMPLETE:
                    reason = _PROTOCOL_STATUS.get(status, f"status {status}")
                    raise FastCgiError(f"FastCGI server refused the request: {reason}")
                self.done = True
            if len(self.stdout) + len(self.stderr) > self.max_size:
                raise FastCgiError(f"FastCGI response over {self.max_size} bytes")

    def response(self) -> FastCgiResponse:
        return FastCgiResponse(bytes(self.stdout), bytes(self.stderr), self.app_status)


async def request(
    host: str,
    port: int,
    params: dict[str, str],
    stdin: bytes = b"",
    *,
    timeout: float = 5.0,
    max_size: int = 10 * 1024 * 1024,
) -> FastCgiResponse:
    """One request on a new connection (``host`` may be ``unix:/path``). Raises
    :class:`FastCgiError` (unreachable, broken, refused) or :class:`TimeoutError`."""
    async with asyncio.timeout(timeout):
        try:
            if host.startswith("unix:"):
                reader, writer = await asyncio.open_unix_connection(
                    host[5:].removeprefix("//") or "/"
                )
            else:
                reader, writer = await asyncio.open_connection(host, port)
        except OSError as e:
            msg = f"cannot connect to FastCGI server {host}:{port}: {e}"
            raise FastCgiUnavailableError(msg) from e
        try:
            writer.write(encode_request(params, stdin))
            response = ResponseReader(max_size)
            while not response.done:
                data = await reader.read(65536)
                if not data:
                    raise FastCgiError("FastCGI server closed the connection before END_REQUEST")
                response.feed(data)
            return response.response()
        except OSError as e:
            raise FastCgiError(f"FastCGI connection failed: {e}") from e
        finally:
            writer.close()
