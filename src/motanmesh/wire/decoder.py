"""Incremental frame decoder: feed any chunking of a byte stream, get whole frames in order.

Motan2 and Motan v1 frames share the magic and are told apart by ``byte3 >> 3`` (spec 7.3).
Lengths are checked against the limit as soon as their field has arrived, before the
oversized part is buffered. After a :class:`~motanmesh.wire.errors.WireError` the stream is
not resynchronisable (the framing is lost) and the decoder refuses further input; the owner
closes the connection, as motan-go and Java do.
"""

from __future__ import annotations

import struct
from typing import Final

from motanmesh.wire.errors import (
    BadMagicError,
    FrameError,
    FrameTooLargeError,
    UnsupportedVersionError,
    V1Error,
    WireError,
)
from motanmesh.wire.frame import (
    DEFAULT_MAX_CONTENT_LENGTH,
    HEAD,
    VERSION_V1,
    VERSION_V2,
    Frame,
    decode_metadata,
)
from motanmesh.wire.v1 import V1_HEADER_SIZE, V1Frame, parse_v1_frame

_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")
_HEAD_SIZE: Final = HEAD.size  # 17: fixed header + metadata length
_META_CACHE_SIZE: Final = 64


class FrameDecoder:
    """Splits a byte stream into :class:`Frame` (Motan2) and :class:`V1Frame` objects."""

    __slots__ = ("_broken", "_buf", "_meta_cache", "max_content_length", "strict_metadata")

    def __init__(
        self,
        max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH,
        *,
        strict_metadata: bool = True,
    ) -> None:
        self.max_content_length = max_content_length
        self.strict_metadata = strict_metadata
        self._buf = bytearray()
        self._broken: WireError | None = None
        #: decoded metadata by its raw bytes: a connection tends to repeat the same metadata
        #: (same service, method, group), so most frames skip the split and pairing
        self._meta_cache: dict[bytes, dict[str, str]] = {}

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that has not fully arrived."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame | V1Frame]:
        """Add bytes; return every frame completed by them, in order.

        Raises a :class:`WireError` subclass on bad input. Frames completed before the bad
        bytes are not lost: they are attached to the error as ``error.frames``.
        """
        if self._broken is not None:
            raise FrameError(f"decoder stopped after an earlier error: {self._broken}")
        if self._buf:
            self._buf += data
            buf: bytes | bytearray | memoryview = self._buf
        else:
            buf = data
        out: list[Frame | V1Frame] = []
        try:
            pos = self._parse(buf, out)
        except WireError as e:
            self._broken = e
            self._buf = bytearray()
            e.frames = tuple(out)
            raise
        if buf is self._buf:
            if pos:
                del self._buf[:pos]
        elif pos < len(buf):
            self._buf = bytearray(buf[pos:])
        return out

    def _parse(self, buf: bytes | bytearray | memoryview, out: list[Frame | V1Frame]) -> int:
        n = len(buf)
        pos = 0
        limit = self.max_content_length
        strict = self.strict_metadata
        cache = self._meta_cache
        # slices of bytes are bytes (one copy); a buffered bytearray is sliced through a view
        # so that each part is copied once, not twice
        data = buf if type(buf) is bytes else memoryview(buf)
        while True:
            avail = n - pos
            if avail < 4:
                if avail >= 2 and (buf[pos] != 0xF1 or buf[pos + 1] != 0xF1):
                    raise BadMagicError(bytes(buf[pos : pos + 2]))
                if avail == 1 and buf[pos] != 0xF1:
                    raise BadMagicError(bytes(buf[pos : pos + 1]))
                return pos
            if buf[pos] != 0xF1 or buf[pos + 1] != 0xF1:
                raise BadMagicError(bytes(buf[pos : pos + 2]))
            version = buf[pos + 3] >> 3
            if version == VERSION_V2:
                if avail < _HEAD_SIZE:
                    return pos
                _magic, flags, vs, ser, rid, mlen = HEAD.unpack_from(buf, pos)
                if mlen > limit:
                    raise FrameTooLargeError("metadata", mlen, limit, rid)
                blen_at = pos + _HEAD_SIZE + mlen
                if n < blen_at + 4:
                    return pos
                (blen,) = _U32.unpack_from(buf, blen_at)
                if blen > limit:
                    raise FrameTooLargeError("body", blen, limit, rid)
                end = blen_at + 4 + blen
                if n < end:
                    return pos
                if mlen:
                    raw_meta = bytes(data[pos + 17 : blen_at])
                    cached = cache.get(raw_meta)
                    if cached is not None:
                        meta = cached.copy()
                    else:
                        fields = raw_meta.decode("utf-8", "surrogateescape").split("\n")
                        keys = fields[::2]
                        if len(fields) & 1 or "" in keys:
                            meta = decode_metadata(raw_meta, strict=strict)
                        else:
                            meta = dict(zip(keys, fields[1::2]))  # noqa: B905 - even length
                        if len(cache) >= _META_CACHE_SIZE:
                            cache.clear()
                        cache[raw_meta] = meta.copy()
                else:
                    raw_meta = b""
                    meta = {}
                out.append(
                    Frame(
                        flags,
                        vs & 0x07,
                        ser >> 3,
                        rid,
                        meta,
                        bytes(data[blen_at + 4 : end]),
                        VERSION_V2,
                        raw_meta,
                    )
                )
                pos = end
            elif version == VERSION_V1:
                if avail < V1_HEADER_SIZE:
                    return pos
                (length,) = _U32.unpack_from(buf, pos + 12)
                if length < V1_HEADER_SIZE or length > limit:
                    rid = _U64.unpack_from(buf, pos + 4)[0]
                    if length > limit:
                        raise FrameTooLargeError("v1 message", length, limit, rid)
                    raise V1Error(f"v1 length {length} is below the inner header size")
                end = pos + V1_HEADER_SIZE + length
                if n < end:
                    return pos
                out.append(parse_v1_frame(bytes(data[pos:end])))
                pos = end
            else:
                raise UnsupportedVersionError(version)
