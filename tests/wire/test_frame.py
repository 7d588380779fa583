"""Motan2 frames (spec sections 1-3 and 8): layout, metadata rules, errors, heartbeats, gzip,
and property tests over arbitrary frames and arbitrary bytes."""

from __future__ import annotations

import contextlib
import gzip
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motanmesh.wire.errors import (
    BadMagicError,
    CompressionError,
    FrameTooLargeError,
    MetadataError,
    TruncatedError,
    UnsupportedVersionError,
    WireError,
)
from motanmesh.wire.frame import (
    DEFAULT_MAX_CONTENT_LENGTH,
    FLAG_GZIP,
    FLAG_HEARTBEAT,
    FLAG_ONEWAY,
    FLAG_PROXY,
    FLAG_RESPONSE,
    Frame,
    RemoteException,
    answer_heartbeat,
    decode_metadata,
    encode_frame,
    encode_metadata,
    exception_frame,
    exception_json,
    gunzip_body,
    gzip_body,
    heartbeat_request,
    heartbeat_response,
    parse_exception,
    parse_frame,
    request_frame,
    response_frame,
)

PROPERTY = settings(deadline=None, max_examples=300)

# The worked example of spec 1.8 (motan-php calling Hello("world")).
HELLO = bytes.fromhex(
    "f1f10008300000000000000001000000704d5f700a636f6d2e776569626f2e48656c6c6f4d54536572766963650a"
    "4d5f6d0a48656c6c6f0a4d5f670a6d6f74616e2d64656d6f2d7270630a4d5f70700a6d6f74616e320a7265717565"
    "7374496446726f6d436c69656e740a310a53455249414c495a4154494f4e0a73696d706c650000000a0100000005"
    "776f726c64"
)


def raw_frame(
    meta: bytes = b"",
    body: bytes = b"",
    *,
    flags: int = 0,
    vs: int = 0x08,
    ser: int = 0x30,
    rid: int = 1,
    magic: bytes = b"\xf1\xf1",
) -> bytes:
    """Frame bytes assembled by hand, independent of the encoder under test."""
    return (
        magic
        + bytes((flags, vs, ser))
        + struct.pack(">QI", rid, len(meta))
        + meta
        + struct.pack(">I", len(body))
        + body
    )


# --------------------------------------------------------------------------- layout


def test_worked_example_parses() -> None:
    f = parse_frame(HELLO)
    assert (f.flags, f.version, f.status, f.serialization, f.request_id) == (0, 1, 0, 6, 1)
    assert list(f.metadata) == ["M_p", "M_m", "M_g", "M_pp", "requestIdFromClient", "SERIALIZATION"]
    assert f.body == bytes.fromhex("0100000005776f726c64")
    assert f.raw_metadata == HELLO[17 : 17 + 0x70]


def test_builders_set_the_header_bytes() -> None:
    req = request_frame(7, {"M_p": "svc"}, b"x", serialization=8, proxy=True, oneway=True)
    raw = encode_frame(req)
    assert raw[:5] == bytes((0xF1, 0xF1, FLAG_PROXY | FLAG_ONEWAY, 0x08, 8 << 3))
    assert req.is_request and req.is_proxy and req.is_oneway and not req.is_response
    resp = response_frame(7, {"M_pt": "1"}, b"y")
    assert encode_frame(resp)[2:5] == b"\x01\x08\x30"
    assert resp.is_response and not resp.is_proxy
    assert encode_frame(response_frame(7, {}, proxy=True))[2] == 0x03


def test_smallest_frame_is_21_bytes() -> None:
    f = Frame(0, 0, 6, 0, {})
    raw = encode_frame(f)
    assert len(raw) == 21
    assert raw == raw_frame(rid=0)
    assert parse_frame(raw) == Frame(0, 0, 6, 0, {}, b"", 1, b"")


def test_request_id_is_an_opaque_u64() -> None:
    for rid in (0, 1, 2**63 - 1, 2**63, 2**64 - 1):
        raw = encode_frame(request_frame(rid, {}))
        assert raw[5:13] == rid.to_bytes(8, "big")
        assert parse_frame(raw).request_id == rid


def test_reserved_flag_bits_are_written_zero_and_ignored_on_read() -> None:
    raw = raw_frame(flags=0xE1)
    f = parse_frame(raw)
    assert f.is_response
    assert encode_frame(f)[2] == 0x01


def test_status_one_is_an_exception() -> None:
    f = parse_frame(raw_frame(flags=1, vs=0x09))
    assert f.status == 1 and f.is_exception


def test_parse_refuses_bad_magic() -> None:
    with pytest.raises(BadMagicError) as ei:
        parse_frame(raw_frame(magic=b"\xf1\xf2"))
    assert ei.value.got == b"\xf1\xf2"


@pytest.mark.parametrize("vs", [0x00, 0x01, 0x10, 0x18, 0xF8, 0xFF])
def test_parse_refuses_other_versions(vs: int) -> None:
    with pytest.raises(UnsupportedVersionError) as ei:
        parse_frame(raw_frame(vs=vs))
    assert ei.value.version == vs >> 3


def test_parse_refuses_truncation_and_trailing_bytes() -> None:
    whole = HELLO
    for cut in (0, 1, 12, 16, 17, 100, 17 + 0x70, 17 + 0x70 + 3, len(whole) - 1):
        with pytest.raises(TruncatedError):
            parse_frame(whole[:cut])
    with pytest.raises(TruncatedError) as ei:
        parse_frame(whole + b"\x00")
    assert "trailing" in str(ei.value)


def test_parse_checks_each_length_against_the_limit() -> None:
    big_meta = raw_frame(b"k\n" + b"v" * 28, rid=2**63 + 5)
    with pytest.raises(FrameTooLargeError) as ei:
        parse_frame(big_meta, max_content_length=29)
    assert (ei.value.part, ei.value.length, ei.value.limit) == ("metadata", 30, 29)
    assert ei.value.request_id == 2**63 + 5
    assert parse_frame(big_meta, max_content_length=30).metadata == {"k": "v" * 28}

    big_body = raw_frame(b"", b"x" * 31, rid=9)
    with pytest.raises(FrameTooLargeError) as ei:
        parse_frame(big_body, max_content_length=30)
    assert (ei.value.part, ei.value.request_id) == ("body", 9)
    assert parse_frame(big_body, max_content_length=31).body == b"x" * 31
    assert DEFAULT_MAX_CONTENT_LENGTH == 10 * 1024 * 1024


def test_oversized_length_is_refused_before_the_bytes_exist() -> None:
    head = raw_frame()[:13] + struct.pack(">I", DEFAULT_MAX_CONTENT_LENGTH + 1)
    with pytest.raises(FrameTooLargeError):
        parse_frame(head + b"\x00\x00\x00\x00")


def test_parse_accepts_buffer_types() -> None:
    assert parse_frame(bytearray(HELLO)) == parse_frame(HELLO)
    assert parse_frame(memoryview(HELLO)) == parse_frame(HELLO)


# --------------------------------------------------------------------------- metadata


def test_metadata_encoder_follows_motan_go() -> None:
    meta = {"a": "1", "": "x", "b": "", "c\n": "y", "d": "z\n", "e": "2"}
    assert encode_metadata(meta) == b"a\n1\ne\n2"
    assert encode_metadata({}) == b""
    assert encode_metadata({"k": ""}) == b""
    assert encode_metadata({"z": "1", "a": "2"}) == b"z\n1\na\n2"  # insertion order


def test_metadata_decoder_rules() -> None:
    assert decode_metadata(b"") == {}
    assert decode_metadata(b"a\n1\nb\n2") == {"a": "1", "b": "2"}
    # empty values accepted, also as the final value (motan-php's empty M_g)
    assert decode_metadata(b"a\n\nb\n2") == {"a": "", "b": "2"}
    assert decode_metadata(b"a\n1\nM_g\n") == {"a": "1", "M_g": ""}
    # one trailing LF after a value is accepted
    assert decode_metadata(b"a\n1\n") == {"a": "1"}
    # the last duplicate wins
    assert decode_metadata(b"a\n1\nb\n2\na\n3") == {"a": "3", "b": "2"}
    assert decode_metadata(memoryview(b"a\n1")) == {"a": "1"}


def test_unpaired_key_is_strict_error_or_dropped() -> None:
    with pytest.raises(MetadataError):
        decode_metadata(b"a\n1\nlonely")
    assert decode_metadata(b"a\n1\nlonely", strict=False) == {"a": "1"}
    with pytest.raises(MetadataError):
        decode_metadata(b"lonely")


def test_empty_key_is_strict_error_or_dropped() -> None:
    with pytest.raises(MetadataError):
        decode_metadata(b"\nv\na\n1")
    assert decode_metadata(b"\nv\na\n1", strict=False) == {"a": "1"}
    with pytest.raises(MetadataError):
        parse_frame(raw_frame(b"\nv"))
    assert parse_frame(raw_frame(b"\nv\nk\nw"), strict_metadata=False).metadata == {"k": "w"}


def test_metadata_that_is_not_utf8_round_trips() -> None:
    raw = b"k\xff\n\xc3(\xfe"
    meta = decode_metadata(raw)
    assert meta == {"k\udcff": "\udcc3(\udcfe"}
    assert encode_metadata(meta) == raw
    frame = parse_frame(raw_frame(raw))
    assert encode_frame(frame) == raw_frame(raw)


def test_utf8_metadata() -> None:
    meta = {"名字": "值 ✓"}
    assert decode_metadata(encode_metadata(meta)) == meta
    assert encode_metadata(meta) == "名字\n值 ✓".encode()


# --------------------------------------------------------------------------- exceptions


def test_exception_json_is_go_shaped() -> None:
    assert exception_json(500, "boom", 1) == '{"errcode":500,"errmsg":"boom","errtype":1}'
    # Go's encoding/json escapes <, > and & and the JS line separators
    assert exception_json(400, 'a<b>&"c"\n\u2028é', 1) == (
        '{"errcode":400,"errmsg":"a\\u003cb\\u003e\\u0026\\"c\\"\\n\\u2028é","errtype":1}'
    )


def test_parse_exception_reads_any_key_order_and_escaping() -> None:
    php = '{"errmsg":"a\\/b","errtype":2,"errcode":30001}'
    assert parse_exception(php) == RemoteException(30001, "a/b", 2)
    go = exception_json(404, "x<y", 1)
    assert parse_exception(go) == RemoteException(404, "x<y", 1)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("not json", RemoteException(500, "default remote exception. remote err msg:not json", 1)),
        ("[1]", RemoteException(500, "default remote exception. remote err msg:[1]", 1)),
        ("{}", RemoteException(500, "", 1)),
        ('{"errcode":true,"errtype":"x","errmsg":5}', RemoteException(500, "5", 1)),
        ('{"errcode":503,"errmsg":"m","errtype":0}', RemoteException(503, "m", 0)),
    ],
)
def test_parse_exception_is_forgiving(raw: str, expected: RemoteException) -> None:
    assert parse_exception(raw) == expected


def test_exception_frame_shape() -> None:
    f = exception_frame(42, 500, "deserialize fail", 1)
    raw = encode_frame(f)
    assert raw[2:5] == b"\x01\x09\x30"
    assert f.is_exception and f.body == b""
    assert list(f.metadata) == ["M_e"]
    back = parse_frame(raw)
    assert parse_exception(back.metadata["M_e"]) == RemoteException(500, "deserialize fail", 1)
    relayed = exception_frame(1, 404, "x", proxy=True, serialization=8, metadata={"M_pt": "3"})
    assert encode_frame(relayed)[2:5] == b"\x03\x09\x40"
    assert list(relayed.metadata) == ["M_e", "M_pt"]


# --------------------------------------------------------------------------- heartbeats


def test_heartbeat_bytes() -> None:
    assert heartbeat_request(100).hex() == "f1f112083000000000000000640000000000000000"
    assert heartbeat_response(100).hex() == "f1f113083000000000000000640000000000000000"
    assert heartbeat_request(101, style="java").hex() == (
        "f1f110080800000000000000650000000000000000"
    )
    assert heartbeat_response(101, style="java").hex() == (
        "f1f111080800000000000000650000000000000000"
    )
    for rid in (0, 2**64 - 1):
        f = parse_frame(heartbeat_request(rid))
        assert f.is_heartbeat and f.is_request and f.request_id == rid
        assert parse_frame(heartbeat_response(rid, style="java")).is_response


def test_heartbeat_style_must_be_known() -> None:
    with pytest.raises(ValueError, match="style"):
        heartbeat_request(1, style="php")
    with pytest.raises(ValueError, match="style"):
        heartbeat_response(1, style="php")


def test_every_heartbeat_is_answered_in_go_form() -> None:
    for req in (heartbeat_request(9), heartbeat_request(9, style="java")):
        assert answer_heartbeat(parse_frame(req)) == heartbeat_response(9)
    # only the heartbeat bit matters
    odd = parse_frame(raw_frame(b"k\nv", b"body", flags=FLAG_HEARTBEAT | FLAG_ONEWAY, rid=9))
    assert answer_heartbeat(odd) == heartbeat_response(9)


# --------------------------------------------------------------------------- gzip


def _frame(body: bytes, flags: int = 0) -> Frame:
    return Frame(flags, 0, 6, 1, {}, body)


def test_gzip_only_strictly_over_the_threshold() -> None:
    body = b"a" * 100
    f = _frame(body)
    gzip_body(f, 100)
    assert f.body == body and not f.is_gzip
    gzip_body(f, 0)
    assert f.body == body and not f.is_gzip
    gzip_body(f, -1)
    assert not f.is_gzip
    gzip_body(f, 99)
    assert f.is_gzip and f.flags == FLAG_GZIP
    assert f.body[:2] == b"\x1f\x8b"  # gzip, not zlib or raw deflate
    assert gzip.decompress(f.body) == body


def test_gzip_never_touches_heartbeat_empty_or_compressed_bodies() -> None:
    hb = _frame(b"x" * 50, FLAG_HEARTBEAT)
    gzip_body(hb, 1)
    assert hb.body == b"x" * 50 and hb.flags == FLAG_HEARTBEAT
    empty = _frame(b"")
    gzip_body(empty, 1)
    assert empty.flags == 0 and empty.body == b""
    already = _frame(b"y" * 50, FLAG_GZIP)
    gzip_body(already, 1)
    assert already.body == b"y" * 50


def test_gunzip_restores_the_body_and_clears_the_flag() -> None:
    body = bytes(range(256)) * 8
    f = _frame(body, FLAG_RESPONSE)
    gzip_body(f, 10)
    wire = parse_frame(encode_frame(f))
    assert wire.is_gzip and len(wire.body) < len(body)
    gunzip_body(wire)
    assert wire.body == body and wire.flags == FLAG_RESPONSE
    # a Java-written (default level) body reads the same
    java = _frame(gzip.compress(body, 6), FLAG_GZIP)
    gunzip_body(java)
    assert java.body == body and not java.is_gzip


def test_gunzip_of_unflagged_or_empty_body() -> None:
    plain = _frame(b"\x1f\x8bnot really")
    gunzip_body(plain)
    assert plain.body == b"\x1f\x8bnot really"
    empty = _frame(b"", FLAG_GZIP)
    gunzip_body(empty)
    assert empty.body == b"" and empty.flags == 0


def test_gzip_bomb_over_the_limit_is_refused() -> None:
    bomb = gzip.compress(b"\x00" * (1 << 20))
    assert len(bomb) < 2000
    f = _frame(bomb, FLAG_GZIP)
    with pytest.raises(CompressionError, match="limit"):
        gunzip_body(f, max_content_length=(1 << 20) - 1)
    ok = _frame(bomb, FLAG_GZIP)
    gunzip_body(ok, max_content_length=1 << 20)
    assert len(ok.body) == 1 << 20


@pytest.mark.parametrize(
    "body",
    [
        b"not gzip at all",
        gzip.compress(b"hello world" * 10)[:-12],  # truncated stream
        zlib.compress(b"zlib is not gzip"),
        b"\x1f\x8b\x08\x00" + b"\xff" * 20,
    ],
)
def test_corrupt_gzip_is_refused(body: bytes) -> None:
    with pytest.raises(CompressionError):
        gunzip_body(_frame(body, FLAG_GZIP))


# --------------------------------------------------------------------------- properties

_meta_text = st.text(st.characters(codec="utf-8", exclude_characters="\n"), min_size=1, max_size=20)
frames = st.builds(
    Frame,
    flags=st.integers(0, 0x1F),
    status=st.integers(0, 7),
    serialization=st.integers(0, 31),
    request_id=st.integers(0, 2**64 - 1),
    metadata=st.dictionaries(_meta_text, _meta_text, max_size=8),
    body=st.binary(max_size=4096),
)


@PROPERTY
@given(frames)
def test_round_trip_of_arbitrary_frames(frame: Frame) -> None:
    raw = encode_frame(frame)
    back = parse_frame(raw)
    assert (back.flags, back.status, back.serialization, back.request_id) == (
        frame.flags,
        frame.status,
        frame.serialization,
        frame.request_id,
    )
    assert list(back.metadata.items()) == list(frame.metadata.items())
    assert back.body == frame.body
    assert back.version == 1
    assert encode_frame(back) == raw


@PROPERTY
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_wire_errors(data: bytes) -> None:
    for strict in (True, False):
        with contextlib.suppress(WireError):
            parse_frame(data, max_content_length=1000, strict_metadata=strict)


@PROPERTY
@given(st.binary(max_size=200), st.binary(max_size=64), st.integers(0, 255), st.integers(0, 255))
def test_plausible_frames_with_garbage_metadata_only_raise_wire_errors(
    meta: bytes, body: bytes, flags: int, vs: int
) -> None:
    raw = raw_frame(meta, body, flags=flags, vs=vs)
    try:
        f = parse_frame(raw)
    except WireError:
        return
    assert f.body == body and f.raw_metadata == meta


@PROPERTY
@given(frames)
def test_every_truncation_raises_truncated(frame: Frame) -> None:
    raw = encode_frame(frame)
    (mlen,) = struct.unpack_from(">I", raw, 13)
    # every cut through the header and metadata, then a sample of cuts through the body
    cuts = {*range(min(len(raw), 21 + mlen + 4)), *range(0, len(raw), 61), len(raw) - 1}
    for cut in sorted(cuts):
        with pytest.raises(TruncatedError):
            parse_frame(raw[:cut])
