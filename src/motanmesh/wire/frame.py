"""Motan2 frames: header, metadata, body (spec sections 1-3 and 8).

Sans-I/O: functions from bytes to :class:`Frame` and back. The incremental decoder lives in
:mod:`motanmesh.wire.decoder`.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Final

from motanmesh.wire.errors import (
    BadMagicError,
    CompressionError,
    FrameTooLargeError,
    MetadataError,
    TruncatedError,
    UnsupportedVersionError,
)

MAGIC: Final = 0xF1F1
MAGIC_BYTES: Final = b"\xf1\xf1"

FLAG_RESPONSE: Final = 0x01
FLAG_PROXY: Final = 0x02
FLAG_ONEWAY: Final = 0x04
FLAG_GZIP: Final = 0x08
FLAG_HEARTBEAT: Final = 0x10

VERSION_V1: Final = 0
VERSION_V2: Final = 1

STATUS_NORMAL: Final = 0
STATUS_EXCEPTION: Final = 1

DEFAULT_MAX_CONTENT_LENGTH: Final = 10 * 1024 * 1024
HEADER_SIZE: Final = 13
MIN_FRAME_SIZE: Final = 21

# Metadata keys (spec 2.1).
M_PATH: Final = "M_p"
M_METHOD: Final = "M_m"
M_METHOD_DESC: Final = "M_md"
M_GROUP: Final = "M_g"
M_VERSION: Final = "M_v"
M_PROXY_PROTOCOL: Final = "M_pp"
M_SOURCE: Final = "M_s"
M_MODULE: Final = "M_mdu"
M_TIMEOUT: Final = "M_tmo"
M_REQUEST_ID: Final = "M_rid"
M_FRAMEWORK_SERVICE: Final = "M_fws"
M_EXCEPTION: Final = "M_e"
M_PROCESS_TIME: Final = "M_pt"

# Exception types carried in ``M_e`` (spec 2.3).
ERRTYPE_FRAMEWORK: Final = 0
ERRTYPE_SERVICE: Final = 1
ERRTYPE_BIZ: Final = 2

#: magic(2) flags(1) version+status(1) serialization(1) request id(8) metadata length(4)
HEAD: Final = struct.Struct(">HBBBQI")
_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")
_ENC: Final = "utf-8"
#: metadata strings round-trip losslessly even when they are not valid UTF-8
_ERRORS: Final = "surrogateescape"


@dataclass(slots=True)
class Frame:
    """One Motan2 message (request or response).

    ``metadata`` is ordered as on the wire. ``body`` is kept as bytes: nothing here
    deserializes it.
    """

    flags: int
    status: int
    serialization: int
    request_id: int
    metadata: dict[str, str]
    body: bytes = b""
    version: int = VERSION_V2
    #: the metadata bytes as they arrived (``b""`` for frames built locally); used by
    #: :func:`motanmesh.wire.passthrough.forward` to avoid re-encoding unchanged metadata
    raw_metadata: bytes = b""
    #: where a received frame came from (set by the transport; not part of the wire format)
    origin: str = ""

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_RESPONSE)

    @property
    def is_request(self) -> bool:
        return not self.flags & FLAG_RESPONSE

    @property
    def is_heartbeat(self) -> bool:
        return bool(self.flags & FLAG_HEARTBEAT)

    @property
    def is_gzip(self) -> bool:
        return bool(self.flags & FLAG_GZIP)

    @property
    def is_oneway(self) -> bool:
        return bool(self.flags & FLAG_ONEWAY)

    @property
    def is_proxy(self) -> bool:
        return bool(self.flags & FLAG_PROXY)

    @property
    def is_exception(self) -> bool:
        return self.status == STATUS_EXCEPTION

    def encode(self) -> bytes:
        return encode_frame(self)


# --------------------------------------------------------------------------- metadata


def encode_metadata(metadata: dict[str, str]) -> bytes:
    """Encode pairs as motan-go does: skip empty keys or values and strings holding LF;
    no trailing LF."""
    parts: list[str] = []
    append = parts.append
    for k, v in metadata.items():
        if not k or not v or "\n" in k or "\n" in v:
            continue
        append(k)
        append(v)
    return "\n".join(parts).encode(_ENC, _ERRORS)


def decode_metadata(raw: bytes | bytearray | memoryview, *, strict: bool = True) -> dict[str, str]:
    """Decode a metadata section.

    Empty values are accepted; one trailing LF is accepted; the last duplicate wins. An
    unpaired trailing key or an empty key raises :class:`MetadataError` when ``strict``
    (motan-go's behaviour) and is dropped otherwise (Java's).
    """
    if not raw:
        return {}
    fields = bytes(raw).decode(_ENC, _ERRORS).split("\n")
    if len(fields) & 1:
        if fields[-1] == "":
            fields.pop()
        elif strict:
            raise MetadataError(f"decode meta data fail: key {fields[-1]!r} has no value")
        else:
            fields.pop()
    it = iter(fields)
    meta = dict(zip(it, it))  # noqa: B905 - the length is even here
    if "" in meta:
        if strict:
            raise MetadataError("decode meta data fail: empty metadata key")
        del meta[""]
    return meta


# --------------------------------------------------------------------------- frames


def encode_frame(frame: Frame) -> bytes:
    """The exact bytes of ``frame``."""
    meta = encode_metadata(frame.metadata) if frame.metadata else b""
    body = frame.body
    return b"".join(
        (
            HEAD.pack(
                MAGIC,
                frame.flags & 0x1F,
                (frame.version << 3) | (frame.status & 0x07),
                (frame.serialization & 0x1F) << 3,
                frame.request_id,
                len(meta),
            ),
            meta,
            _U32.pack(len(body)),
            body,
        )
    )


def check_head(data: bytes | bytearray | memoryview, max_content_length: int) -> tuple[int, int]:
    """Validate the first 17 bytes of a Motan2 frame; return ``(version, metadata_length)``.

    Raises the typed errors for bad magic, unknown version, and an oversized metadata length
    (the latter carrying the request id so a server may answer it).
    """
    magic, _flags, vs, _ser, rid, mlen = HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise BadMagicError(bytes(data[:2]))
    version = vs >> 3
    if version != VERSION_V2:
        raise UnsupportedVersionError(version)
    if mlen > max_content_length:
        raise FrameTooLargeError("metadata", mlen, max_content_length, rid)
    return version, mlen


def parse_frame(
    data: bytes | bytearray | memoryview,
    *,
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH,
    strict_metadata: bool = True,
) -> Frame:
    """Decode exactly one whole Motan2 frame (trailing bytes are an error)."""
    n = len(data)
    if n < HEAD.size:
        raise TruncatedError("frame header", HEAD.size, n)
    _version, mlen = check_head(data, max_content_length)
    body_len_at = HEAD.size + mlen
    if n < body_len_at + 4:
        raise TruncatedError("frame metadata", body_len_at + 4, n)
    (blen,) = _U32.unpack_from(data, body_len_at)
    if blen > max_content_length:
        rid = _U64.unpack_from(data, 5)[0]
        raise FrameTooLargeError("body", blen, max_content_length, rid)
    end = body_len_at + 4 + blen
    if n != end:
        if n < end:
            raise TruncatedError("frame body", end, n)
        raise TruncatedError("frame (trailing bytes)", end, n)
    return frame_from_parts(data, mlen, body_len_at + 4, end, strict_metadata)


def frame_from_parts(
    data: bytes | bytearray | memoryview,
    mlen: int,
    body_start: int,
    body_end: int,
    strict_metadata: bool = True,
    base: int = 0,
) -> Frame:
    """Build a :class:`Frame` from a validated buffer region starting at ``base``."""
    _m, flags, vs, ser, rid, _ml = HEAD.unpack_from(data, base)
    if mlen:
        meta_start = base + 17
        raw_meta = bytes(data[meta_start : meta_start + mlen])
        meta = decode_metadata(raw_meta, strict=strict_metadata)
    else:
        raw_meta = b""
        meta = {}
    return Frame(
        flags,
        vs & 0x07,
        ser >> 3,
        rid,
        meta,
        bytes(data[body_start:body_end]),
        vs >> 3,
        raw_meta,
    )


# --------------------------------------------------------------------------- builders


def request_frame(
    request_id: int,
    metadata: dict[str, str],
    body: bytes = b"",
    *,
    serialization: int = 6,
    proxy: bool = False,
    oneway: bool = False,
) -> Frame:
    flags = (FLAG_PROXY if proxy else 0) | (FLAG_ONEWAY if oneway else 0)
    return Frame(flags, STATUS_NORMAL, serialization, request_id, metadata, body)


def response_frame(
    request_id: int,
    metadata: dict[str, str],
    body: bytes = b"",
    *,
    serialization: int = 6,
    proxy: bool = False,
) -> Frame:
    flags = FLAG_RESPONSE | (FLAG_PROXY if proxy else 0)
    return Frame(flags, STATUS_NORMAL, serialization, request_id, metadata, body)


def _go_json_string(s: str) -> str:
    # Go's encoding/json escapes <, > and & (and U+2028/U+2029) inside strings.
    out = json.dumps(s, ensure_ascii=False)
    if any(c in out for c in "<>&\u2028\u2029"):
        out = (
            out.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    return out


def exception_json(errcode: int, errmsg: str, errtype: int) -> str:
    """The ``M_e`` value as motan-go writes it: ``{"errcode":N,"errmsg":"...","errtype":T}``."""
    return (
        f'{{"errcode":{int(errcode)},"errmsg":{_go_json_string(errmsg)},"errtype":{int(errtype)}}}'
    )


@dataclass(frozen=True, slots=True)
class RemoteException:
    """The parsed content of ``M_e``."""

    errcode: int
    errmsg: str
    errtype: int


def parse_exception(value: str) -> RemoteException:
    """Parse an ``M_e`` value. Anything that is not the expected JSON object becomes a
    service exception carrying the raw text (what Java does)."""
    try:
        obj = json.loads(value)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        return RemoteException(
            500, "default remote exception. remote err msg:" + value, ERRTYPE_SERVICE
        )
    code = obj.get("errcode", 500)
    etype = obj.get("errtype", ERRTYPE_SERVICE)
    msg = obj.get("errmsg", "")
    return RemoteException(
        code if isinstance(code, int) and not isinstance(code, bool) else 500,
        msg if isinstance(msg, str) else json.dumps(msg),
        etype if isinstance(etype, int) and not isinstance(etype, bool) else ERRTYPE_SERVICE,
    )


def exception_frame(
    request_id: int,
    errcode: int,
    errmsg: str,
    errtype: int = ERRTYPE_SERVICE,
    *,
    serialization: int = 6,
    proxy: bool = False,
    metadata: dict[str, str] | None = None,
) -> Frame:
    """An exception response: status 1, ``M_e`` JSON, empty body."""
    meta = {M_EXCEPTION: exception_json(errcode, errmsg, errtype)}
    if metadata:
        meta.update(metadata)
    flags = FLAG_RESPONSE | (FLAG_PROXY if proxy else 0)
    return Frame(flags, STATUS_EXCEPTION, serialization, request_id, meta, b"")


# Heartbeats (spec 3): 21 bytes, no metadata, no body.
_HB_GO_REQUEST: Final = FLAG_HEARTBEAT | FLAG_PROXY
_HB_GO_RESPONSE: Final = FLAG_HEARTBEAT | FLAG_PROXY | FLAG_RESPONSE
_HB_JAVA_REQUEST: Final = FLAG_HEARTBEAT
_HB_JAVA_RESPONSE: Final = FLAG_HEARTBEAT | FLAG_RESPONSE
_HB_TAIL: Final = b"\x00\x00\x00\x00"


def heartbeat_request(request_id: int, *, style: str = "go") -> bytes:
    """A heartbeat request in motan-go (``0x12 .. 0x30``) or Java (``0x10 .. 0x08``) form."""
    if style == "go":
        return HEAD.pack(MAGIC, _HB_GO_REQUEST, 0x08, 0x30, request_id, 0) + _HB_TAIL
    if style == "java":
        return HEAD.pack(MAGIC, _HB_JAVA_REQUEST, 0x08, 0x08, request_id, 0) + _HB_TAIL
    raise ValueError(f"unknown heartbeat style {style!r}")


def heartbeat_response(request_id: int, *, style: str = "go") -> bytes:
    """A heartbeat response. Servers answer every heartbeat in the motan-go form."""
    if style == "go":
        return HEAD.pack(MAGIC, _HB_GO_RESPONSE, 0x08, 0x30, request_id, 0) + _HB_TAIL
    if style == "java":
        return HEAD.pack(MAGIC, _HB_JAVA_RESPONSE, 0x08, 0x08, request_id, 0) + _HB_TAIL
    raise ValueError(f"unknown heartbeat style {style!r}")


def answer_heartbeat(frame: Frame) -> bytes:
    """What a motan-go server sends back for any heartbeat-flagged request."""
    return heartbeat_response(frame.request_id)


# --------------------------------------------------------------------------- gzip (spec 8)


def gunzip_body(frame: Frame, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> None:
    """Decompress a gzip-flagged body in place and clear the flag.

    The output is bounded by ``max_content_length``; a body that does not gunzip or that
    inflates past the limit raises :class:`CompressionError`.
    """
    if not frame.flags & FLAG_GZIP:
        return
    if frame.body:
        frame.body = gunzip(frame.body, max_content_length)
    frame.flags &= ~FLAG_GZIP


def gunzip(data: bytes, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> bytes:
    d = zlib.decompressobj(wbits=31)
    try:
        out = d.decompress(data, max_content_length + 1)
    except zlib.error as e:
        raise CompressionError(f"gunzip failed: {e}") from e
    if len(out) > max_content_length:
        raise CompressionError(f"gunzipped body over the limit of {max_content_length} bytes")
    if not d.eof:
        raise CompressionError("gunzip failed: truncated gzip stream")
    return out


def gzip_body(frame: Frame, min_gzip_size: int) -> None:
    """Compress the body when a threshold is set and ``len(body) > threshold``: never a
    heartbeat, an empty body, or a body that is already compressed."""
    if (
        min_gzip_size <= 0
        or len(frame.body) <= min_gzip_size
        or frame.flags & (FLAG_GZIP | FLAG_HEARTBEAT)
    ):
        return
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    frame.body = c.compress(frame.body) + c.flush()
    frame.flags |= FLAG_GZIP
