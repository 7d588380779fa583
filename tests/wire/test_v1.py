"""Motan v1 on the Motan2 port (spec section 7): framing, request headers, heartbeats,
exception answers, and v1/v2 frames sharing one stream."""

from __future__ import annotations

import contextlib
import gzip
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motanmesh.wire.decoder import FrameDecoder
from motanmesh.wire.errors import V1Error, WireError
from motanmesh.wire.frame import Frame, encode_frame, heartbeat_request
from motanmesh.wire.v1 import (
    HEARTBEAT_DESC,
    HEARTBEAT_METHOD,
    HEARTBEAT_SERVICE,
    V1Frame,
    V1Request,
    is_v1_heartbeat_response,
    parse_v1_frame,
    parse_v1_request,
    v1_exception_response,
    v1_heartbeat_request,
    v1_heartbeat_response,
)

from .test_vectors_frames import V1_HEARTBEAT, all_frame_bytes

PROPERTY = settings(deadline=None, max_examples=200)
VECTOR = bytes.fromhex(V1_HEARTBEAT["hex"])
VECTOR_RID = int(V1_HEARTBEAT["logical"]["outer"]["request_id"])

# Java object-serialization pieces, written out by hand.
STREAM_HEAD = b"\xac\xed\x00\x05"
BYTE_ARRAY_CLASS = b"\x72\x00\x02[B" + bytes.fromhex("acf317f8060854e0") + b"\x02\x00\x00\x78\x70"


def utf(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def block(data: bytes) -> bytes:
    if len(data) < 256:
        return b"\x77" + bytes((len(data),)) + data
    return b"\x7a" + struct.pack(">I", len(data)) + data


def byte_array(data: bytes, *, first: bool) -> bytes:
    desc = BYTE_ARRAY_CLASS if first else b"\x71\x00\x7e\x00\x00"  # new class or a handle
    return b"\x75" + desc + struct.pack(">I", len(data)) + data


def envelope(
    stream: bytes, rid: int, *, outer_type: int = 0, version: int = 1, flag: int = 0
) -> bytes:
    return (
        struct.pack(">HBBQI", 0xF1F1, 0, outer_type, rid, len(stream) + 16)
        + struct.pack(">HBBQI", 0xF0F0, version, flag, rid, len(stream))
        + stream
    )


def java_request(
    rid: int, attachments: dict[str, str], args: list[bytes | None], *, compress: bool = False
) -> bytes:
    """A v1 request as Java's DefaultRpcCodec writes it (v1-compress when ``compress``)."""
    names = utf("com.weibo.Demo") + utf("echo") + utf("java.lang.String,byte[]")
    objects = b""
    first = True
    for a in args:
        if a is None:
            objects += b"\x70"
        else:
            objects += byte_array(a, first=first)
            first = False
    count = struct.pack(">h" if compress else ">i", len(attachments))
    tail = count + b"".join(utf(k) + utf(v) for k, v in attachments.items())
    stream = STREAM_HEAD + block(names) + objects + block(tail)
    if compress:
        return envelope(gzip.compress(stream), rid, version=2)
    return envelope(stream, rid)


# --------------------------------------------------------------------------- heartbeats


def test_vector_heartbeat_request_decodes() -> None:
    frame = parse_v1_frame(VECTOR)
    assert (frame.request_id, frame.outer_type, frame.inner_version, frame.flag) == (
        VECTOR_RID,
        0,
        1,
        0,
    )
    assert frame.is_request
    req = parse_v1_request(frame)
    assert req == V1Request(HEARTBEAT_SERVICE, HEARTBEAT_METHOD, HEARTBEAT_DESC, {}, 0)
    assert req.is_heartbeat
    assert len(frame.raw) == 94


@pytest.mark.parametrize("rid", [VECTOR_RID, 0, 1, 2**64 - 1])
def test_heartbeat_request_is_the_template_with_the_id_patched(rid: int) -> None:
    expected = bytearray(VECTOR)
    expected[4:12] = rid.to_bytes(8, "big")
    expected[20:28] = rid.to_bytes(8, "big")
    assert v1_heartbeat_request(rid) == bytes(expected)


def test_heartbeat_response() -> None:
    raw = v1_heartbeat_response(77)
    assert len(raw) == 97
    frame = parse_v1_frame(raw)
    assert (frame.request_id, frame.outer_type, frame.flag) == (77, 1, 1)
    assert raw[20:28] == (77).to_bytes(8, "big")
    assert not frame.is_request
    assert is_v1_heartbeat_response(frame)
    assert raw.endswith(bytes.fromhex("09686561727462656174"))
    assert b"java.lang.String" in raw
    assert not is_v1_heartbeat_response(parse_v1_frame(VECTOR))
    with pytest.raises(V1Error, match="not a request"):
        parse_v1_request(frame)


def test_exception_response() -> None:
    raw = v1_exception_response(5, "decode v1 request fail")
    frame = parse_v1_frame(raw)
    assert (frame.request_id, frame.outer_type, frame.flag) == (5, 1, 0x05)
    assert b"com.weibo.api.motan.exception.MotanServiceException" in raw
    assert b"decode v1 request fail" in raw
    assert not is_v1_heartbeat_response(frame)
    long_msg = "x" * 2000
    assert parse_v1_frame(v1_exception_response(6, long_msg)).flag == 0x05


# --------------------------------------------------------------------------- requests


def test_hand_built_request_with_attachments_and_byte_array_arguments() -> None:
    attachments = {"group": "g1", "application": "app", "名": "值"}
    raw = java_request(41, attachments, [b"\x01\x02hessian", None, b"second"])
    frame = parse_v1_frame(raw)
    req = parse_v1_request(frame)
    assert req.service == "com.weibo.Demo"
    assert req.method == "echo"
    assert req.param_desc == "java.lang.String,byte[]"
    assert req.attachments == attachments
    assert req.arg_count == 3
    assert not req.is_heartbeat


def test_request_without_arguments_keeps_everything_in_one_block() -> None:
    req = parse_v1_request(parse_v1_frame(java_request(1, {"k": "v"}, [])))
    assert (req.arg_count, req.attachments) == (0, {"k": "v"})


def test_block_data_split_over_several_blocks() -> None:
    names = utf("svc") + utf("m") + utf("d") + struct.pack(">i", 1) + utf("k") + utf("v" * 300)
    stream = STREAM_HEAD + block(names[:5]) + block(names[5:20]) + block(names[20:])
    req = parse_v1_request(parse_v1_frame(envelope(stream, 3)))
    assert (req.service, req.method, req.param_desc) == ("svc", "m", "d")
    assert req.attachments == {"k": "v" * 300}


def test_v1_compress_gzipped_request() -> None:
    raw = java_request(8, {"a": "b"}, [b"arg"], compress=True)
    frame = parse_v1_frame(raw)
    assert frame.inner_version == 2
    assert raw[32:34] == b"\x1f\x8b"
    req = parse_v1_request(frame)
    assert (req.service, req.attachments, req.arg_count) == ("com.weibo.Demo", {"a": "b"}, 1)


def test_v1_compress_method_signature() -> None:
    stream = STREAM_HEAD + block(utf("1") + utf("a1b2c3") + struct.pack(">h", 0))
    req = parse_v1_request(parse_v1_frame(envelope(stream, 2, version=2)))
    assert req.method == "a1b2c3"
    assert req.attachments == {}


# --------------------------------------------------------------------------- malformed


def test_bad_inner_magic() -> None:
    raw = bytearray(VECTOR)
    raw[16:18] = b"\xf1\xf1"
    with pytest.raises(V1Error, match="inner magic"):
        parse_v1_frame(bytes(raw))


def test_inner_length_mismatch() -> None:
    raw = bytearray(VECTOR)
    raw[28:32] = struct.pack(">I", 61)
    with pytest.raises(V1Error, match="inner length"):
        parse_v1_frame(bytes(raw))
    with pytest.raises(V1Error):
        parse_v1_frame(VECTOR[:31])


@pytest.mark.parametrize(
    "stream",
    [
        b"\xac\xed",  # cut inside the stream header
        b"\xac\xed\x00\x06" + block(utf("s")),  # wrong stream version
        STREAM_HEAD,  # no block at all
        STREAM_HEAD + b"\x73",  # an object where block data must be
        STREAM_HEAD + block(utf("svc") + utf("m"))[:-1],  # cut inside a string
        STREAM_HEAD + block(utf("svc") + utf("m") + utf("d")),  # no attachment count
        STREAM_HEAD + block(utf("svc") + utf("m") + utf("d")) + b"\x75\x72\x00",  # cut array
        STREAM_HEAD + block(utf("svc") + utf("m") + utf("d")) + b"\x74",  # not byte[] or null
        STREAM_HEAD
        + block(utf("svc") + utf("m") + utf("d"))
        + byte_array(b"abc", first=True)[:-2],  # array shorter than its length
        STREAM_HEAD + block(utf("svc") + utf("m") + utf("d") + struct.pack(">i", -1)),
        STREAM_HEAD + block(utf("svc") + utf("m") + utf("d") + struct.pack(">i", 2) + utf("k")),
        STREAM_HEAD + block(b"\x00\x02\xff\xfe" + utf("m") + utf("d") + bytes(4)),  # bad UTF-8
    ],
)
def test_malformed_request_streams(stream: bytes) -> None:
    frame = parse_v1_frame(envelope(stream, 1))
    with pytest.raises(V1Error):
        parse_v1_request(frame)


def test_v1_compress_body_that_does_not_gunzip() -> None:
    frame = parse_v1_frame(envelope(b"\x1f\x8b" + b"\x00" * 20, 1, version=2))
    with pytest.raises(V1Error, match="gunzip"):
        _ = frame.stream


@PROPERTY
@given(st.binary(max_size=200), st.sampled_from([1, 2]))
def test_arbitrary_streams_only_raise_v1_errors(stream: bytes, version: int) -> None:
    frame = parse_v1_frame(envelope(stream, 1, version=version))
    with contextlib.suppress(V1Error):
        parse_v1_request(frame)


@PROPERTY
@given(st.integers(0, 200), st.binary(min_size=1, max_size=8), st.booleans())
def test_corrupted_requests_only_raise_v1_errors(at: int, noise: bytes, compress: bool) -> None:
    raw = java_request(3, {"k": "v", "x": "y"}, [b"abc", None, b"def"], compress=compress)
    at = 32 + at % (len(raw) - 32)
    data = raw[:at] + noise + raw[at + len(noise) :]
    with contextlib.suppress(V1Error):
        parse_v1_request(parse_v1_frame(data))


# --------------------------------------------------------------------------- one stream


def test_v1_and_v2_interleaved_on_one_decoder() -> None:
    v2 = all_frame_bytes()[:6]
    v1 = [
        VECTOR,
        java_request(11, {"a": "1"}, [b"x"]),
        v1_heartbeat_response(12),
        java_request(13, {}, [], compress=True),
        v1_exception_response(14, "no"),
        v1_heartbeat_request(15),
    ]
    parts = [p for pair in zip(v2, v1, strict=True) for p in pair] + [heartbeat_request(16)]
    stream = b"".join(parts)
    for step in (1, 7, 64, len(stream)):
        dec = FrameDecoder()
        out: list[Frame | V1Frame] = []
        for i in range(0, len(stream), step):
            out += dec.feed(stream[i : i + step])
        assert len(out) == len(parts)
        for part, got in zip(parts, out, strict=True):
            if part[3] >> 3 == 0:
                assert isinstance(got, V1Frame) and got.raw == part
            else:
                assert isinstance(got, Frame) and encode_frame(got) == part
    kinds = [
        parse_v1_request(f).is_heartbeat for f in out if isinstance(f, V1Frame) and f.is_request
    ]
    assert kinds == [True, False, False, True]


def test_v1_errors_stop_the_stream() -> None:
    bad = bytearray(java_request(1, {}, []))
    bad[16] = 0
    dec = FrameDecoder()
    with pytest.raises(WireError):
        dec.feed(VECTOR + bytes(bad))
    with pytest.raises(WireError):
        dec.feed(VECTOR)
