"""The Motan "simple" serialization (id 6, spec section 4).

Writing follows motan-go, by Python type:

* ``None`` → null (0), ``str`` → string (1), ``bytes``/``bytearray``/``memoryview`` → bytes (3),
  ``bool`` → bool (5), :class:`Byte` → byte (6), :class:`Int16` → int16 (7),
  :class:`Int32` → int32 (8, the 5-byte zigzag form), ``int`` → int64 (9),
  :class:`Float32` → float32 (10), ``float`` → float64 (11);
* ``list``/``tuple``: a non-empty sequence of ``str`` only → string array (4), anything else
  (including an empty sequence) → array (21);
* ``dict``: non-empty with only ``str`` keys and ``str`` values → string map (2), anything else
  (including ``{}``) → map (20).

Anything else, integers outside their wire range and nesting deeper than :data:`MAX_DEPTH`
raise :class:`SerializationError`. :class:`Byte` accepts -128..255 and is read back unsigned.

Reading accepts what motan-go, Java and PHP write: int32 varints of up to 10 bytes (truncated
to 32 bits), any bool byte other than ``01`` as false, and a string (1) that is not valid UTF-8,
which plain decoding returns as ``bytes`` (the typed tree keeps ``Typed("string", <bytes>)``).
Empty containers come back empty (motan-go gives nil). Plain decoding turns list and dict keys
of a map (20) into tuples (a dict key becomes a tuple of ``(key, value)`` pairs), the same as
:func:`motanmesh.wire.values.to_plain`, so ``decode(b) == to_plain(decode_typed(b)[0])``; a
repeated key keeps its last value, while the typed tree keeps every entry in wire order.
:meth:`SimpleSerialization.decode` reads exactly one value and refuses trailing bytes.

The typed tree is lossless for canonical bodies: ``encode_typed(decode_typed(b)) == b``.
Non-canonical input is normalised when re-encoded: over-long varints (among them Java's 10-byte
int32 form) are written in the shortest (5-byte at most for int32) form, and a bool byte other
than ``00``/``01`` is written as ``00``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from math import isnan
from typing import Any, Final

from motanmesh.wire.errors import SerializationError
from motanmesh.wire.values import Byte, Float32, Int16, Int32, Typed
from motanmesh.wire.varint import decode_uvarint, unzigzag32, unzigzag64

NULL: Final = 0
STRING: Final = 1
STRING_MAP: Final = 2
BYTES: Final = 3
STRING_ARRAY: Final = 4
BOOL: Final = 5
BYTE: Final = 6
INT16: Final = 7
INT32: Final = 8
INT64: Final = 9
FLOAT32: Final = 10
FLOAT64: Final = 11
MAP: Final = 20
ARRAY: Final = 21

#: containers (2, 4, 20, 21) nested deeper than this are refused, on both sides
MAX_DEPTH: Final = 100

_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")
_I16: Final = struct.Struct(">h")
_F32: Final = struct.Struct(">f")
_F64: Final = struct.Struct(">d")
_TYPE_LEN: Final = struct.Struct(">BI")
_TYPE_I16: Final = struct.Struct(">Bh")
_TYPE_F64: Final = struct.Struct(">Bd")
_I64_MIN: Final = -(1 << 63)
_I64_MAX: Final = (1 << 63) - 1
_I32_MIN: Final = -(1 << 31)
_I32_MAX: Final = (1 << 31) - 1
_SMALL_INT64: Final = tuple(bytes((INT64, u)) for u in range(0x80))
_SMALL_INT32: Final = tuple(bytes((INT32, u)) for u in range(0x80))
_EMPTY_HEAD: Final = b"\x00\x00\x00\x00"


# ---------------------------------------------------------------------------------------------
# float32 NaNs: keep every payload bit (the platform's float/double conversion may quiet them)


def _f32_bits(value: float) -> int:
    bits: int = _U64.unpack(_F64.pack(value))[0]
    mantissa = (bits >> 29) & 0x7FFFFF
    return ((bits >> 32) & 0x80000000) | 0x7F800000 | (mantissa or 0x400000)


def _f32_nan(bits: int) -> float:
    double = ((bits & 0x80000000) << 32) | 0x7FF0000000000000 | ((bits & 0x7FFFFF) << 29)
    return float(_F64.unpack(_U64.pack(double))[0])


def _pack_f32(value: float) -> bytes:
    if isnan(value):
        return _TYPE_LEN.pack(FLOAT32, _f32_bits(value))
    return b"\x0a" + _F32.pack(value)


def _unpack_f32(buf: bytes, pos: int) -> float:
    (value,) = _F32.unpack_from(buf, pos)
    if isnan(value):
        return _f32_nan(_U32.unpack_from(buf, pos)[0])
    return float(value)


# ---------------------------------------------------------------------------------------------
# writing plain values


def _put_uvarint(out: bytearray, u: int) -> None:
    """Append a varint in place (the hot-path twin of :func:`varint.encode_uvarint`)."""
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)


def _write(out: bytearray, value: Any, depth: int) -> None:
    cls = type(value)
    if cls is str:
        data = value.encode()
        out += _TYPE_LEN.pack(STRING, len(data))
        out += data
    elif cls is int:
        if not _I64_MIN <= value <= _I64_MAX:
            raise SerializationError(f"int {value} out of the int64 range")
        u = (value << 1) ^ (value >> 63)
        if u < 0x80:
            out += _SMALL_INT64[u]
        else:
            out.append(INT64)
            _put_uvarint(out, u)
    elif value is None:
        out.append(NULL)
    elif cls is bool:
        out += b"\x05\x01" if value else b"\x05\x00"
    elif cls is dict:
        _write_dict(out, value, depth)
    elif cls is list or cls is tuple:
        _write_list(out, value, depth)
    elif cls is float:
        out += _TYPE_F64.pack(FLOAT64, value)
    elif cls is bytes:
        out += _TYPE_LEN.pack(BYTES, len(value))
        out += value
    else:
        _write_other(out, value, depth)


def _write_other(out: bytearray, value: Any, depth: int) -> None:
    if isinstance(value, bool):
        out += b"\x05\x01" if value else b"\x05\x00"
    elif isinstance(value, Byte):
        if not -0x80 <= value <= 0xFF:
            raise SerializationError(f"byte {int(value)} out of range")
        out.append(BYTE)
        out.append(value & 0xFF)
    elif isinstance(value, Int16):
        if not -0x8000 <= value <= 0x7FFF:
            raise SerializationError(f"int16 {int(value)} out of range")
        out += _TYPE_I16.pack(INT16, value)
    elif isinstance(value, Int32):
        _write_int32(out, int(value))
    elif isinstance(value, int):
        _write(out, int(value), depth)
    elif isinstance(value, Float32):
        out += _pack_f32(value)
    elif isinstance(value, float):
        out += _TYPE_F64.pack(FLOAT64, value)
    elif isinstance(value, str):
        _write(out, str(value), depth)
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        out += _TYPE_LEN.pack(BYTES, len(data))
        out += data
    elif isinstance(value, list | tuple):
        _write_list(out, value, depth)
    elif isinstance(value, dict):
        _write_dict(out, value, depth)
    else:
        raise SerializationError(f"not support type {type(value).__name__}")


def _write_int32(out: bytearray, value: int) -> None:
    if not _I32_MIN <= value <= _I32_MAX:
        raise SerializationError(f"int32 {value} out of range")
    u = (value << 1) ^ (value >> 31)
    if u < 0x80:
        out += _SMALL_INT32[u]
    else:
        out.append(INT32)
        _put_uvarint(out, u)


def _check_depth(depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise SerializationError(f"containers nested deeper than {MAX_DEPTH}")


def _write_list(out: bytearray, seq: Sequence[Any], depth: int) -> None:
    _check_depth(depth)
    start = len(out)
    if seq:  # optimistic string array; rewound at the first member that is not a str
        out.append(STRING_ARRAY)
        out += _EMPTY_HEAD
        for item in seq:
            if not isinstance(item, str):
                del out[start:]
                break
            data = item.encode()
            out += _U32.pack(len(data))
            out += data
        else:
            _U32.pack_into(out, start + 1, len(out) - start - 5)
            return
    out.append(ARRAY)
    out += _EMPTY_HEAD
    depth += 1
    for item in seq:
        _write(out, item, depth)
    _U32.pack_into(out, start + 1, len(out) - start - 5)


def _write_dict(out: bytearray, mapping: dict[Any, Any], depth: int) -> None:
    _check_depth(depth)
    start = len(out)
    if mapping:  # optimistic string map
        out.append(STRING_MAP)
        out += _EMPTY_HEAD
        for key, item in mapping.items():
            if not (isinstance(key, str) and isinstance(item, str)):
                del out[start:]
                break
            data = key.encode()
            out += _U32.pack(len(data))
            out += data
            data = item.encode()
            out += _U32.pack(len(data))
            out += data
        else:
            _U32.pack_into(out, start + 1, len(out) - start - 5)
            return
    out.append(MAP)
    out += _EMPTY_HEAD
    depth += 1
    for key, item in mapping.items():
        _write(out, key, depth)
        _write(out, item, depth)
    _U32.pack_into(out, start + 1, len(out) - start - 5)


# ---------------------------------------------------------------------------------------------
# writing typed trees


def _string_bytes(node: Any) -> bytes:
    if not isinstance(node, Typed) or node.t != "string":
        raise SerializationError(f"string container member must be Typed('string'), got {node!r}")
    v = node.v
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, bytes | bytearray):
        return bytes(v)
    raise SerializationError(f"Typed('string') holds {type(v).__name__}")


def _int_of(node: Typed) -> int:
    v = node.v
    if not isinstance(v, int) or isinstance(v, bool):
        raise SerializationError(f"Typed({node.t!r}) holds {type(v).__name__}, not int")
    return int(v)


def _write_typed(out: bytearray, node: Any, depth: int) -> None:
    if not isinstance(node, Typed):
        raise SerializationError(f"not a Typed value: {node!r}")
    t = node.t
    v = node.v
    if t == "string":
        data = _string_bytes(node)
        out += _TYPE_LEN.pack(STRING, len(data))
        out += data
    elif t == "int64":
        _write(out, _int_of(node), depth)
    elif t == "null":
        out.append(NULL)
    elif t == "bool":
        if not isinstance(v, bool):
            raise SerializationError(f"Typed('bool') holds {type(v).__name__}")
        out += b"\x05\x01" if v else b"\x05\x00"
    elif t in ("string_map", "map", "string_array", "array"):
        _write_typed_container(out, t, v, depth)
    elif t == "int32":
        _write_int32(out, _int_of(node))
    elif t == "int16":
        _write_other(out, Int16(_int_of(node)), depth)
    elif t == "byte":
        _write_other(out, Byte(_int_of(node)), depth)
    elif t in ("float64", "float32"):
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise SerializationError(f"Typed({t!r}) holds {type(v).__name__}")
        if t == "float64":
            out += _TYPE_F64.pack(FLOAT64, float(v))
        else:
            out += _pack_f32(float(v))
    elif t == "bytes":
        if not isinstance(v, bytes | bytearray):
            raise SerializationError(f"Typed('bytes') holds {type(v).__name__}")
        out += _TYPE_LEN.pack(BYTES, len(v))
        out += v
    else:
        raise SerializationError(f"not support type {t!r}")


def _write_typed_container(out: bytearray, t: str, v: Any, depth: int) -> None:
    _check_depth(depth)
    if not isinstance(v, list | tuple):
        raise SerializationError(f"Typed({t!r}) must hold a tuple, got {type(v).__name__}")
    start = len(out)
    depth += 1
    if t == "string_array":
        out.append(STRING_ARRAY)
        out += _EMPTY_HEAD
        for item in v:
            data = _string_bytes(item)
            out += _U32.pack(len(data))
            out += data
    elif t == "array":
        out.append(ARRAY)
        out += _EMPTY_HEAD
        for item in v:
            _write_typed(out, item, depth)
    else:
        string_map = t == "string_map"
        out.append(STRING_MAP if string_map else MAP)
        out += _EMPTY_HEAD
        for pair in v:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise SerializationError(f"Typed({t!r}) entries must be (key, value) pairs")
            if string_map:
                for item in pair:
                    data = _string_bytes(item)
                    out += _U32.pack(len(data))
                    out += data
            else:
                _write_typed(out, pair[0], depth)
                _write_typed(out, pair[1], depth)
    _U32.pack_into(out, start + 1, len(out) - start - 5)


# ---------------------------------------------------------------------------------------------
# reading


def _short(what: str, pos: int) -> SerializationError:
    return SerializationError(f"truncated {what}", pos)


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(x) for x in key)
    if isinstance(key, dict):
        return tuple((k, _hashable(x)) for k, x in key.items())
    return key


def _strings(buf: bytes, pos: int, end: int, stop: int) -> tuple[list[str | bytes], int]:
    """The untyped strings of a string map (2) or string array (4), up to ``stop``."""
    items: list[str | bytes] = []
    append = items.append
    while pos < stop:
        if pos + 4 > end:
            raise _short("length", pos)
        nxt = pos + 4 + _U32.unpack_from(buf, pos)[0]
        if nxt > end:
            raise _short("string", pos)
        raw = buf[pos + 4 : nxt]
        try:
            append(raw.decode())
        except UnicodeDecodeError:
            append(raw)
        pos = nxt
    if pos != stop:
        raise SerializationError("wrong map/array size", pos)
    return items, pos


def _container(buf: bytes, pos: int, end: int, depth: int) -> int:
    """Check the depth and the byte length at ``pos``; return where the container ends."""
    if depth >= MAX_DEPTH:
        raise SerializationError(f"containers nested deeper than {MAX_DEPTH}", pos - 1)
    if pos + 4 > end:
        raise _short("length", pos)
    stop: int = pos + 4 + _U32.unpack_from(buf, pos)[0]
    if stop > end:
        raise _short("container", pos)
    return stop


def _string_map_items(items: list[Any], pos: int) -> None:
    if len(items) % 2:
        raise SerializationError("wrong map/array size: string map key without value", pos)


def _read(buf: bytes, pos: int, end: int, depth: int) -> tuple[Any, int]:
    """Read one plain value at ``pos`` (< ``end``); return it and the position after it."""
    code = buf[pos]
    pos += 1
    if code in (1, 3):  # string, bytes
        if pos + 4 > end:
            raise _short("length", pos)
        stop = pos + 4 + _U32.unpack_from(buf, pos)[0]
        if stop > end:
            raise _short("string" if code == STRING else "bytes", pos)
        raw = buf[pos + 4 : stop]
        if code == BYTES:
            return raw, stop
        try:
            return raw.decode(), stop
        except UnicodeDecodeError:
            return raw, stop
    if code in (9, 8):  # int64, int32
        if pos >= end:
            raise _short("varint", pos)
        u = buf[pos]
        if u < 0x80:
            value = (u >> 1) ^ -(u & 1)
            return (value if code == INT64 else Int32(value)), pos + 1
        if pos + 1 < end and buf[pos + 1] < 0x80:  # two bytes, the next most common form
            u = (u & 0x7F) | (buf[pos + 1] << 7)
            value = (u >> 1) ^ -(u & 1)
            return (value if code == INT64 else Int32(value)), pos + 2
        u, pos = decode_uvarint(buf, pos)
        if code == INT64:
            return unzigzag64(u), pos
        return Int32(unzigzag32(u)), pos
    if code == NULL:
        return None, pos
    if code == BOOL:
        if pos >= end:
            raise _short("bool", pos)
        return buf[pos] == 1, pos + 1
    if code in (2, 4):  # string map, string array
        stop = _container(buf, pos, end, depth)
        items, pos = _strings(buf, pos + 4, end, stop)
        if code == STRING_ARRAY:
            return items, pos
        _string_map_items(items, pos)
        return dict(zip(items[::2], items[1::2], strict=True)), pos
    if code == ARRAY:
        stop = _container(buf, pos, end, depth)
        pos += 4
        depth += 1
        array: list[Any] = []
        append = array.append
        while pos < stop:
            item, pos = _read(buf, pos, end, depth)
            append(item)
        if pos != stop:
            raise SerializationError("wrong map/array size", pos)
        return array, pos
    if code == MAP:
        stop = _container(buf, pos, end, depth)
        pos += 4
        depth += 1
        mapping: dict[Any, Any] = {}
        while pos < stop:
            key, pos = _read(buf, pos, end, depth)
            if pos >= end:
                raise _short("map value", pos)
            item, pos = _read(buf, pos, end, depth)
            if isinstance(key, list | dict):
                key = _hashable(key)
            mapping[key] = item
        if pos != stop:
            raise SerializationError("wrong map/array size", pos)
        return mapping, pos
    if code == FLOAT64:
        if pos + 8 > end:
            raise _short("float64", pos)
        return _F64.unpack_from(buf, pos)[0], pos + 8
    if code == FLOAT32:
        if pos + 4 > end:
            raise _short("float32", pos)
        return Float32(_unpack_f32(buf, pos)), pos + 4
    if code == BYTE:
        if pos >= end:
            raise _short("byte", pos)
        return Byte(buf[pos]), pos + 1
    if code == INT16:
        if pos + 2 > end:
            raise _short("int16", pos)
        return Int16(_I16.unpack_from(buf, pos)[0]), pos + 2
    raise SerializationError(f"not support type {code}", pos - 1)


_TYPED_NULL: Final = Typed("null")
_TYPED_TRUE: Final = Typed("bool", True)
_TYPED_FALSE: Final = Typed("bool", False)
_SCALAR_NAMES: Final = {
    STRING: "string",
    BYTES: "bytes",
    INT64: "int64",
    INT32: "int32",
    FLOAT64: "float64",
    FLOAT32: "float32",
    BYTE: "byte",
    INT16: "int16",
}
_SCALAR_CAST: Final = {bytes: bytes, str: str, Int32: int, Byte: int, Int16: int, Float32: float}


def _read_typed(buf: bytes, pos: int, end: int, depth: int) -> tuple[Typed, int]:
    """Read one value at ``pos`` (< ``end``) as a typed tree."""
    code = buf[pos]
    if code == NULL:
        return _TYPED_NULL, pos + 1
    if code == BOOL:
        if pos + 1 >= end:
            raise _short("bool", pos + 1)
        return (_TYPED_TRUE if buf[pos + 1] == 1 else _TYPED_FALSE), pos + 2
    if code in (21, 20):  # array, map
        stop = _container(buf, pos + 1, end, depth)
        pos += 5
        depth += 1
        items: list[Any] = []
        while pos < stop:
            item, pos = _read_typed(buf, pos, end, depth)
            if code == MAP:
                if pos >= end:
                    raise _short("map value", pos)
                value, pos = _read_typed(buf, pos, end, depth)
                items.append((item, value))
            else:
                items.append(item)
        if pos != stop:
            raise SerializationError("wrong map/array size", pos)
        return Typed("array" if code == ARRAY else "map", tuple(items)), pos
    if code in (4, 2):  # string array, string map
        stop = _container(buf, pos + 1, end, depth)
        strings, pos = _strings(buf, pos + 5, end, stop)
        nodes = [Typed("string", s) for s in strings]
        if code == STRING_ARRAY:
            return Typed("string_array", tuple(nodes)), pos
        _string_map_items(nodes, pos)
        return Typed("string_map", tuple(zip(nodes[::2], nodes[1::2], strict=True))), pos
    name = _SCALAR_NAMES.get(code)
    if name is None:
        raise SerializationError(f"not support type {code}", pos)
    scalar, pos = _read(buf, pos, end, depth)
    cast = _SCALAR_CAST.get(type(scalar))
    return Typed(name, scalar if cast is None else cast(scalar)), pos


def _as_bytes(body: bytes | bytearray | memoryview) -> bytes:
    return body if type(body) is bytes else bytes(body)


class SimpleSerialization:
    """Serialization id 6, ``simple`` (see the module docstring for the type mapping)."""

    __slots__ = ()

    @property
    def id(self) -> int:
        return 6

    @property
    def name(self) -> str:
        return "simple"

    def encode(self, value: Any) -> bytes:
        """One value; ``None`` gives ``00``."""
        out = bytearray()
        try:
            _write(out, value, 0)
        except (struct.error, UnicodeEncodeError, OverflowError, RecursionError) as exc:
            raise SerializationError(f"cannot encode value: {exc}") from exc
        return bytes(out)

    def encode_multi(self, values: Sequence[Any]) -> bytes:
        """Request arguments, concatenated; no arguments gives ``b""``."""
        out = bytearray()
        try:
            for value in values:
                _write(out, value, 0)
        except (struct.error, UnicodeEncodeError, OverflowError, RecursionError) as exc:
            raise SerializationError(f"cannot encode value: {exc}") from exc
        return bytes(out)

    def decode(self, body: bytes | bytearray | memoryview) -> Any:
        """Exactly one value; an empty body is ``None``."""
        buf = _as_bytes(body)
        end = len(buf)
        if not end:
            return None
        try:
            value, pos = _read(buf, 0, end, 0)
        except RecursionError as exc:
            raise SerializationError("containers nested too deep", 0) from exc
        if pos != end:
            raise SerializationError(f"{end - pos} bytes after the value", pos)
        return value

    def decode_multi(self, body: bytes | bytearray | memoryview) -> list[Any]:
        """Every value in the body, in order; an empty body gives ``[]``."""
        buf = _as_bytes(body)
        end = len(buf)
        pos = 0
        values: list[Any] = []
        try:
            while pos < end:
                value, pos = _read(buf, pos, end, 0)
                values.append(value)
        except RecursionError as exc:
            raise SerializationError("containers nested too deep", pos) from exc
        return values

    def decode_typed(self, body: bytes | bytearray | memoryview) -> list[Typed]:
        """Every value in the body as a lossless typed tree."""
        buf = _as_bytes(body)
        end = len(buf)
        pos = 0
        values: list[Typed] = []
        try:
            while pos < end:
                value, pos = _read_typed(buf, pos, end, 0)
                values.append(value)
        except RecursionError as exc:
            raise SerializationError("containers nested too deep", pos) from exc
        return values

    def encode_typed(self, values: Sequence[Typed]) -> bytes:
        """The bytes of typed trees, concatenated (inverse of :meth:`decode_typed`)."""
        out = bytearray()
        try:
            for value in values:
                _write_typed(out, value, 0)
        except (struct.error, UnicodeEncodeError, OverflowError, RecursionError) as exc:
            raise SerializationError(f"cannot encode value: {exc}") from exc
        return bytes(out)


SIMPLE_SERIALIZATION: Final = SimpleSerialization()
