"""Incremental frame decoder: feed any chunking of a byte stream, get whole frames in order.

Motan2 and Motan v1 frames share the magic and are told apart by ``byte3 >> 3`` (spec 7.3).
Lengths are checked against the limit as soon as their field has arrived, before the
oversized part is buffered. After a :class:`~motanmesh.wire.errors.WireError` the stream is
not resynchronisable (the framing is lost) and the decoder refuses further input; the owner
closes the connection, as motan-go and Java do.
"""

from __future__ import annotations

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
    VERSION_V1,
    VERSION_V2,
    Frame,
    decode_metadata,
)
from motanmesh.wire.v1 import V1_HEADER_SIZE, V1Frame, parse_v1_frame

#: the fixed header (13 bytes) and the metadata length (4 bytes)
_HEAD_SIZE: Final = 17
_META_CACHE_SIZE: Final = 64
#: reads of a pending frame shorter than this are gathered in one buffer
_SMALL_READ: Final = 4096
#: default limits of one frame's metadata: its encoded size and its number of pairs
DEFAULT_MAX_METADATA_SIZE: Final = 1024 * 1024
DEFAULT_MAX_METADATA_ENTRIES: Final = 1024


class FrameDecoder:
    """Splits a byte stream into :class:`Frame` (Motan2) and :class:`V1Frame` objects.

    Written for mypyc (see ``setup.py``): the parser works on ``bytes`` and reads header
    fields byte by byte, which compiles to plain C reads; interpreted it behaves the same.
    """

    __slots__ = (
        "_broken",
        "_have",
        "_meta_cache",
        "_need",
        "_parts",
        "_tail",
        "max_content_length",
        "max_metadata_entries",
        "max_metadata_size",
        "strict_metadata",
    )

    def __init__(
        self,
        max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH,
        *,
        strict_metadata: bool = True,
        max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE,
        max_metadata_entries: int = DEFAULT_MAX_METADATA_ENTRIES,
    ) -> None:
        self.max_content_length = max_content_length
        self.strict_metadata = strict_metadata
        #: a Motan2 metadata section longer than this (and ``max_content_length``) is refused
        self.max_metadata_size = max_metadata_size
        #: a Motan2 metadata section with more pairs than this is refused
        self.max_metadata_entries = max_metadata_entries
        #: the bytes held for a frame that has not fully arrived, as they were read (joined
        #: once the frame is complete, so a large frame is copied once, not once per read)
        self._parts: list[bytes] = []
        #: small reads of that frame, gathered here so a peer sending a byte at a time costs
        #: a byte each, not a list entry each
        self._tail = bytearray()
        self._have = 0
        #: how many buffered bytes the pending frame needs before parsing can progress
        #: (0: unknown yet, parse on every feed)
        self._need = 0
        self._broken: WireError | None = None
        #: decoded metadata by its raw bytes: a connection tends to repeat the same metadata
        #: (same service, method, group), so most frames skip the split and pairing
        self._meta_cache: dict[bytes, dict[str, str]] = {}

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that has not fully arrived."""
        return self._have

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame | V1Frame]:
        """Add bytes; return every frame completed by them, in order.

        Raises a :class:`WireError` subclass on bad input. Frames completed before the bad
        bytes are not lost: they are attached to the error as ``error.frames``.
        """
        if self._broken is not None:
            raise FrameError(f"decoder stopped after an earlier error: {self._broken}")
        out: list[Frame | V1Frame] = []
        chunk = data if type(data) is bytes else bytes(data)
        if self._have:
            # a large frame arriving in pieces is gathered without re-parsing, then joined
            # once
            parts = self._parts
            have = self._have + len(chunk)
            if len(chunk) < _SMALL_READ:
                self._tail += chunk
            else:
                if self._tail:
                    parts.append(bytes(self._tail))
                    self._tail = bytearray()
                parts.append(chunk)
            if have < self._need:
                self._have = have
                return out
            if self._tail:
                parts.append(bytes(self._tail))
                self._tail = bytearray()
            buf = b"".join(parts)
            self._parts = []
            self._have = 0
        else:
            buf = chunk
        try:
            pos = self._parse(buf, out)
        except WireError as e:
            self._broken = e
            self._parts = []
            self._tail = bytearray()
            self._have = 0
            e.frames = tuple(out)
            raise
        if pos < len(buf):
            rest = buf[pos:] if pos else buf
            self._parts = [rest]
            self._have = len(rest)
        return out

    def _parse(self, buf: bytes, out: list[Frame | V1Frame]) -> int:
        """Append the whole frames in ``buf`` to ``out``; return where the rest begins."""
        n = len(buf)
        pos = 0
        limit = self.max_content_length
        meta_limit = min(limit, self.max_metadata_size)
        cache = self._meta_cache
        self._need = 0
        while True:
            avail = n - pos
            if avail < 4:
                if avail >= 2 and (buf[pos] != 0xF1 or buf[pos + 1] != 0xF1):
                    raise BadMagicError(buf[pos : pos + 2])
                if avail == 1 and buf[pos] != 0xF1:
                    raise BadMagicError(buf[pos : pos + 1])
                return pos
            if buf[pos] != 0xF1 or buf[pos + 1] != 0xF1:
                raise BadMagicError(buf[pos : pos + 2])
            vs = buf[pos + 3]
            version = vs >> 3
            if version == VERSION_V2:
                if avail < _HEAD_SIZE:
                    return pos
                mlen = (
                    (buf[pos + 13] << 24)
                    | (buf[pos + 14] << 16)
                    | (buf[pos + 15] << 8)
                    | buf[pos + 16]
                )
                if mlen > meta_limit:
                    raise FrameTooLargeError("metadata", mlen, meta_limit, _request_id(buf, pos))
                blen_at = pos + _HEAD_SIZE + mlen
                if n < blen_at + 4:
                    self._need = blen_at + 4 - pos
                    return pos
                blen = (
                    (buf[blen_at] << 24)
                    | (buf[blen_at + 1] << 16)
                    | (buf[blen_at + 2] << 8)
                    | buf[blen_at + 3]
                )
                if blen > limit:
                    raise FrameTooLargeError("body", blen, limit, _request_id(buf, pos))
                end = blen_at + 4 + blen
                if n < end:
                    self._need = end - pos
                    return pos
                if mlen:
                    raw_meta = buf[pos + _HEAD_SIZE : blen_at]
                    cached = cache.get(raw_meta)
                    if cached is not None:
                        meta = cached.copy()
                    else:
                        meta = self._metadata(raw_meta, buf, pos)
                else:
                    raw_meta = b""
                    meta = {}
                out.append(
                    Frame(
                        buf[pos + 2],
                        vs & 0x07,
                        buf[pos + 4] >> 3,
                        _request_id(buf, pos),
                        meta,
                        buf[blen_at + 4 : end],
                        VERSION_V2,
                        raw_meta,
                    )
                )
                pos = end
            elif version == VERSION_V1:
                if avail < V1_HEADER_SIZE:
                    return pos
                length = int.from_bytes(buf[pos + 12 : pos + 16], "big")
                if length < V1_HEADER_SIZE or length > limit:
                    if length > limit:
                        rid = int.from_bytes(buf[pos + 4 : pos + 12], "big")
                        raise FrameTooLargeError("v1 message", length, limit, rid)
                    raise V1Error(f"v1 length {length} is below the inner header size")
                end = pos + V1_HEADER_SIZE + length
                if n < end:
                    self._need = end - pos
                    return pos
                out.append(parse_v1_frame(buf[pos:end]))
                pos = end
            else:
                raise UnsupportedVersionError(version)

    def _metadata(self, raw_meta: bytes, buf: bytes, pos: int) -> dict[str, str]:
        """Decode a metadata section not seen lately (of the frame at ``buf[pos]``), and
        remember it."""
        entries = (raw_meta.count(b"\n") + 2) >> 1
        if entries > self.max_metadata_entries:
            raise FrameTooLargeError(
                "metadata entries", entries, self.max_metadata_entries, _request_id(buf, pos)
            )
        fields = raw_meta.decode("utf-8", "surrogateescape").split("\n")
        keys = fields[::2]
        if len(fields) & 1 or "" in keys:
            meta = decode_metadata(raw_meta, strict=self.strict_metadata)
        else:
            meta = dict(zip(keys, fields[1::2]))  # noqa: B905 - even length
        cache = self._meta_cache
        if len(cache) >= _META_CACHE_SIZE:
            cache.clear()
        cache[raw_meta] = meta.copy()
        return meta


def _request_id(buf: bytes, pos: int) -> int:
    """The request id of the Motan2 frame at ``pos`` (header bytes 5-12)."""
    # two 32-bit halves: compiled, each stays a machine integer until the final combination
    high = (buf[pos + 5] << 24) | (buf[pos + 6] << 16) | (buf[pos + 7] << 8) | buf[pos + 8]
    low = (buf[pos + 9] << 24) | (buf[pos + 10] << 16) | (buf[pos + 11] << 8) | buf[pos + 12]
    return (high << 32) | low
