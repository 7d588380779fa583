"""The breeze serialization (id 8, spec section 6).

Writing plain values, by Python type:

* ``None`` → null ``99``, ``bool`` → ``9a``/``9b``, ``str`` → string (direct form up to 62
  bytes), ``bytes``/``bytearray``/``memoryview`` → bytes ``9d``, :class:`Byte` → ``9c``,
  :class:`Int16` → ``9e``, :class:`Int32` → int32 (direct form for -16..46), ``int`` → int64
  (direct form for -8..15), :class:`Float32` → ``9f``, ``float`` → ``a0``;
* ``list``/``tuple`` → non-packed array ``da``, ``dict`` → non-packed map ``d9`` (generic
  containers are never packed), :class:`BreezeMessage` → message with its fields in dict order.

Anything else, integers outside their wire range, collections of more than
:data:`MAX_ELEM_SIZE` elements and nesting deeper than :data:`MAX_DEPTH` raise
:class:`SerializationError`. :class:`Byte` accepts -128..255 and is read back unsigned.

Reading is liberal: direct and long forms, packed and non-packed containers, int32 varints of
up to 10 bytes (truncated to 32 bits). A string that is not valid UTF-8 is read as ``bytes``
(the typed tree keeps ``Typed("string", <bytes>)``). Plain decoding turns list and dict map keys
into tuples (a dict becomes a tuple of ``(key, value)`` pairs), as
:func:`motanmesh.wire.values.to_plain` does; a key that is still unhashable (a message) is
refused. Messages decode generically to ``BreezeMessage(name, {index: value})``.

Message names are numbered per buffer: every argument of one ``encode_multi``/``decode_multi``
(and ``encode_typed``/``decode_typed``) call shares one name table; ``encode``/``decode`` use a
fresh one. A message type that ends its buffer (the body, or the field area of the enclosing
message) with no length after it is read as an empty message (the form breeze-php writes for a
message without fields); elsewhere that form cannot be told apart from a length and is refused
or misread, and inside packed containers the length is always required.

The typed tree is lossless for canonical bodies: ``encode_typed(decode_typed(b)) == b``.
Non-canonical input is normalised when re-encoded: long forms of values that fit a direct form,
over-long varints, long-form name references to indexes up to 32, and breeze-php's empty
message form (written back with a zero length).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from motanmesh.wire.errors import SerializationError
from motanmesh.wire.values import BreezeMessage, Byte, Float32, Int16, Int32, Typed
from motanmesh.wire.varint import decode_uvarint, encode_uvarint

#: the element count limit of one collection (breeze ``MaxElemSize``)
MAX_ELEM_SIZE: Final = 100_000
#: containers and messages nested deeper than this are refused, on both sides
MAX_DEPTH: Final = 100

STRING: Final = 0x3F
INT32: Final = 0x7F
INT64: Final = 0x98
NULL: Final = 0x99
TRUE: Final = 0x9A
FALSE: Final = 0x9B
BYTE: Final = 0x9C
BYTES: Final = 0x9D
INT16: Final = 0x9E
FLOAT32: Final = 0x9F
FLOAT64: Final = 0xA0
MAP: Final = 0xD9
ARRAY: Final = 0xDA
PACKED_MAP: Final = 0xDB
PACKED_ARRAY: Final = 0xDC
MESSAGE: Final = 0xDE
MESSAGE_REF: Final = 0xDF

_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")
_I16: Final = struct.Struct(">h")
_F32: Final = struct.Struct(">f")
_F64: Final = struct.Struct(">d")
_I64_MIN: Final = -(1 << 63)
_I64_MAX: Final = (1 << 63) - 1
_I32_MIN: Final = -(1 << 31)
_I32_MAX: Final = (1 << 31) - 1
_LEN_PLACEHOLDER: Final = b"\x00\x00\x00\x00"

#: packed-container descriptors other than messages: type byte → (type name, least bytes per
#: untyped element)
_DESCRIPTORS: Final = {
    STRING: ("string", 1),
    INT32: ("int32", 1),
    INT64: ("int64", 1),
    TRUE: ("bool", 1),
    BYTE: ("byte", 1),
    BYTES: ("bytes", 4),
    INT16: ("int16", 2),
    FLOAT32: ("float32", 4),
    FLOAT64: ("float64", 8),
    MAP: ("map", 1),
    ARRAY: ("array", 1),
    PACKED_MAP: ("packed_map", 1),
    PACKED_ARRAY: ("packed_array", 1),
}
_DESCRIPTOR_OF: Final = {name: code for code, (name, _) in _DESCRIPTORS.items()}


# ---------------------------------------------------------------------------------------------
# float32 NaNs keep every payload bit (the platform's float/double conversion may quiet them)


def _pack_f32(value: float) -> bytes:
    if math.isnan(value):
        (bits,) = _U64.unpack(_F64.pack(value))
        mantissa = (bits >> 29) & 0x7FFFFF
        return _U32.pack(((bits >> 32) & 0x80000000) | 0x7F800000 | (mantissa or 0x400000))
    return _F32.pack(value)


def _unpack_f32(data: bytes, pos: int) -> float:
    (value,) = _F32.unpack_from(data, pos)
    if math.isnan(value):
        (bits,) = _U32.unpack_from(data, pos)
        double = ((bits & 0x80000000) << 32) | 0x7FF0000000000000 | ((bits & 0x7FFFFF) << 29)
        return float(_F64.unpack(_U64.pack(double))[0])
    return float(value)


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(x) for x in key)
    if isinstance(key, dict):
        return tuple((k, _hashable(x)) for k, x in key.items())
    return key


def _put(out: dict[Any, Any], key: Any, value: Any, pos: int) -> None:
    try:
        out[key] = value
    except TypeError:
        try:
            out[_hashable(key)] = value
        except TypeError:
            raise SerializationError("unhashable map key", pos) from None


# ---------------------------------------------------------------------------------------------
# reading


class _Reader:
    """Position, bound, name table and depth while reading one buffer."""

    __slots__ = ("data", "depth", "end", "names", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.names: list[str] = []
        self.depth = 0

    def take(self, n: int) -> bytes:
        pos = self.pos
        stop = pos + n
        if stop > self.end:
            raise SerializationError(f"truncated: {n} bytes needed", pos)
        self.pos = stop
        return self.data[pos:stop]

    def fixed(self, n: int) -> int:
        """Skip ``n`` bytes that must be there; return where they start."""
        pos = self.pos
        if pos + n > self.end:
            raise SerializationError(f"truncated: {n} bytes needed", pos)
        self.pos = pos + n
        return pos

    def uvarint(self) -> int:
        pos = self.pos
        if pos < self.end:
            b = self.data[pos]
            if b < 0x80:
                self.pos = pos + 1
                return b
        value, stop = decode_uvarint(self.data, pos)
        if stop > self.end:
            raise SerializationError("truncated varint", pos)
        self.pos = stop
        return value

    def text(self, n: int) -> str | bytes:
        raw = self.take(n)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return raw

    def int32(self) -> int:
        u = self.uvarint() & 0xFFFFFFFF
        return (u >> 1) ^ -(u & 1)

    def int64(self) -> int:
        u = self.uvarint()
        return (u >> 1) ^ -(u & 1)

    def count(self, least: int) -> int:
        """A collection count, checked against the limit and the bytes left."""
        pos = self.pos
        n = self.uvarint()
        if n > MAX_ELEM_SIZE:
            raise SerializationError(f"collection of {n} elements over {MAX_ELEM_SIZE}", pos)
        self.room(n, least, pos)
        return n

    def room(self, n: int, least: int, pos: int) -> None:
        if n * least > self.end - self.pos:
            raise SerializationError(f"collection of {n} elements does not fit the body", pos)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SerializationError(f"nested deeper than {MAX_DEPTH}", self.pos)

    def message_name(self, b: int) -> str:
        pos = self.pos
        if b == MESSAGE:
            try:
                name = self.take(self.uvarint()).decode()
            except UnicodeDecodeError:
                raise SerializationError("message name is not UTF-8", pos) from None
            self.names.append(name)
            return name
        index = self.uvarint() if b == MESSAGE_REF else b - MESSAGE_REF
        if not 0 < index <= len(self.names):
            raise SerializationError(f"unknown message name index {index}", pos)
        return self.names[index - 1]

    def field_area(self) -> int:
        """Read the u32 field-area length; bound reading to it; return the outer bound."""
        pos = self.fixed(4)
        stop = pos + 4 + _U32.unpack_from(self.data, pos)[0]
        outer = self.end
        if stop > outer:
            raise SerializationError("message longer than the body", pos)
        self.end = stop
        self.enter()
        return outer

    def bool_element(self, _b: int) -> bool:
        pos = self.fixed(1)
        b = self.data[pos]
        if b == TRUE:
            return True
        if b == FALSE:
            return False
        raise SerializationError(f"packed bool element {b:#04x}", pos)


def _bad_type(r: _Reader, b: int) -> Any:
    raise SerializationError(f"unknown breeze type {b:#04x}", r.pos - 1)


# -- plain values


class _PlainReader(_Reader):
    __slots__ = ()

    def value(self) -> Any:
        pos = self.pos
        end = self.end
        if pos >= end:
            raise SerializationError("truncated: value expected", pos)
        data = self.data
        b = data[pos]
        pos += 1
        if b < STRING:  # direct string, inline: the most common value
            stop = pos + b
            if stop > end:
                raise SerializationError(f"truncated: {b} bytes needed", pos)
            self.pos = stop
            raw = data[pos:stop]
            try:
                return raw.decode()
            except UnicodeDecodeError:
                return raw
        self.pos = pos
        return _PLAIN[b](self, b)

    def element(self) -> tuple[Callable[[Any, Any], Any], Any, int]:
        """A packed descriptor: ``(reader, argument, least bytes)`` for each element."""
        pos = self.fixed(1)
        b = self.data[pos]
        if b >= MESSAGE:
            return _PlainReader.message_body, self.message_name(b), 4
        if b == TRUE:
            return _Reader.bool_element, b, 1
        desc = _DESCRIPTORS.get(b)
        if desc is None:
            raise SerializationError(f"bad packed type descriptor {b:#04x}", pos)
        return _PLAIN[b], b, desc[1]

    def message_body(self, name: str) -> BreezeMessage:
        outer = self.field_area()
        fields: dict[int, Any] = {}
        data = self.data
        stop = self.end
        value = self.value
        while self.pos < stop:
            index = data[self.pos]
            if index < 0x80:
                self.pos += 1
            else:
                index = self.uvarint()
            fields[index] = value()
        self.end = outer
        self.depth -= 1
        return BreezeMessage(name, fields)


def _p_string(r: _Reader, _b: int) -> Any:
    return r.text(r.uvarint())


def _p_map(r: _PlainReader, _b: int) -> dict[Any, Any]:
    n = r.count(2)
    r.enter()
    out: dict[Any, Any] = {}
    value = r.value
    for _ in range(n):
        pos = r.pos
        key = value()
        _put(out, key, value(), pos)
    r.depth -= 1
    return out


def _p_array(r: _PlainReader, _b: int) -> list[Any]:
    n = r.count(1)
    r.enter()
    value = r.value
    out = [value() for _ in range(n)]
    r.depth -= 1
    return out


def _p_packed_map(r: _PlainReader, _b: int) -> dict[Any, Any]:
    pos = r.pos
    n = r.count(2)
    out: dict[Any, Any] = {}
    if n == 0:
        return out
    kread, karg, kleast = r.element()
    vread, varg, vleast = r.element()
    r.room(n, kleast + vleast, pos)
    r.enter()
    for _ in range(n):
        at = r.pos
        key = kread(r, karg)
        _put(out, key, vread(r, varg), at)
    r.depth -= 1
    return out


def _p_packed_array(r: _PlainReader, _b: int) -> list[Any]:
    pos = r.pos
    n = r.count(1)
    if n == 0:
        return []
    read, arg, least = r.element()
    r.room(n, least, pos)
    r.enter()
    out = [read(r, arg) for _ in range(n)]
    r.depth -= 1
    return out


def _p_message(r: _PlainReader, b: int) -> BreezeMessage:
    name = r.message_name(b)
    if r.pos == r.end:  # breeze-php's empty message: no length at the end of the buffer
        return BreezeMessage(name, {})
    return r.message_body(name)


def _p_bytes(r: _Reader, _b: int) -> bytes:
    pos = r.fixed(4)
    return r.take(_U32.unpack_from(r.data, pos)[0])


_PLAIN: list[Callable[[Any, int], Any]] = [_bad_type] * 256
for _b in range(STRING):
    _PLAIN[_b] = lambda r, b: r.text(b)
for _b in range(0x40, INT32):
    _PLAIN[_b] = lambda r, b: Int32(b - 0x50)
for _b in range(0x80, INT64):
    _PLAIN[_b] = lambda r, b: b - 0x88
for _b in range(MESSAGE, 0x100):
    _PLAIN[_b] = _p_message
_PLAIN[STRING] = _p_string
_PLAIN[INT32] = lambda r, b: Int32(r.int32())
_PLAIN[INT64] = lambda r, b: r.int64()
_PLAIN[NULL] = lambda r, b: None
_PLAIN[TRUE] = lambda r, b: True
_PLAIN[FALSE] = lambda r, b: False
_PLAIN[BYTE] = lambda r, b: Byte(r.data[r.fixed(1)])
_PLAIN[BYTES] = _p_bytes
_PLAIN[INT16] = lambda r, b: Int16(_I16.unpack_from(r.data, r.fixed(2))[0])
_PLAIN[FLOAT32] = lambda r, b: Float32(_unpack_f32(r.data, r.fixed(4)))
_PLAIN[FLOAT64] = lambda r, b: _F64.unpack_from(r.data, r.fixed(8))[0]
_PLAIN[MAP] = _p_map
_PLAIN[ARRAY] = _p_array
_PLAIN[PACKED_MAP] = _p_packed_map
_PLAIN[PACKED_ARRAY] = _p_packed_array


# -- typed trees


class _TypedReader(_Reader):
    __slots__ = ()

    def value(self) -> Typed:
        pos = self.pos
        if pos >= self.end:
            raise SerializationError("truncated: value expected", pos)
        b = self.data[pos]
        self.pos = pos + 1
        result: Typed = _TYPED[b](self, b)
        return result

    def element(self) -> tuple[Callable[[Any, Any], Typed], Any, int, str]:
        """A packed descriptor: ``(reader, argument, least bytes, type name)``."""
        pos = self.fixed(1)
        b = self.data[pos]
        if b >= MESSAGE:
            return _TypedReader.message_body, self.message_name(b), 4, "message"
        if b == TRUE:
            return _t_bool_element, b, 1, "bool"
        desc = _DESCRIPTORS.get(b)
        if desc is None:
            raise SerializationError(f"bad packed type descriptor {b:#04x}", pos)
        return _TYPED[b], b, desc[1], desc[0]

    def message_body(self, name: str) -> Typed:
        outer = self.field_area()
        fields: list[tuple[int, Typed]] = []
        while self.pos < self.end:
            index = self.uvarint()
            fields.append((index, self.value()))
        self.end = outer
        self.depth -= 1
        return Typed("message", tuple(fields), name=name)


def _t_bool_element(r: _Reader, b: int) -> Typed:
    return Typed("bool", r.bool_element(b))


def _t_map(r: _TypedReader, _b: int) -> Typed:
    n = r.count(2)
    r.enter()
    value = r.value
    pairs = tuple([(value(), value()) for _ in range(n)])
    r.depth -= 1
    return Typed("map", pairs)


def _t_array(r: _TypedReader, _b: int) -> Typed:
    n = r.count(1)
    r.enter()
    value = r.value
    items = tuple([value() for _ in range(n)])
    r.depth -= 1
    return Typed("array", items)


def _t_packed_map(r: _TypedReader, _b: int) -> Typed:
    pos = r.pos
    n = r.count(2)
    if n == 0:
        return Typed("packed_map", ())
    kread, karg, kleast, ktype = r.element()
    vread, varg, vleast, vtype = r.element()
    r.room(n, kleast + vleast, pos)
    r.enter()
    pairs = tuple([(kread(r, karg), vread(r, varg)) for _ in range(n)])
    r.depth -= 1
    return Typed("packed_map", pairs, ktype=ktype, vtype=vtype)


def _t_packed_array(r: _TypedReader, _b: int) -> Typed:
    pos = r.pos
    n = r.count(1)
    if n == 0:
        return Typed("packed_array", ())
    read, arg, least, etype = r.element()
    r.room(n, least, pos)
    r.enter()
    items = tuple([read(r, arg) for _ in range(n)])
    r.depth -= 1
    return Typed("packed_array", items, etype=etype)


def _t_message(r: _TypedReader, b: int) -> Typed:
    name = r.message_name(b)
    if r.pos == r.end:  # breeze-php's empty message: no length at the end of the buffer
        return Typed("message", (), name=name)
    return r.message_body(name)


def _typed_scalar(t: str) -> Callable[[Any, int], Typed]:
    plain = _PLAIN[_DESCRIPTOR_OF[t]]
    return lambda r, b: Typed(t, plain(r, b))


_TYPED: list[Callable[[Any, int], Typed]] = [_bad_type] * 256
for _b in range(STRING):
    _TYPED[_b] = lambda r, b: Typed("string", r.text(b))
for _b in range(0x40, INT32):
    _TYPED[_b] = lambda r, b: Typed("int32", b - 0x50)
for _b in range(0x80, INT64):
    _TYPED[_b] = lambda r, b: Typed("int64", b - 0x88)
for _b in range(MESSAGE, 0x100):
    _TYPED[_b] = _t_message
_TYPED[STRING] = _typed_scalar("string")
_TYPED[INT32] = lambda r, b: Typed("int32", r.int32())
_TYPED[INT64] = _typed_scalar("int64")
_TYPED[NULL] = lambda r, b: Typed("null")
_TYPED[TRUE] = lambda r, b: Typed("bool", True)
_TYPED[FALSE] = lambda r, b: Typed("bool", False)
_TYPED[BYTE] = lambda r, b: Typed("byte", r.data[r.fixed(1)])
_TYPED[BYTES] = _typed_scalar("bytes")
_TYPED[INT16] = lambda r, b: Typed("int16", _I16.unpack_from(r.data, r.fixed(2))[0])
_TYPED[FLOAT32] = lambda r, b: Typed("float32", _unpack_f32(r.data, r.fixed(4)))
_TYPED[FLOAT64] = _typed_scalar("float64")
_TYPED[MAP] = _t_map
_TYPED[ARRAY] = _t_array
_TYPED[PACKED_MAP] = _t_packed_map
_TYPED[PACKED_ARRAY] = _t_packed_array


# ---------------------------------------------------------------------------------------------
# writing


class _Writer:
    """The output buffer, name table and depth while writing one buffer."""

    __slots__ = ("depth", "names", "out")

    def __init__(self) -> None:
        self.out = bytearray()
        self.names: dict[str, int] = {}
        self.depth = 0

    def enter(self, n: int) -> None:
        if n > MAX_ELEM_SIZE:
            raise SerializationError(f"collection of {n} elements over {MAX_ELEM_SIZE}")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SerializationError(f"nested deeper than {MAX_DEPTH}")
        _uvarint(self.out, n)

    def message_type(self, name: Any) -> None:
        if not isinstance(name, str):
            raise SerializationError(f"message name must be a str, not {type(name).__name__}")
        out = self.out
        index = self.names.get(name)
        if index is None:
            self.names[name] = len(self.names) + 1
            raw = name.encode()
            out.append(MESSAGE)
            _uvarint(out, len(raw))
            out += raw
        elif index <= 32:
            out.append(MESSAGE_REF + index)
        else:
            out.append(MESSAGE_REF)
            _uvarint(out, index)

    def fields(self, items: Any, write: Callable[[_Writer, Any], None]) -> None:
        """A message body: u32 length, then (index, typed value) pairs."""
        out = self.out
        start = len(out)
        out += _LEN_PLACEHOLDER
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SerializationError(f"nested deeper than {MAX_DEPTH}")
        for index, value in items:
            if type(index) is int and 0 <= index < 0x80:
                out.append(index)
            elif isinstance(index, int) and 0 <= index <= 0xFFFFFFFFFFFFFFFF:
                out += encode_uvarint(index)
            else:
                raise SerializationError(f"bad message field index {index!r}")
            write(self, value)
        self.depth -= 1
        _U32.pack_into(out, start, len(out) - start - 4)

    def plain(self, value: Any) -> None:
        cls = type(value)
        if cls is str:  # the common cases inline
            raw = value.encode()
            n = len(raw)
            if n < STRING:
                self.out.append(n)
            else:
                self.out.append(STRING)
                _uvarint(self.out, n)
            self.out += raw
        elif cls is int and -8 <= value <= 15:
            self.out.append(value + 0x88)
        else:
            write = _PLAIN_WRITERS.get(cls)
            if write is None:
                write = _plain_writer(value)
            write(self, value)

    def typed(self, node: Typed) -> None:
        try:
            write = _TYPED_WRITERS[node.t]
        except (AttributeError, KeyError, TypeError):
            raise SerializationError(f"not a breeze typed value: {node!r}") from None
        write(self, node)


def _uvarint(out: bytearray, u: int) -> None:
    if u < 0x80:
        out.append(u)
    else:
        out += encode_uvarint(u)


def _check(value: int, low: int, high: int, what: str) -> None:
    if not low <= value <= high:
        raise SerializationError(f"{what} {int(value)} out of range")


# -- scalars (shared by plain values and typed trees)


def _w_null(w: _Writer, _value: Any) -> None:
    w.out.append(NULL)


def _w_bool(w: _Writer, value: Any) -> None:
    w.out.append(TRUE if value else FALSE)


def _w_string(w: _Writer, value: str | bytes) -> None:
    raw = value.encode() if isinstance(value, str) else value
    out = w.out
    n = len(raw)
    if n < STRING:
        out.append(n)
    else:
        out.append(STRING)
        _uvarint(out, n)
    out += raw


def _b_bytes(w: _Writer, value: bytes) -> None:
    n = len(value)
    _check(n, 0, 0xFFFFFFFF, "bytes length")
    w.out += _U32.pack(n)
    w.out += value


def _b_byte(w: _Writer, value: int) -> None:
    _check(value, -128, 255, "byte")
    w.out.append(value & 0xFF)


def _b_int16(w: _Writer, value: int) -> None:
    _check(value, -32768, 32767, "int16")
    w.out += _I16.pack(value)


def _b_int32(w: _Writer, value: int) -> None:
    _check(value, _I32_MIN, _I32_MAX, "int32")
    _uvarint(w.out, (value << 1) ^ (value >> 31))


def _b_int64(w: _Writer, value: int) -> None:
    if not _I64_MIN <= value <= _I64_MAX:
        raise SerializationError(f"int64 {int(value)} out of range")
    u = (value << 1) ^ (value >> 63)
    if u < 0x80:
        w.out.append(u)
    else:
        w.out += encode_uvarint(u)


def _b_float32(w: _Writer, value: float) -> None:
    w.out += _pack_f32(value)


def _b_float64(w: _Writer, value: float) -> None:
    w.out += _F64.pack(value)


def _w_int32(w: _Writer, value: int) -> None:
    if -16 <= value <= 46:
        w.out.append(value + 0x50)
    else:
        w.out.append(INT32)
        _b_int32(w, value)


def _w_int64(w: _Writer, value: int) -> None:
    if -8 <= value <= 15:
        w.out.append(value + 0x88)
    else:
        w.out.append(INT64)
        _b_int64(w, value)


def _typed_form(code: int, body: Callable[[_Writer, Any], None]) -> Callable[[_Writer, Any], None]:
    def write(w: _Writer, value: Any) -> None:
        w.out.append(code)
        body(w, value)

    return write


_w_bytes = _typed_form(BYTES, _b_bytes)
_w_byte = _typed_form(BYTE, _b_byte)
_w_int16 = _typed_form(INT16, _b_int16)
_w_float32 = _typed_form(FLOAT32, _b_float32)
_w_float64 = _typed_form(FLOAT64, _b_float64)


# -- plain values


def _w_list(w: _Writer, value: Sequence[Any]) -> None:
    w.out.append(ARRAY)
    w.enter(len(value))
    plain = w.plain
    for item in value:
        plain(item)
    w.depth -= 1


def _w_dict(w: _Writer, value: Mapping[Any, Any]) -> None:
    w.out.append(MAP)
    w.enter(len(value))
    plain = w.plain
    for key, item in value.items():
        plain(key)
        plain(item)
    w.depth -= 1


def _w_message(w: _Writer, value: BreezeMessage) -> None:
    w.message_type(value.name)
    w.fields(value.fields.items(), _Writer.plain)


_PLAIN_WRITERS: dict[type, Callable[[_Writer, Any], None]] = {
    str: _w_string,
    int: _w_int64,
    bool: _w_bool,
    type(None): _w_null,
    float: _w_float64,
    bytes: _w_bytes,
    bytearray: _w_bytes,
    memoryview: lambda w, v: _w_bytes(w, v.tobytes()),
    Int32: _w_int32,
    Int16: _w_int16,
    Byte: _w_byte,
    Float32: _w_float32,
    list: _w_list,
    tuple: _w_list,
    dict: _w_dict,
    BreezeMessage: _w_message,
}


def _plain_writer(value: Any) -> Callable[[_Writer, Any], None]:
    """The writer for a subclass of a supported type (markers first, ``bool`` before ``int``)."""
    for cls in (Int32, Int16, Byte, bool, int, Float32, float, str, bytes, bytearray, memoryview):
        if isinstance(value, cls):
            return _PLAIN_WRITERS[cls]
    if isinstance(value, list | tuple):
        return _w_list
    if isinstance(value, Mapping):
        return _w_dict
    if isinstance(value, BreezeMessage):
        return _w_message
    raise SerializationError(f"breeze cannot encode {type(value).__name__}")


# -- typed trees: node checks


def _int(node: Typed) -> int:
    v = node.v
    if not isinstance(v, int) or isinstance(v, bool):
        raise SerializationError(f"{node.t} value must be an int, not {type(v).__name__}")
    return int(v)


def _float(node: Typed) -> float:
    v = node.v
    if not isinstance(v, int | float) or isinstance(v, bool):
        raise SerializationError(f"{node.t} value must be a float, not {type(v).__name__}")
    return float(v)


def _bool(node: Typed) -> bool:
    if not isinstance(node.v, bool):
        raise SerializationError(f"bool value must be a bool, not {type(node.v).__name__}")
    return node.v


def _raw(node: Typed, text: bool) -> bytes:
    v = node.v
    if text and isinstance(v, str):
        return v.encode()
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v)
    raise SerializationError(f"{node.t} value of type {type(v).__name__}")


def _items(node: Typed) -> tuple[Any, ...]:
    v = node.v
    if not isinstance(v, tuple | list):
        raise SerializationError(f"{node.t} value must be a tuple, not {type(v).__name__}")
    return tuple(v)


def _pairs(node: Typed) -> tuple[tuple[Any, Any], ...]:
    pairs = _items(node)
    for pair in pairs:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise SerializationError(f"{node.t} entries must be pairs")
    return pairs


# -- typed trees: container bodies (after the type byte)


def _tb_map(w: _Writer, node: Typed) -> None:
    pairs = _pairs(node)
    w.enter(len(pairs))
    typed = w.typed
    for key, value in pairs:
        typed(key)
        typed(value)
    w.depth -= 1


def _tb_array(w: _Writer, node: Typed) -> None:
    items = _items(node)
    w.enter(len(items))
    typed = w.typed
    for item in items:
        typed(item)
    w.depth -= 1


def _descriptor(w: _Writer, t: str | None, first: Any) -> tuple[str, str | None]:
    """Write a packed descriptor; return the element type and, for messages, their name."""
    if not isinstance(first, Typed):
        raise SerializationError(f"packed element {first!r} is not a Typed")
    if t is None:
        t = first.t
    if t == "message":
        w.message_type(first.name)
        return t, first.name
    code = _DESCRIPTOR_OF.get(t)
    if code is None:
        raise SerializationError(f"{t!r} cannot be a packed element type")
    w.out.append(code)
    return t, None


def _element(w: _Writer, t: str, name: str | None, node: Any) -> None:
    """One packed element, without its type byte."""
    if not isinstance(node, Typed) or node.t != t or (name is not None and node.name != name):
        raise SerializationError(f"packed element {node!r} is not a {name or t}")
    _UNTYPED_WRITERS[t](w, node)


def _tb_packed_map(w: _Writer, node: Typed) -> None:
    pairs = _pairs(node)
    w.enter(len(pairs))
    if pairs:
        kt, kname = _descriptor(w, node.ktype, pairs[0][0])
        vt, vname = _descriptor(w, node.vtype, pairs[0][1])
        for key, value in pairs:
            _element(w, kt, kname, key)
            _element(w, vt, vname, value)
    w.depth -= 1


def _tb_packed_array(w: _Writer, node: Typed) -> None:
    items = _items(node)
    w.enter(len(items))
    if items:
        t, name = _descriptor(w, node.etype, items[0])
        for item in items:
            _element(w, t, name, item)
    w.depth -= 1


def _tb_message(w: _Writer, node: Typed) -> None:
    w.fields(_pairs(node), _Writer.typed)


def _tw_message(w: _Writer, node: Typed) -> None:
    w.message_type(node.name)
    _tb_message(w, node)


def _u_string(w: _Writer, node: Typed) -> None:
    raw = _raw(node, True)
    _uvarint(w.out, len(raw))
    w.out += raw


_Node = Callable[[_Writer, Typed], None]

#: packed elements: the value without its type byte (bool keeps its full byte)
_UNTYPED_WRITERS: dict[str, _Node] = {
    "string": _u_string,
    "int32": lambda w, n: _b_int32(w, _int(n)),
    "int64": lambda w, n: _b_int64(w, _int(n)),
    "bool": lambda w, n: _w_bool(w, _bool(n)),
    "byte": lambda w, n: _b_byte(w, _int(n)),
    "bytes": lambda w, n: _b_bytes(w, _raw(n, False)),
    "int16": lambda w, n: _b_int16(w, _int(n)),
    "float32": lambda w, n: _b_float32(w, _float(n)),
    "float64": lambda w, n: _b_float64(w, _float(n)),
    "map": _tb_map,
    "array": _tb_array,
    "packed_map": _tb_packed_map,
    "packed_array": _tb_packed_array,
    "message": _tb_message,
}

_TYPED_WRITERS: dict[str, _Node] = {
    "null": _w_null,
    "bool": lambda w, n: _w_bool(w, _bool(n)),
    "string": lambda w, n: _w_string(w, _raw(n, True)),
    "bytes": lambda w, n: _w_bytes(w, _raw(n, False)),
    "byte": lambda w, n: _w_byte(w, _int(n)),
    "int16": lambda w, n: _w_int16(w, _int(n)),
    "int32": lambda w, n: _w_int32(w, _int(n)),
    "int64": lambda w, n: _w_int64(w, _int(n)),
    "float32": lambda w, n: _w_float32(w, _float(n)),
    "float64": lambda w, n: _w_float64(w, _float(n)),
    "map": _typed_form(MAP, _tb_map),
    "array": _typed_form(ARRAY, _tb_array),
    "packed_map": _typed_form(PACKED_MAP, _tb_packed_map),
    "packed_array": _typed_form(PACKED_ARRAY, _tb_packed_array),
    "message": _tw_message,
}


# ---------------------------------------------------------------------------------------------
# the serialization


def _as_bytes(body: bytes | bytearray | memoryview) -> bytes:
    return body if type(body) is bytes else bytes(body)


_ENCODE_ERRORS: Final = (struct.error, UnicodeEncodeError, OverflowError, RecursionError)


class BreezeSerialization:
    """Breeze (id 8): see the module documentation for the value mapping."""

    __slots__ = ()

    @property
    def id(self) -> int:
        return 8

    @property
    def name(self) -> str:
        return "breeze"

    def encode(self, value: Any) -> bytes:
        """One value with a fresh name table; ``None`` gives ``99``."""
        return self.encode_multi((value,))

    def encode_multi(self, values: Sequence[Any]) -> bytes:
        """Request arguments, concatenated, sharing one name table; none gives ``b""``."""
        w = _Writer()
        try:
            for value in values:
                w.plain(value)
        except _ENCODE_ERRORS as exc:
            raise SerializationError(f"cannot encode value: {exc}") from exc
        return bytes(w.out)

    def decode(self, body: bytes | bytearray | memoryview) -> Any:
        """Exactly one value; an empty body is ``None``."""
        r = _PlainReader(_as_bytes(body))
        if not r.end:
            return None
        try:
            value = r.value()
        except RecursionError as exc:
            raise SerializationError("values nested too deep", r.pos) from exc
        if r.pos != r.end:
            raise SerializationError(f"{r.end - r.pos} bytes after the value", r.pos)
        return value

    def decode_multi(self, body: bytes | bytearray | memoryview) -> list[Any]:
        """Every value in the body, in order, sharing one name table; empty gives ``[]``."""
        r = _PlainReader(_as_bytes(body))
        values: list[Any] = []
        try:
            while r.pos < r.end:
                values.append(r.value())
        except RecursionError as exc:
            raise SerializationError("values nested too deep", r.pos) from exc
        return values

    def decode_typed(self, body: bytes | bytearray | memoryview) -> list[Typed]:
        """Every value in the body as a lossless typed tree (one name table)."""
        r = _TypedReader(_as_bytes(body))
        values: list[Typed] = []
        try:
            while r.pos < r.end:
                values.append(r.value())
        except RecursionError as exc:
            raise SerializationError("values nested too deep", r.pos) from exc
        return values

    def encode_typed(self, values: Sequence[Typed]) -> bytes:
        """The bytes of typed trees, concatenated with one name table (inverse of
        :meth:`decode_typed`)."""
        w = _Writer()
        try:
            for value in values:
                w.typed(value)
        except _ENCODE_ERRORS as exc:
            raise SerializationError(f"cannot encode value: {exc}") from exc
        return bytes(w.out)


BREEZE_SERIALIZATION: Final = BreezeSerialization()
