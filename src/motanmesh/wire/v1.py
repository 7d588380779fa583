"""Motan v1 (the legacy Java protocol) on the Motan2 port: framing, request headers,
heartbeats and exception answers (spec section 7).

Only what an agent needs is understood: the service, method, parameter descriptor and
attachments of a request, and whether it is the heartbeat. Arguments (hessian2 inside Java
object-serialization ``byte[]`` objects) are skipped, never decoded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from motanmesh.wire.errors import CompressionError, V1Error

V1_HEADER_SIZE: Final = 16
V1_ALL_HEADER_SIZE: Final = 32
INNER_MAGIC: Final = 0xF0F0
INNER_V1: Final = 0x01
INNER_V1_COMPRESS: Final = 0x02

TYPE_REQUEST: Final = 0x00
TYPE_RESPONSE: Final = 0x01

FLAG_REQUEST: Final = 0x00
FLAG_RESPONSE: Final = 0x01
FLAG_RESPONSE_VOID: Final = 0x03
FLAG_RESPONSE_EXCEPTION: Final = 0x05
FLAG_RESPONSE_ATTACHMENT: Final = 0x07

HEARTBEAT_SERVICE: Final = "com.weibo.api.motan.rpc.heartbeat"
HEARTBEAT_METHOD: Final = "heartbeat"
HEARTBEAT_DESC: Final = "void"

# Java object serialization stream tokens.
_OS_HEAD: Final = b"\xac\xed\x00\x05"
_TC_NULL: Final = 0x70
_TC_REFERENCE: Final = 0x71
_TC_CLASSDESC: Final = 0x72
_TC_ARRAY: Final = 0x75
_TC_BLOCKDATA: Final = 0x77
_TC_ENDBLOCKDATA: Final = 0x78
_TC_BLOCKDATALONG: Final = 0x7A
#: class descriptor of ``byte[]`` as Java writes it: name "[B", serialVersionUID, flags, 0 fields
_BYTE_ARRAY_DESC: Final = (
    bytes((_TC_ARRAY, _TC_CLASSDESC))
    + b"\x00\x02[B"
    + bytes.fromhex("acf317f8060854e0")
    + b"\x02\x00\x00"
    + bytes((_TC_ENDBLOCKDATA, _TC_NULL))
)

_OUTER: Final = struct.Struct(">HBBQI")
_INNER: Final = struct.Struct(">HBBQI")
_U16: Final = struct.Struct(">H")
_I32: Final = struct.Struct(">i")
_U32: Final = struct.Struct(">I")
_I64: Final = struct.Struct(">q")

#: hessian2 "heartbeat": the value of a v1 heartbeat reply
HESSIAN_HEARTBEAT: Final = b"\x09heartbeat"


@dataclass(slots=True)
class V1Frame:
    """One whole Motan v1 message, kept as its original bytes."""

    request_id: int
    outer_type: int
    inner_version: int
    flag: int
    raw: bytes

    @property
    def is_request(self) -> bool:
        return self.flag == FLAG_REQUEST

    @property
    def stream(self) -> bytes:
        """The object stream (gunzipped for v1-compress)."""
        body = self.raw[V1_ALL_HEADER_SIZE:]
        if self.inner_version == INNER_V1_COMPRESS and body[:2] == b"\x1f\x8b":
            from motanmesh.wire.frame import gunzip  # noqa: PLC0415 - avoid an import cycle

            try:
                return gunzip(body)
            except CompressionError as e:
                raise V1Error(f"v1-compress body does not gunzip: {e}") from e
        return body


@dataclass(slots=True)
class V1Request:
    service: str
    method: str
    param_desc: str
    attachments: dict[str, str] = field(default_factory=dict)
    arg_count: int = 0

    @property
    def is_heartbeat(self) -> bool:
        return self.service == HEARTBEAT_SERVICE and self.method == HEARTBEAT_METHOD


def parse_v1_frame(raw: bytes) -> V1Frame:
    """Check a whole v1 message (outer and inner headers) and wrap it."""
    if len(raw) < V1_ALL_HEADER_SIZE:
        raise V1Error(f"v1 message of {len(raw)} bytes is shorter than its two headers")
    _magic, _b2, outer_type, rid, _length = _OUTER.unpack_from(raw, 0)
    inner_magic, inner_version, flag, _rid2, inner_length = _INNER.unpack_from(raw, 16)
    if inner_magic != INNER_MAGIC:
        raise V1Error(f"wrong v1 inner magic {inner_magic:#06x}")
    if inner_length + V1_ALL_HEADER_SIZE != len(raw):
        raise V1Error(f"v1 inner length not correct: {inner_length} + 32 != frame size {len(raw)}")
    return V1Frame(rid, outer_type, inner_version, flag, raw)


class _Reader:
    __slots__ = ("block_end", "data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.block_end = 0

    def need(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise V1Error(f"v1 object stream truncated at offset {self.pos}")

    def open_block(self) -> None:
        self.need(1)
        tc = self.data[self.pos]
        if tc == _TC_BLOCKDATA:
            self.need(2)
            size = self.data[self.pos + 1]
            self.pos += 2
        elif tc == _TC_BLOCKDATALONG:
            self.need(5)
            (size,) = _U32.unpack_from(self.data, self.pos + 1)
            self.pos += 5
        else:
            raise V1Error(f"unsupported object stream type {tc:#04x} where block data expected")
        self.need(size)
        self.block_end = self.pos + size

    def block_bytes(self, n: int) -> bytes:
        # Block data may be split over several blocks (Java flushes at 1024 bytes).
        out = b""
        while n:
            if self.pos >= self.block_end:
                self.open_block()
            take = min(n, self.block_end - self.pos)
            out += self.data[self.pos : self.pos + take]
            self.pos += take
            n -= take
        return out

    def utf(self) -> str:
        (n,) = _U16.unpack(self.block_bytes(2))
        try:
            return self.block_bytes(n).decode("utf-8")
        except UnicodeDecodeError as e:
            raise V1Error(f"v1 string is not valid UTF-8: {e}") from e

    def skip_object(self) -> None:
        self.need(1)
        tc = self.data[self.pos]
        if tc == _TC_NULL:
            self.pos += 1
            return
        if tc != _TC_ARRAY:
            raise V1Error(f"unsupported object stream type {tc:#04x} in v1 arguments")
        self.pos += 1
        self.need(1)
        if self.data[self.pos] == _TC_REFERENCE:
            self.pos += 5
        elif self.data[self.pos] == _TC_CLASSDESC:
            self.pos += 1
            self.need(2)
            (name_len,) = _U16.unpack_from(self.data, self.pos)
            # name, serialVersionUID(8), flags(1), field count(2), end block, super class
            self.pos += 2 + name_len + 8 + 1 + 2 + 2
        else:
            raise V1Error("unsupported class descriptor in v1 argument")
        self.need(4)
        (length,) = _U32.unpack_from(self.data, self.pos)
        self.pos += 4 + length
        self.need(0)


def parse_v1_request(frame: V1Frame) -> V1Request:
    """Read the service, method, parameter descriptor and attachments of a v1 request."""
    if not frame.is_request:
        raise V1Error(f"v1 message with flag {frame.flag:#04x} is not a request")
    r = _Reader(frame.stream)
    r.need(4)
    if r.data[:4] != _OS_HEAD:
        raise V1Error("object stream magic number or version not correct")
    r.pos = 4
    r.open_block()
    service = r.utf()
    if service == "1":  # v1-compress: a compact method signature instead of three strings
        req = V1Request("v1compressMethodSign", r.utf(), "")
    else:
        req = V1Request(service, r.utf(), r.utf())
    if r.pos >= r.block_end:  # arguments follow, then a new block with the attachments
        while r.pos < len(r.data) and r.data[r.pos] not in (_TC_BLOCKDATA, _TC_BLOCKDATALONG):
            r.skip_object()
            req.arg_count += 1
    if frame.inner_version == INNER_V1_COMPRESS:
        (count,) = _U16.unpack(r.block_bytes(2))
    else:
        (count,) = _I32.unpack(r.block_bytes(4))
    if count < 0 or count * 4 > len(r.data):
        raise V1Error(f"bad v1 attachment count {count}")
    for _ in range(count):
        k = r.utf()
        req.attachments[k] = r.utf()
    return req


def _outer_inner(request_id: int, outer_type: int, flag: int, stream: bytes) -> bytes:
    return (
        _OUTER.pack(0xF1F1, 0, outer_type, request_id, len(stream) + 16)
        + _INNER.pack(INNER_MAGIC, INNER_V1, flag, request_id, len(stream))
        + stream
    )


def _block(data: bytes) -> bytes:
    if len(data) <= 0xFF:
        return bytes((_TC_BLOCKDATA, len(data))) + data
    return bytes((_TC_BLOCKDATALONG,)) + _U32.pack(len(data)) + data


def _utf(s: str) -> bytes:
    b = s.encode("utf-8")
    return _U16.pack(len(b)) + b


def v1_heartbeat_request(request_id: int) -> bytes:
    """A v1 heartbeat request (94 bytes), as motan-go sends it."""
    stream = _OS_HEAD + _block(
        _utf(HEARTBEAT_SERVICE) + _utf(HEARTBEAT_METHOD) + _utf(HEARTBEAT_DESC) + _I32.pack(0)
    )
    return _outer_inner(request_id, TYPE_REQUEST, FLAG_REQUEST, stream)


def _value_response(request_id: int, flag: int, class_name: str, value: bytes) -> bytes:
    stream = (
        _OS_HEAD
        + _block(_I64.pack(0) + _utf(class_name))
        + _BYTE_ARRAY_DESC
        + _U32.pack(len(value))
        + value
    )
    return _outer_inner(request_id, TYPE_RESPONSE, flag, stream)


def v1_heartbeat_response(request_id: int) -> bytes:
    """The v1 heartbeat answer (97 bytes): a ``java.lang.String`` "heartbeat" value."""
    return _value_response(request_id, FLAG_RESPONSE, "java.lang.String", HESSIAN_HEARTBEAT)


def is_v1_heartbeat_response(frame: V1Frame) -> bool:
    return frame.flag == FLAG_RESPONSE and frame.raw.endswith(HESSIAN_HEARTBEAT)


def _hessian_string(s: str) -> bytes:
    # hessian2 string: compact (<32 chars), short (<1024 chars), else 'S' chunk(s) of <=0xffff.
    # Lengths count UTF-16 code units; the messages written here are BMP text in practice.
    n = len(s)
    data = s.encode("utf-8")
    if n < 32:
        return bytes((n,)) + data
    if n < 1024:
        return bytes((0x30 + (n >> 8), n & 0xFF)) + data
    out = b""
    while len(s) > 0xFFFF:
        out += b"R" + _U16.pack(0xFFFF) + s[:0xFFFF].encode("utf-8")
        s = s[0xFFFF:]
    return out + b"S" + _U16.pack(len(s)) + s.encode("utf-8")


def _hessian_class_def(name: str, fields: list[str]) -> bytes:
    return (
        b"C"
        + _hessian_string(name)
        + bytes((0x90 + len(fields),))
        + b"".join(_hessian_string(f) for f in fields)
    )


_EXCEPTION_CLASS: Final = "com.weibo.api.motan.exception.MotanServiceException"
_EXCEPTION_FIELDS: Final = [
    "errorMsg",
    "detailMessage",
    "cause",
    "motanErrorMsg",
    "stackTrace",
    "suppressedExceptions",
]
_ERROR_MSG_CLASS: Final = "com.weibo.api.motan.exception.MotanErrorMsg"


def v1_exception_response(request_id: int, message: str) -> bytes:
    """A v1 exception response carrying a hessian2 ``MotanServiceException`` (status 503,
    error code 10001) whose ``MotanErrorMsg`` holds ``message``."""
    status_503 = bytes((0xC8 + (503 >> 8), 503 & 0xFF))
    code_10001 = bytes((0xD4 + (10001 >> 16), (10001 >> 8) & 0xFF, 10001 & 0xFF))
    value = (
        _hessian_class_def(_EXCEPTION_CLASS, _EXCEPTION_FIELDS)
        + b"\x60NNN"
        + _hessian_class_def(_ERROR_MSG_CLASS, ["status", "errorcode", "message"])
        + b"\x61"
        + status_503
        + code_10001
        + _hessian_string(message)
        + b"NN"
    )
    return _value_response(request_id, FLAG_RESPONSE_EXCEPTION, _EXCEPTION_CLASS, value)
