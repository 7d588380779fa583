"""The agent's hot path: forward a frame without touching its body.

:func:`forward` re-uses the metadata bytes as they arrived and only appends the keys that
are new; it re-encodes the metadata only when an existing key changes value (for example
``M_g`` rewritten to the chosen endpoint's group). The body is copied once, into the output.
:func:`forward_into` leaves a large body uncopied: it hands out the header and the body as
two pieces for a vectored write.
"""

from __future__ import annotations

import struct
from typing import Final, Protocol

from motanmesh.wire.frame import HEAD, MAGIC, Frame, encode_metadata

_U32: Final = struct.Struct(">I")
_pack_head = HEAD.pack
_pack_u32 = _U32.pack
#: bodies from this size on are written as a piece of their own by :func:`forward_into`
SPLIT_BODY: Final = 16 * 1024


class Responds(Protocol):
    """Where :func:`respond_forwarded` writes (a server connection)."""

    def respond(self, data: bytes, /) -> None: ...

    def respond_pieces(self, pieces: list[bytes], /) -> None: ...


def forward(
    frame: Frame,
    request_id: int,
    changes: dict[str, str] | None = None,
    *,
    set_flags: int = 0,
    clear_flags: int = 0,
) -> bytes:
    """The bytes of ``frame`` with a new request id, flag bits set/cleared, and metadata
    ``changes`` applied (new keys are appended; changed keys re-encode the section).

    Edits made to ``frame.metadata`` after decoding are not seen: pass them as ``changes``.
    Empty values in ``changes`` are skipped, as the encoder always does.
    """
    raw, extra = _metadata(frame, changes)
    body = frame.body
    return b"".join(
        (
            _head(frame, request_id, len(raw) + len(extra), set_flags, clear_flags),
            raw,
            extra,
            _pack_u32(len(body)),
            body,
        )
    )


def forward_into(
    out: list[bytes],
    frame: Frame,
    request_id: int,
    changes: dict[str, str] | None = None,
    *,
    set_flags: int = 0,
    clear_flags: int = 0,
) -> None:
    """Append the bytes :func:`forward` makes to ``out``: one piece, or, for a body of
    :data:`SPLIT_BODY` bytes and more, the header with the metadata and then the body
    itself, not copied."""
    body = frame.body
    if len(body) < SPLIT_BODY:
        out.append(
            forward(frame, request_id, changes, set_flags=set_flags, clear_flags=clear_flags)
        )
        return
    raw, extra = _metadata(frame, changes)
    out.append(
        b"".join(
            (
                _head(frame, request_id, len(raw) + len(extra), set_flags, clear_flags),
                raw,
                extra,
                _pack_u32(len(body)),
            )
        )
    )
    out.append(body)


def respond_forwarded(
    conn: Responds, frame: Frame, request_id: int, changes: dict[str, str] | None, set_flags: int
) -> None:
    """Write :func:`forward`'s bytes with ``conn.respond``, or, for a body of
    :data:`SPLIT_BODY` bytes and more, the header and the body as two pieces with
    ``conn.respond_pieces`` (the body not copied)."""
    if len(frame.body) < SPLIT_BODY:
        conn.respond(forward(frame, request_id, changes, set_flags=set_flags))
        return
    pieces: list[bytes] = []
    forward_into(pieces, frame, request_id, changes, set_flags=set_flags)
    conn.respond_pieces(pieces)


def _head(frame: Frame, request_id: int, mlen: int, set_flags: int, clear_flags: int) -> bytes:
    """The fixed header of ``frame`` forwarded as ``request_id`` with ``mlen`` bytes of
    metadata."""
    return _pack_head(
        MAGIC,
        ((frame.flags | set_flags) & ~clear_flags) & 0x1F,
        (frame.version << 3) | frame.status,
        frame.serialization << 3,
        request_id,
        mlen,
    )


def _metadata(frame: Frame, changes: dict[str, str] | None) -> tuple[bytes, bytes]:
    """The metadata section of the forwarded frame: the bytes as they arrived (or as
    re-encoded) and the pairs appended to them."""
    raw = frame.raw_metadata
    extra = b""
    if not raw and frame.metadata:  # a locally built frame: encode its metadata with changes
        merged = dict(frame.metadata)
        if changes:
            merged.update(changes)
        raw = encode_metadata(merged)
    elif changes:
        current = frame.metadata
        added = ""  # "\nkey\nvalue" for each new pair
        replaced = False
        for k, v in changes.items():
            old = current.get(k)
            if old is None:
                if k and v and "\n" not in k and "\n" not in v:
                    added = f"{added}\n{k}\n{v}"
            elif old != v:
                replaced = True
                break
        if replaced or (added and raw and not raw.count(b"\n") & 1):
            # A value changes, or the bytes as they arrived are not clean pairs (a trailing LF
            # after the last value, an unpaired key dropped by lenient decoding): appending
            # would shift the pairing, so encode the merged metadata.
            merged = dict(current)
            merged.update(changes)
            raw = encode_metadata(merged)
        elif added:
            extra = (added if raw else added[1:]).encode("utf-8", "surrogateescape")
    return raw, extra
