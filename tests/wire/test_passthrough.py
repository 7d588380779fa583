"""forward(): the agent's pass-through rewrite of a frame without touching its body."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from motanmesh.wire.decoder import FrameDecoder
from motanmesh.wire.frame import (
    FLAG_GZIP,
    FLAG_PROXY,
    FLAG_RESPONSE,
    Frame,
    decode_metadata,
    encode_frame,
    parse_frame,
    request_frame,
)
from motanmesh.wire.passthrough import forward

from .test_frame import raw_frame
from .test_vectors_frames import GO

PROPERTY = settings(deadline=None, max_examples=200)

#: a request from the motan-go demo client to its agent (app-to-agent hop)
APP_REQUEST = bytes.fromhex(
    next(f["hex"] for f in GO if f["hop"] == "app-to-agent" and f["dir"] == "c2s")
)


def _parts(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(13-byte header, metadata bytes, body) cut by hand."""
    (mlen,) = struct.unpack_from(">I", raw, 13)
    (blen,) = struct.unpack_from(">I", raw, 17 + mlen)
    assert len(raw) == 21 + mlen + blen
    return raw[:13], raw[17 : 17 + mlen], raw[21 + mlen :]


def test_new_id_proxy_bit_and_appended_key() -> None:
    frame = parse_frame(APP_REQUEST)
    out = forward(frame, 2**64 - 2, {"M_rid": str(frame.request_id)}, set_flags=FLAG_PROXY)
    head, meta, body = _parts(out)
    _, old_meta, old_body = _parts(APP_REQUEST)
    assert head[:2] == b"\xf1\xf1"
    assert head[2] == FLAG_PROXY
    assert head[3:5] == APP_REQUEST[3:5]
    assert struct.unpack_from(">Q", head, 5)[0] == 2**64 - 2
    # the metadata bytes as they arrived are a prefix: nothing was re-encoded
    assert meta.startswith(old_meta)
    assert meta == old_meta + b"\nM_rid\n" + str(frame.request_id).encode()
    assert body == old_body
    back = parse_frame(out)
    assert list(back.metadata.items()) == [
        *frame.metadata.items(),
        ("M_rid", str(frame.request_id)),
    ]


def test_unchanged_values_keep_the_original_bytes() -> None:
    frame = parse_frame(APP_REQUEST)
    same = {"M_g": frame.metadata["M_g"], "M_p": frame.metadata["M_p"]}
    out = forward(frame, frame.request_id, same)
    assert out == APP_REQUEST


def test_changed_group_re_encodes_in_place() -> None:
    frame = parse_frame(APP_REQUEST)
    out = forward(frame, 5, {"M_g": "other-group", "M_rid": "9"})
    back = parse_frame(out)
    expected = dict(frame.metadata)
    expected["M_g"] = "other-group"
    expected["M_rid"] = "9"
    assert list(back.metadata.items()) == list(expected.items())
    assert back.body == frame.body
    assert back.request_id == 5
    _, meta, _ = _parts(out)
    assert b"motan-demo-rpc" not in meta


def test_flags_set_and_cleared_status_and_serialization_kept() -> None:
    raw = raw_frame(b"M_pt\n1", b"body", flags=FLAG_RESPONSE | FLAG_GZIP, vs=0x09, ser=0x40)
    frame = parse_frame(raw)
    out = forward(frame, 3, set_flags=FLAG_PROXY, clear_flags=FLAG_GZIP)
    assert out[2:5] == bytes((FLAG_RESPONSE | FLAG_PROXY, 0x09, 0x40))
    assert out[13:] == raw[13:]


def test_empty_values_in_changes_are_skipped() -> None:
    frame = parse_frame(APP_REQUEST)
    out = forward(frame, 1, {"x-new": ""})
    assert _parts(out)[1] == _parts(APP_REQUEST)[1]


def test_frame_without_metadata_gets_only_the_new_keys() -> None:
    frame = parse_frame(raw_frame(b"", b"xyz"))
    out = forward(frame, 4, {"M_rid": "1", "a": "b"})
    assert _parts(out)[1] == b"M_rid\n1\na\nb"
    assert forward(frame, 4) == raw_frame(b"", b"xyz", rid=4)


def test_locally_built_frame_is_encoded_with_the_changes() -> None:
    frame = request_frame(1, {"M_p": "svc", "M_g": "g"}, b"\x00")
    out = forward(frame, 8, {"M_g": "h", "M_rid": "1"})
    assert parse_frame(out).metadata == {"M_p": "svc", "M_g": "h", "M_rid": "1"}
    assert forward(frame, 1) == encode_frame(frame)


def test_empty_value_from_php_can_be_filled_in() -> None:
    frame = parse_frame(raw_frame(b"M_p\nsvc\nM_g\n", b"b"))
    assert frame.metadata == {"M_p": "svc", "M_g": ""}
    assert forward(frame, 1) == raw_frame(b"M_p\nsvc\nM_g\n", b"b")
    # a new key after an empty final value keeps the pairing
    assert parse_frame(forward(frame, 1, {"M_rid": "1"})).metadata == {
        "M_p": "svc",
        "M_g": "",
        "M_rid": "1",
    }
    filled = parse_frame(forward(frame, 1, {"M_g": "grp"}))
    assert filled.metadata == {"M_p": "svc", "M_g": "grp"}


def test_appending_after_irregular_metadata_keeps_the_pairs() -> None:
    # a trailing LF after the last value, and (lenient) an unpaired trailing key
    for meta, strict in ((b"a\n1\n", True), (b"a\n1\nlonely", False)):
        dec = FrameDecoder(strict_metadata=strict)
        (frame,) = dec.feed(raw_frame(meta, b"b"))
        assert isinstance(frame, Frame)
        out = forward(frame, 2, {"M_rid": "7"})
        assert parse_frame(out).metadata == {"a": "1", "M_rid": "7"}


def test_body_is_never_touched() -> None:
    body = bytes(range(256)) * 3
    frame = parse_frame(raw_frame(b"k\nv", body, flags=FLAG_GZIP))
    out = forward(frame, 1, {"M_g": "x"}, set_flags=FLAG_PROXY)
    assert _parts(out)[2] == body


_text = st.text(st.characters(codec="utf-8", exclude_characters="\n"), min_size=1, max_size=12)


@PROPERTY
@given(
    st.dictionaries(_text, _text, max_size=6),
    st.dictionaries(_text, _text, max_size=4),
    st.binary(max_size=100),
    st.integers(0, 2**64 - 1),
)
def test_forward_equals_decode_modify_encode(
    meta: dict[str, str], changes: dict[str, str], body: bytes, rid: int
) -> None:
    raw = encode_frame(Frame(0, 0, 6, 1, meta, body))
    frame = parse_frame(raw)
    out = forward(frame, rid, changes, set_flags=FLAG_PROXY)
    back = parse_frame(out)
    merged = {**meta, **changes}
    assert back.metadata == merged
    assert list(back.metadata) == list(merged)
    assert back.body == body and back.request_id == rid and back.is_proxy
    assert decode_metadata(back.raw_metadata) == merged
