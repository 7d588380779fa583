"""Reads through ``FrameDecoder.get_buffer`` / ``buffer_updated`` (what the connections use):
the same frames as ``feed`` for any read sizes; a large frame is read into a buffer of its own
that is gone once the frame is decoded; nothing decoded refers to the shared read buffer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motanmesh.wire.decoder import FRAME_BUFFER_RATIO, LARGE_FRAME, FrameDecoder
from motanmesh.wire.errors import BadMagicError, FrameTooLargeError, MetadataError, WireError
from motanmesh.wire.frame import Frame, encode_frame, request_frame
from motanmesh.wire.v1 import V1Frame

from .test_decoder import STREAM, _key

PROPERTY = settings(deadline=None, max_examples=150)


def read(decoder: FrameDecoder, data: bytes, sizes: list[int]) -> list[Frame | V1Frame]:
    """Hand ``data`` to the decoder as the loop would: each read fills at most ``size`` bytes
    of the buffer the decoder hands out (sizes taken in turn)."""
    out: list[Frame | V1Frame] = []
    pos = 0
    i = 0
    while pos < len(data):
        buf = decoder.get_buffer()
        n = min(len(buf), sizes[i % len(sizes)], len(data) - pos)
        i += 1
        buf[:n] = data[pos : pos + n]
        pos += n
        out += decoder.buffer_updated(n)
    return out


def large(rid: int, size: int, meta: dict[str, str] | None = None) -> bytes:
    body = bytes((rid + i) & 0xFF for i in range(256)) * (size // 256) + b"x" * (size % 256)
    return encode_frame(request_frame(rid, meta or {"M_p": "svc", "M_m": "m"}, body))


def shared() -> bytearray:
    return bytearray(64 * 1024)


def test_small_frames_as_feed() -> None:
    decoder = FrameDecoder()
    decoder.use_read_buffer(shared())
    got = read(decoder, STREAM, [7, 4096, 1, 100000])
    assert [_key(f) for f in got] == [_key(f) for f in FrameDecoder().feed(STREAM)]
    assert decoder.buffered == 0


@PROPERTY
@given(
    st.lists(st.integers(0, 3), min_size=1, max_size=6),
    st.lists(st.sampled_from([1, 17, 100, 4096, 32768, 65536, 300000]), min_size=1, max_size=8),
)
def test_any_mix_any_reads(kinds: list[int], sizes: list[int]) -> None:
    parts = [
        STREAM,
        large(1, LARGE_FRAME * 2),
        large(2, LARGE_FRAME + 5, {"M_p": "other", "k": "v"}),
        large(3, 200_000),
    ]
    data = b"".join(parts[k] for k in kinds)
    decoder = FrameDecoder()
    decoder.use_read_buffer(shared())
    got = read(decoder, data, sizes)
    assert [_key(f) for f in got] == [_key(f) for f in FrameDecoder().feed(data)]
    assert decoder.buffered == 0
    assert decoder._big is None  # no frame-sized buffer outlives its frame


def test_large_frame_gets_its_own_buffer_then_drops_it() -> None:
    buffer = shared()
    decoder = FrameDecoder()
    decoder.use_read_buffer(buffer)
    data = large(9, 1_000_000)
    first = decoder.get_buffer()
    assert first.obj is buffer
    first[:4096] = data[:4096]
    assert decoder.buffer_updated(4096) == []
    assert decoder.get_buffer().obj is buffer  # under an eighth of the frame: gathered
    got = 4096
    while got * FRAME_BUFFER_RATIO < len(data):
        n = min(40_000, len(buffer))
        decoder.get_buffer()[:n] = data[got : got + n]
        assert decoder.buffer_updated(n) == []
        got += n
    own = decoder.get_buffer()
    assert own.obj is not buffer
    assert len(own) == len(data) - got  # exactly the rest of the frame: no read overshoots
    assert decoder.buffered == got
    own[: len(own)] = data[got:]
    (frame,) = decoder.buffer_updated(len(own))
    assert type(frame) is Frame and type(frame.body) is bytes
    assert encode_frame(frame) == data
    assert decoder.get_buffer().obj is buffer  # back to the shared buffer
    assert decoder.buffered == 0


def test_bodies_stay_valid_when_the_shared_buffer_is_reused() -> None:
    buffer = shared()
    decoder = FrameDecoder()
    decoder.use_read_buffer(buffer)
    one = encode_frame(request_frame(1, {"M_p": "a"}, b"first body"))
    two = encode_frame(request_frame(2, {"M_p": "a"}, b"second body"))
    (f1,) = read(decoder, one, [len(one)])
    buffer[:] = b"\xee" * len(buffer)  # the next read of any connection
    (f2,) = read(decoder, two + two[:10], [len(two) + 10])
    buffer[:] = b"\xdd" * len(buffer)
    assert type(f1) is Frame and f1.body == b"first body" and f1.raw_metadata == b"M_p\na"
    assert type(f2) is Frame and f2.body == b"second body"
    (f3,) = read(decoder, two[10:], [100])  # the held start of the third frame was copied out
    assert type(f3) is Frame and encode_frame(f3) == two


def test_limits_before_the_frame_buffer_is_made() -> None:
    decoder = FrameDecoder(max_content_length=LARGE_FRAME)
    decoder.use_read_buffer(shared())
    data = large(5, LARGE_FRAME + 1)
    with pytest.raises(FrameTooLargeError) as e:
        read(decoder, data[:4096], [4096])
    assert e.value.request_id == 5
    assert decoder._big is None
    with pytest.raises(WireError):
        decoder.buffer_updated(0)


def test_bad_metadata_of_a_large_frame() -> None:
    head = large(6, LARGE_FRAME * 3, {"M_p": "svc"})
    # an empty key: the metadata of the frame is refused once it is whole
    data = head.replace(b"M_p\nsvc", b"\nM_psvc", 1)
    decoder = FrameDecoder()
    decoder.use_read_buffer(shared())
    with pytest.raises(MetadataError):
        read(decoder, data, [4096])
    with pytest.raises(WireError):
        read(decoder, STREAM, [4096])


def test_bad_magic_after_a_large_frame() -> None:
    decoder = FrameDecoder()
    decoder.use_read_buffer(shared())
    data = large(7, LARGE_FRAME * 2)
    with pytest.raises(BadMagicError) as e:
        read(decoder, data + b"\x00\x00junk", [5000])
    assert e.value.frames == ()  # the frame was handed out by the read that completed it


def test_without_a_shared_buffer_the_decoder_makes_one() -> None:
    decoder = FrameDecoder()
    data = large(8, 100)
    (frame,) = read(decoder, data, [len(data)])
    assert type(frame) is Frame and encode_frame(frame) == data


def test_a_read_that_begins_with_a_whole_large_frame() -> None:
    decoder = FrameDecoder()
    decoder.use_read_buffer(bytearray(256 * 1024))
    first = large(1, LARGE_FRAME + 100)
    second = large(2, LARGE_FRAME * 3)
    data = first + STREAM + second
    got = read(decoder, data, [len(first) + len(STREAM) + 1000, 10**9])
    assert [_key(f) for f in got] == [_key(f) for f in FrameDecoder().feed(data)]
    assert decoder._big is None and decoder.buffered == 0


def test_junk_after_a_whole_large_frame_in_one_read() -> None:
    decoder = FrameDecoder()
    decoder.use_read_buffer(bytearray(256 * 1024))
    first = large(3, LARGE_FRAME * 2)
    with pytest.raises(BadMagicError) as e:
        read(decoder, first + b"\x00\x01junk", [10**9])
    (frame,) = e.value.frames  # the frame before the junk is not lost
    assert type(frame) is Frame and encode_frame(frame) == first
    with pytest.raises(WireError):
        read(decoder, first, [10**9])


def test_an_announced_frame_costs_what_has_arrived() -> None:
    """A peer announcing a frame of 10 MB and sending its first bytes only makes the decoder
    hold those bytes, not a buffer of 10 MB."""
    decoder = FrameDecoder()
    decoder.use_read_buffer(shared())
    data = large(4, 10 * 1024 * 1024 - 100)
    read(decoder, data[:60_000], [60_000])
    assert decoder._big is None and decoder.buffered == 60_000
    read(decoder, data[60_000 : len(data) // FRAME_BUFFER_RATIO + 1], [65536])
    assert decoder._big is not None and len(decoder._big) == len(data)
    (frame,) = read(decoder, data[len(data) // FRAME_BUFFER_RATIO + 1 :], [65536])
    assert type(frame) is Frame and encode_frame(frame) == data
