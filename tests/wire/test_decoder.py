"""The incremental decoder: any chunking of a stream gives the same frames; limits are checked
before anything oversized is buffered; bad input ends the stream with a typed error."""

from __future__ import annotations

import contextlib
import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motanmesh.wire.decoder import FrameDecoder
from motanmesh.wire.errors import (
    BadMagicError,
    FrameError,
    FrameTooLargeError,
    MetadataError,
    UnsupportedVersionError,
    V1Error,
    WireError,
)
from motanmesh.wire.frame import (
    Frame,
    decode_metadata,
    encode_frame,
    heartbeat_request,
    parse_frame,
)
from motanmesh.wire.v1 import V1Frame, v1_heartbeat_response

from .test_frame import raw_frame
from .test_vectors_frames import V1_HEARTBEAT, all_frame_bytes

PROPERTY = settings(deadline=None, max_examples=200)

FRAMES = all_frame_bytes()
V1 = bytes.fromhex(V1_HEARTBEAT["hex"])
#: every vector frame, with the v1 heartbeat vector in the middle of the Motan2 frames
STREAM_PARTS = [*FRAMES[:10], V1, *FRAMES[10:]]
STREAM = b"".join(STREAM_PARTS)


def _key(f: Frame | V1Frame) -> tuple[object, ...]:
    if isinstance(f, V1Frame):
        return ("v1", f.raw)
    return ("v2", encode_frame(f), f.raw_metadata, f.body)


EXPECTED = [_key(parse_frame(p)) if p is not V1 else ("v1", V1) for p in STREAM_PARTS]


def _feed_all(chunks: list[bytes]) -> list[Frame | V1Frame]:
    dec = FrameDecoder()
    out: list[Frame | V1Frame] = []
    for c in chunks:
        out += dec.feed(c)
    assert dec.buffered == 0
    return out


def test_whole_stream_in_one_chunk() -> None:
    out = _feed_all([STREAM])
    assert [_key(f) for f in out] == EXPECTED
    assert len(out) == len(FRAMES) + 1


def test_one_byte_at_a_time() -> None:
    dec = FrameDecoder()
    out: list[Frame | V1Frame] = []
    for i in range(len(STREAM)):
        out += dec.feed(STREAM[i : i + 1])
    assert [_key(f) for f in out] == EXPECTED
    assert dec.buffered == 0


def test_frame_by_frame_with_buffer_types() -> None:
    dec = FrameDecoder()
    for part, want in zip(STREAM_PARTS, EXPECTED, strict=True):
        for kind in (bytes, bytearray, memoryview):
            got = dec.feed(kind(part))
            assert [_key(f) for f in got] == [want]


def test_buffered_counts_the_incomplete_frame() -> None:
    dec = FrameDecoder()
    first = FRAMES[0]
    assert dec.feed(first + FRAMES[1][:30]) != []
    assert dec.buffered == 30
    assert len(dec.feed(FRAMES[1][30:])) == 1
    assert dec.buffered == 0
    assert dec.feed(b"") == []


@PROPERTY
@given(st.lists(st.integers(0, len(STREAM)), max_size=40))
def test_any_chunking_gives_the_same_frames(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(points)]
    assert [_key(f) for f in _feed_all(chunks)] == EXPECTED


#: frames with large bodies between small ones: a large frame arrives in many reads, small
#: and large ones mixed, which the decoder gathers in two different ways
LARGE_PARTS = [
    FRAMES[0],
    raw_frame(rid=7, meta=b"M_p\nbig", body=bytes(range(256)) * 300),
    FRAMES[1],
    raw_frame(rid=8, meta=b"M_p\nbigger", body=b"\xab" * 300_000),
    FRAMES[2],
]
LARGE_STREAM = b"".join(LARGE_PARTS)


@PROPERTY
@given(st.lists(st.sampled_from([1, 100, 4095, 4096, 5000, 65536, 262144]), min_size=1))
def test_large_frames_in_reads_of_mixed_sizes(sizes: list[int]) -> None:
    chunks: list[bytes] = []
    pos = 0
    for size in itertools.cycle(sizes):
        if pos >= len(LARGE_STREAM):
            break
        chunks.append(LARGE_STREAM[pos : pos + size])
        pos += size
    out = _feed_all(chunks)
    assert [_key(f) for f in out] == [_key(parse_frame(p)) for p in LARGE_PARTS]


def test_buffered_counts_a_large_frame_read_in_pieces() -> None:
    dec = FrameDecoder()
    frame = LARGE_PARTS[3]
    for i, size in enumerate([10, 5000, 3, 70_000, 1]):
        start = sum([10, 5000, 3, 70_000, 1][:i])
        assert dec.feed(frame[start : start + size]) == []
        assert dec.buffered == start + size
    [got] = dec.feed(frame[75_014:])
    assert isinstance(got, Frame)
    assert got.body == b"\xab" * 300_000
    assert dec.buffered == 0


def test_decoded_metadata_matches_decode_metadata_for_vectors() -> None:
    for f in _feed_all([STREAM]):
        if isinstance(f, Frame):
            assert f.metadata == decode_metadata(f.raw_metadata)


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize("rid", [7, 2**64 - 1])
def test_oversized_metadata_refused_after_17_bytes(rid: int) -> None:
    dec = FrameDecoder(max_content_length=1000)
    head = raw_frame(rid=rid)[:13] + struct.pack(">I", 1001)
    for b in head[:-1]:
        assert dec.feed(bytes((b,))) == []
    with pytest.raises(FrameTooLargeError) as ei:
        dec.feed(head[-1:])
    assert (ei.value.part, ei.value.length, ei.value.limit) == ("metadata", 1001, 1000)
    assert ei.value.request_id == rid
    assert dec.buffered == 0


def test_oversized_body_refused_after_the_body_length() -> None:
    dec = FrameDecoder(max_content_length=100)
    meta = b"M_p\nsvc"
    prefix = raw_frame(meta, rid=99)[: 17 + len(meta)] + struct.pack(">I", 101)
    assert len(prefix) == 21 + len(meta)
    assert dec.feed(prefix[:-1]) == []
    assert dec.buffered == len(prefix) - 1
    with pytest.raises(FrameTooLargeError) as ei:
        dec.feed(prefix[-1:])
    assert (ei.value.part, ei.value.request_id) == ("body", 99)
    assert dec.buffered == 0


def test_default_limit_is_ten_mib_and_lengths_at_the_limit_pass() -> None:
    dec = FrameDecoder()
    assert dec.max_content_length == 10 * 1024 * 1024
    with pytest.raises(FrameTooLargeError):
        dec.feed(raw_frame()[:13] + struct.pack(">I", 10 * 1024 * 1024 + 1))
    small = FrameDecoder(max_content_length=5)
    (f,) = small.feed(raw_frame(b"k\nabc", b"12345"))
    assert isinstance(f, Frame) and f.body == b"12345"


def test_frames_before_an_oversized_one_are_kept_on_the_error() -> None:
    dec = FrameDecoder(max_content_length=1000)
    bad = raw_frame(rid=3)[:13] + struct.pack(">I", 5000)
    with pytest.raises(FrameTooLargeError) as ei:
        dec.feed(FRAMES[0] + FRAMES[1] + bad)
    assert [_key(f) for f in ei.value.frames] == EXPECTED[:2]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("garbage", [b"\x00", b"\xf0", b"\xf1\x00", b"GET / HTTP/1.1\r\n"])
def test_bad_magic(garbage: bytes) -> None:
    dec = FrameDecoder()
    with pytest.raises(BadMagicError):
        dec.feed(garbage)
    assert dec.buffered == 0


@pytest.mark.parametrize("byte3", [0x10, 0x18, 0x80, 0xFF])
def test_unsupported_version(byte3: int) -> None:
    dec = FrameDecoder()
    with pytest.raises(UnsupportedVersionError) as ei:
        dec.feed(b"\xf1\xf1\x00" + bytes((byte3,)))
    assert ei.value.version == byte3 >> 3


def test_decoder_refuses_input_after_an_error() -> None:
    dec = FrameDecoder()
    with pytest.raises(BadMagicError):
        dec.feed(b"xx")
    with pytest.raises(FrameError, match="earlier error"):
        dec.feed(FRAMES[0])
    with pytest.raises(FrameError):
        dec.feed(b"")


def test_frames_completed_before_bad_bytes_are_on_the_error() -> None:
    dec = FrameDecoder()
    dec.feed(FRAMES[0][:10])
    with pytest.raises(BadMagicError) as ei:
        dec.feed(FRAMES[0][10:] + FRAMES[1] + V1 + b"\x00\x00\x00\x00")
    assert [_key(f) for f in ei.value.frames] == [EXPECTED[0], EXPECTED[1], ("v1", V1)]
    with pytest.raises(UnsupportedVersionError) as ei2:
        FrameDecoder().feed(FRAMES[2] + b"\xf1\xf1\x00\x10")
    assert [_key(f) for f in ei2.value.frames] == [EXPECTED[2]]


def test_clean_error_has_no_frames() -> None:
    with pytest.raises(BadMagicError) as ei:
        FrameDecoder().feed(b"zz")
    assert ei.value.frames == ()


# --------------------------------------------------------------------------- metadata rules


def _one(meta: bytes, *, strict: bool = True) -> Frame:
    (f,) = FrameDecoder(strict_metadata=strict).feed(raw_frame(meta, b"b"))
    assert isinstance(f, Frame)
    return f


def test_metadata_rules_in_the_decoder() -> None:
    assert _one(b"a\n\nb\n2").metadata == {"a": "", "b": "2"}
    assert _one(b"a\n1\nM_g\n").metadata == {"a": "1", "M_g": ""}
    assert _one(b"a\n1\n").metadata == {"a": "1"}
    assert _one(b"a\n1\na\n2").metadata == {"a": "2"}
    assert _one(b"a\n1\nx", strict=False).metadata == {"a": "1"}
    assert _one(b"\nv\na\n1", strict=False).metadata == {"a": "1"}
    f = _one(b"k\xff\n\xfe")
    assert f.metadata == {"k\udcff": "\udcfe"}
    assert encode_frame(f) == raw_frame(b"k\xff\n\xfe", b"b")


@pytest.mark.parametrize("meta", [b"a\n1\nx", b"x", b"\nv", b"a\n1\n\nv"])
def test_strict_metadata_errors_in_the_decoder(meta: bytes) -> None:
    dec = FrameDecoder()
    with pytest.raises(MetadataError) as ei:
        dec.feed(FRAMES[0] + raw_frame(meta))
    assert [_key(f) for f in ei.value.frames] == [EXPECTED[0]]
    with pytest.raises(FrameError):
        dec.feed(FRAMES[0])


@PROPERTY
@given(st.binary(max_size=60).map(lambda b: b.replace(b"\x00", b"\n")), st.booleans())
def test_decoder_metadata_agrees_with_decode_metadata(meta: bytes, strict: bool) -> None:
    try:
        want: dict[str, str] | None = decode_metadata(meta, strict=strict)
    except MetadataError:
        want = None
    dec = FrameDecoder(strict_metadata=strict)
    if want is None:
        with pytest.raises(MetadataError):
            dec.feed(raw_frame(meta))
    else:
        (f,) = dec.feed(raw_frame(meta))
        assert isinstance(f, Frame)
        assert list(f.metadata.items()) == list(want.items())
        assert f.raw_metadata == meta


# --------------------------------------------------------------------------- properties


@PROPERTY
@given(st.binary(max_size=400), st.integers(1, 64))
def test_arbitrary_bytes_only_raise_wire_errors(data: bytes, step: int) -> None:
    dec = FrameDecoder(max_content_length=300)
    try:
        for i in range(0, len(data), step):
            dec.feed(data[i : i + step])
    except WireError:
        return
    assert dec.buffered <= len(data)


@PROPERTY
@given(
    st.sampled_from([*FRAMES, V1, v1_heartbeat_response(5), heartbeat_request(1)]),
    st.binary(max_size=40),
    st.integers(0, 2000),
)
def test_truncated_or_corrupted_frames_only_raise_wire_errors(
    frame: bytes, tail: bytes, cut: int
) -> None:
    cut %= len(frame) + 1
    for data in (frame[:cut], frame[:cut] + tail, tail + frame[:cut]):
        dec = FrameDecoder(max_content_length=1000)
        try:
            out = dec.feed(data)
        except WireError:
            continue
        assert all(isinstance(f, Frame | V1Frame) for f in out)
        assert dec.buffered <= len(data)


def test_every_truncation_of_every_vector_frame_waits_for_more() -> None:
    for frame in [*FRAMES, V1]:
        for cut in range(len(frame)):
            dec = FrameDecoder()
            assert dec.feed(frame[:cut]) == []
            assert dec.buffered == cut
            out = dec.feed(frame[cut:])
            assert len(out) == 1 and dec.buffered == 0


@PROPERTY
@given(st.binary(min_size=1, max_size=32), st.sampled_from(FRAMES), st.integers(0, 500))
def test_flipped_bytes_in_a_frame_only_raise_wire_errors(
    noise: bytes, frame: bytes, at: int
) -> None:
    at %= len(frame)
    data = frame[:at] + noise + frame[at + len(noise) :]
    dec = FrameDecoder(max_content_length=5000)
    with contextlib.suppress(WireError):
        dec.feed(data)
    with contextlib.suppress(WireError):
        dec.feed(FRAMES[0])


def test_v1_errors_in_the_stream() -> None:
    bad_inner = bytearray(V1)
    bad_inner[16] = 0
    with pytest.raises(V1Error) as ei:
        FrameDecoder().feed(FRAMES[0] + bytes(bad_inner))
    assert len(ei.value.frames) == 1
    short = V1[:12] + struct.pack(">I", 15) + b"\x00" * 15
    with pytest.raises(V1Error):
        FrameDecoder().feed(short)
    with pytest.raises(FrameTooLargeError) as ei2:
        FrameDecoder(max_content_length=70).feed(V1[:16])
    assert ei2.value.request_id == int(V1_HEARTBEAT["logical"]["outer"]["request_id"])
