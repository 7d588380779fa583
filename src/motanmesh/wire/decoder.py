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
#: a Motan2 frame with at least this many bytes still to come is read into a buffer of its
#: own size (see :meth:`FrameDecoder.get_buffer`) instead of gathered from reads ...
LARGE_FRAME: Final = 32 * 1024
#: ... once at least this fraction (1/N) of it has arrived: a peer that announces a large
#: frame and sends little of it makes the decoder hold at most N times what it sent
FRAME_BUFFER_RATIO: Final = 8
#: the size of a read buffer shared by the decoders of one event loop
READ_BUFFER_SIZE: Final = 256 * 1024
#: default limits of one frame's metadata: its encoded size and its number of pairs
DEFAULT_MAX_METADATA_SIZE: Final = 1024 * 1024
DEFAULT_MAX_METADATA_ENTRIES: Final = 1024


class FrameDecoder:
    """Splits a byte stream into :class:`Frame` (Motan2) and :class:`V1Frame` objects.

    Written for mypyc (see ``setup.py``): the parser works on ``bytes`` and reads header
    fields byte by byte, which compiles to plain C reads; interpreted it behaves the same.
    """

    __slots__ = (
        "_big",
        "_big_have",
        "_big_view",
        "_broken",
        "_frame_size",
        "_have",
        "_meta_cache",
        "_need",
        "_parts",
        "_read_view",
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
        #: the whole size of the pending Motan2 frame once its header says it (0: not known)
        self._frame_size = 0
        #: a large frame being read into a buffer of its own size (see :meth:`get_buffer`),
        #: a view of it, and how many of its bytes have arrived
        self._big: bytearray | None = None
        self._big_view: memoryview | None = None
        self._big_have = 0
        #: where reads between large frames go (:meth:`use_read_buffer`)
        self._read_view: memoryview | None = None
        self._broken: WireError | None = None
        #: decoded metadata by its raw bytes: a connection tends to repeat the same metadata
        #: (same service, method, group), so most frames skip the split and pairing
        self._meta_cache: dict[bytes, dict[str, str]] = {}

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that has not fully arrived."""
        return self._have + self._big_have

    # ------------------------------------------------------------------ buffered reads

    def use_read_buffer(self, buffer: bytearray) -> None:
        """Read through :meth:`get_buffer` / :meth:`buffer_updated` into ``buffer`` (which
        may be shared by every decoder of one thread: nothing refers to it once
        :meth:`buffer_updated` has returned)."""
        self._read_view = memoryview(buffer)

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next read goes (``asyncio.BufferedProtocol.get_buffer``, whose size
        hint is not needed): the rest of a large frame's own buffer, else the shared read
        buffer."""
        big = self._big_view
        if big is not None:
            return big[self._big_have :]
        view = self._read_view
        if view is None:
            view = self._read_view = memoryview(bytearray(READ_BUFFER_SIZE))
        return view

    def buffer_updated(self, nbytes: int) -> list[Frame | V1Frame]:
        """``nbytes`` were read into the last :meth:`get_buffer`; return the frames they
        complete (errors as for :meth:`feed`).

        Reads into the shared buffer are copied out (a ``bytes`` per read, as a plain
        protocol gets them). Once a Motan2 frame is known to need :data:`LARGE_FRAME` bytes
        more, and at least 1/:data:`FRAME_BUFFER_RATIO` of it has arrived, the decoder
        allocates a buffer of the frame's size and later reads fill it in place; its body
        becomes a ``bytes`` in one copy and the buffer is dropped.
        """
        big = self._big
        if big is not None:
            have = self._big_have + nbytes
            if have < len(big):
                self._big_have = have
                return []
            self._big = None
            self._big_view = None
            self._big_have = 0
            return [self._large_frame(memoryview(big))]
        view = self._read_view
        assert view is not None
        if nbytes >= LARGE_FRAME and not self._have and self._broken is None:
            # a read that begins with a large frame: its body is copied out of the read
            # buffer once, not copied with the read and then sliced
            size = self._large_frame_size(view, nbytes)
            if size > nbytes:
                if nbytes * FRAME_BUFFER_RATIO >= size:
                    self._to_own_buffer(size, view[:nbytes])
                    return []
            elif size:
                frame = self._large_frame(view[:size])
                if size == nbytes:
                    return [frame]
                try:
                    out = self.feed(bytes(view[size:nbytes]))
                except WireError as e:
                    e.frames = (frame, *e.frames)
                    raise
                out.insert(0, frame)
                return self._held_large(out)
        return self._held_large(self.feed(bytes(view[:nbytes])))

    def _held_large(self, out: list[Frame | V1Frame]) -> list[Frame | V1Frame]:
        """Move a large pending frame to a buffer of its own; return ``out``."""
        size = self._frame_size
        have = self._have
        if size and size - have >= LARGE_FRAME and have * FRAME_BUFFER_RATIO >= size:
            self._to_own_buffer(size, None)
        return out

    def _large_frame_size(self, view: memoryview, n: int) -> int:
        """The size of the Motan2 frame at the start of ``view[:n]`` when it is at least
        :data:`LARGE_FRAME` and its lengths are known and within the limits; else 0 (the
        read is then decoded as any other, which reports what is wrong)."""
        if n < _HEAD_SIZE + 4 or view[0] != 0xF1 or view[1] != 0xF1:
            return 0
        if view[3] >> 3 != VERSION_V2:
            return 0
        mlen = (view[13] << 24) | (view[14] << 16) | (view[15] << 8) | view[16]
        if mlen > min(self.max_content_length, self.max_metadata_size):
            return 0
        blen_at = _HEAD_SIZE + mlen
        if n < blen_at + 4:
            return 0
        blen = (
            (view[blen_at] << 24)
            | (view[blen_at + 1] << 16)
            | (view[blen_at + 2] << 8)
            | view[blen_at + 3]
        )
        if blen > self.max_content_length:
            return 0
        size = blen_at + 4 + blen
        return size if size >= LARGE_FRAME else 0

    def _to_own_buffer(self, size: int, start: memoryview | None) -> None:
        """Move the bytes held for the pending frame (or ``start``, its first bytes) into a
        buffer of the frame's size."""
        big = bytearray(size)
        view = memoryview(big)  # assigning to a slice of it copies once (a bytearray's
        at = 0  # slice assignment from bytes makes a bytearray of them first)
        if start is not None:
            at = len(start)
            view[:at] = start
        for part in self._parts:
            end = at + len(part)
            view[at:end] = part
            at = end
        tail = self._tail
        if tail:
            end = at + len(tail)
            view[at:end] = tail
            at = end
            self._tail = bytearray()
        self._parts = []
        self._have = 0
        self._need = 0
        self._frame_size = 0
        self._big = big
        self._big_view = view
        self._big_have = at

    def _large_frame(self, view: memoryview) -> Frame:
        """The Motan2 frame filling ``view`` (its lengths were checked); a metadata error
        stops the decoder as in :meth:`feed`."""
        mlen = (view[13] << 24) | (view[14] << 16) | (view[15] << 8) | view[16]
        body_at = _HEAD_SIZE + mlen + 4
        head = bytes(view[:body_at])
        if mlen:
            raw_meta = head[_HEAD_SIZE : body_at - 4]
            cached = self._meta_cache.get(raw_meta)
            if cached is not None:
                meta = cached.copy()
            else:
                try:
                    meta = self._metadata(raw_meta, head, 0)
                except WireError as e:
                    self._broken = e
                    e.frames = ()
                    raise
        else:
            raw_meta = b""
            meta = {}
        vs = head[3]
        return Frame(
            head[2],
            vs & 0x07,
            head[4] >> 3,
            _request_id(head, 0),
            meta,
            bytes(view[body_at:]),
            VERSION_V2,
            raw_meta,
        )

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
        self._frame_size = 0
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
                    self._need = self._frame_size = end - pos
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
