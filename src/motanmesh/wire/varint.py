"""Base-128 varints and zigzag, shared by the simple and breeze serializations (spec 4.2)."""

from __future__ import annotations

from motanmesh.wire.errors import SerializationError

_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF
MAX_VARINT_BYTES = 10


def encode_uvarint(value: int) -> bytes:
    """Encode a non-negative integer (< 2**64) as a varint."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_uvarint(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """Read a varint at ``pos``; return ``(value, new_pos)``.

    Refuses varints longer than 10 bytes and ones cut off by the end of ``data``.
    """
    result = 0
    shift = 0
    end = len(data)
    start = pos
    while True:
        if pos >= end:
            raise SerializationError("truncated varint", start)
        if pos - start >= MAX_VARINT_BYTES:
            raise SerializationError("varint longer than 10 bytes (integer overflow)", start)
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _MASK64, pos
        shift += 7


def zigzag32(n: int) -> int:
    """Zigzag a signed 32-bit value to the unsigned 32-bit form (motan-go width)."""
    return ((n << 1) ^ (n >> 31)) & _MASK32


def zigzag64(n: int) -> int:
    return ((n << 1) ^ (n >> 63)) & _MASK64


def unzigzag32(u: int) -> int:
    """Undo zigzag, keeping the low 32 bits (accepts Java's 10-byte form)."""
    u &= _MASK32
    return (u >> 1) ^ -(u & 1)


def unzigzag64(u: int) -> int:
    u &= _MASK64
    return (u >> 1) ^ -(u & 1)
