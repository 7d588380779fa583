"""The breeze serialization (spec section 6): shared vectors, the spec's worked examples, the
name table, writing rules, liberal reading, refusals, and property tests."""

from __future__ import annotations

import contextlib
import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motanmesh.wire.breeze import (
    BREEZE_SERIALIZATION,
    MAX_DEPTH,
    MAX_ELEM_SIZE,
    BreezeSerialization,
)
from motanmesh.wire.errors import SerializationError
from motanmesh.wire.serialization import Serialization, get_serialization
from motanmesh.wire.values import BreezeMessage, Byte, Float32, Int16, Int32, Typed, to_plain
from tests.vectors import load_vectors

B = BREEZE_SERIALIZATION
PROPERTY = settings(deadline=None, max_examples=200)
USER = bytes.fromhex("de0f6d6f74616e2e64656d6f2e55736572 0000000c 0105616c696365 02983c 039a")
MULTI = bytes.fromhex("05776f726c64 8f db01 3f3f 016b 0176")


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# ---------------------------------------------------------------------------------------------
# shared vectors


def _frame_body(frame_hex: str) -> tuple[int, bytes]:
    """(serialization id, body) of one Motan2 frame."""
    frame = bytes.fromhex(frame_hex)
    (meta_len,) = struct.unpack_from(">I", frame, 13)
    (body_len,) = struct.unpack_from(">I", frame, 17 + meta_len)
    start = 21 + meta_len
    assert len(frame) == start + body_len
    return frame[4] >> 3, frame[start:]


def _breeze_bodies() -> list[tuple[str, bytes, list[Any]]]:
    out: list[tuple[str, bytes, list[Any]]] = []
    vectors = load_vectors("motan-php-vectors.json")["vectors"]
    for vec in vectors:
        if vec["kind"] == "breeze_value":
            out.append((vec["id"], bytes.fromhex(vec["hex"]), [vec["logical"]]))
        elif vec["kind"] in ("request", "response") and "body_values" in vec["logical"]:
            ser, body = _frame_body(vec["hex"])
            if ser == 8:
                assert vec["logical"]["body_serialization"] == "breeze"
                out.append((vec["id"], body, vec["logical"]["body_values"]))
    return out


BODIES = _breeze_bodies()


def _expected(logical: dict[str, Any]) -> Typed:
    """The typed tree a vector's logical JSON describes."""
    t = logical["t"]
    if t == "null":
        return Typed("null")
    if t in ("string", "bytes"):
        raw = bytes.fromhex(logical["hex"])
        if t == "string" and "v" in logical:
            assert raw == logical["v"].encode()
            return Typed(t, logical["v"])
        return Typed(t, raw)
    if t in ("float32", "float64"):
        (value,) = struct.unpack(">f" if t == "float32" else ">d", h(logical["bits"]))
        return Typed(t, value)
    if t in ("array", "packed_array"):
        items = tuple(_expected(x) for x in logical["v"])
        return Typed(t, items, etype=logical.get("etype"))
    if t in ("map", "packed_map"):
        pairs = tuple((_expected(k), _expected(v)) for k, v in logical["v"])
        return Typed(t, pairs, ktype=logical.get("ktype"), vtype=logical.get("vtype"))
    if t == "message":
        fields = tuple((i, _expected(v)) for i, v in logical["fields"])
        return Typed(t, fields, name=logical["name"])
    assert t in ("bool", "byte", "int16", "int32", "int64"), t
    return Typed(t, logical["v"])


def test_vectors_cover_every_breeze_body() -> None:
    ids = {vid for vid, _, _ in BODIES}
    assert len([i for i in ids if i.startswith("breeze_")]) >= 10
    assert {"req_breeze_args", "client_req_breeze", "resp_breeze_value"} <= ids


@pytest.mark.parametrize(("vid", "body", "logical"), BODIES, ids=[b[0] for b in BODIES])
def test_php_vector(vid: str, body: bytes, logical: list[Any]) -> None:
    expected = [_expected(x) for x in logical]
    decoded = B.decode_typed(body)
    assert decoded == expected
    assert B.encode_typed(decoded) == body
    assert B.encode_typed(expected) == body
    assert B.decode_multi(body) == [to_plain(x) for x in expected]
    if len(expected) == 1:
        assert B.decode(body) == to_plain(expected[0])


# ---------------------------------------------------------------------------------------------
# spec examples and writing rules


@pytest.mark.parametrize(
    ("value", "hexed"),
    [
        ("hello", "0568656c6c6f"),
        ("a" * 63, "3f3f" + "61" * 63),
        ("a" * 62, "3e" + "61" * 62),
        ("", "00"),
        (16, "9820"),
        (30, "983c"),
        (-9, "9811"),
        (0, "88"),
        (-8, "80"),
        (15, "97"),
        (1234567890123, "989693d89fee47"),
        (2**63 - 1, "98feffffffffffffffff01"),
        (-(2**63), "98ffffffffffffffffff01"),
        (Int32(0), "50"),
        (Int32(-16), "40"),
        (Int32(46), "7e"),
        (Int32(47), "7f5e"),
        (Int32(-17), "7f21"),
        (Int32(-(2**31)), "7fffffffff0f"),
        (None, "99"),
        (True, "9a"),
        (False, "9b"),
        (Byte(200), "9cc8"),
        (Int16(-2), "9efffe"),
        (b"\x00\xff", "9d0000000200ff"),
        (b"", "9d00000000"),
        (Float32(1.5), "9f3fc00000"),
        (1.5, "a03ff8000000000000"),
        ([], "da00"),
        ({}, "d900"),
        ([1, "a", None], "da03890161 99".replace(" ", "")),
        ({"k": "v"}, "d901016b0176"),
        (BreezeMessage("m"), "de016d00000000"),
    ],
)
def test_writes_direct_forms_and_round_trips(value: Any, hexed: str) -> None:
    body = B.encode(value)
    assert body.hex() == hexed
    back = B.decode(body)
    assert back == value
    assert type(back) is type(value)
    assert B.encode_typed(B.decode_typed(body)) == body


def test_user_message_example() -> None:
    user = BreezeMessage("motan.demo.User", {1: "alice", 2: 30, 3: True})
    assert B.encode(user) == USER
    assert B.decode(USER) == user
    [typed] = B.decode_typed(USER)
    assert typed == Typed(
        "message",
        ((1, Typed("string", "alice")), (2, Typed("int64", 30)), (3, Typed("bool", True))),
        name="motan.demo.User",
    )


def test_packed_examples() -> None:
    php_map = h("db02 3f3f 026b31 027631 026b32 027632")
    assert B.decode(php_map) == {"k1": "v1", "k2": "v2"}
    nested = h("dc02 dc 02 98 02 04 01 98 06")
    assert B.decode(nested) == [[1, 2], [3]]
    [typed] = B.decode_typed(nested)
    assert typed.etype == "packed_array"
    assert [x.etype for x in typed.v] == ["int64", "int64"]
    assert B.encode_typed([typed]) == nested


def test_multi_args_example() -> None:
    assert B.decode_multi(MULTI) == ["world", 7, {"k": "v"}]
    assert B.encode_typed(B.decode_typed(MULTI)) == MULTI
    # plain dicts are written non-packed, as breeze-go does for generic maps
    assert B.encode_multi(["world", 7, {"k": "v"}]) == h("05776f726c64 8f d901 016b 0176")
    assert B.encode_multi([]) == b""
    assert B.decode_multi(b"") == []


def test_empty_body_and_null() -> None:
    assert B.decode(b"") is None
    assert B.encode(None) == b"\x99"
    assert B.decode(b"\x99") is None
    assert B.decode_typed(b"") == []


def test_packed_bools_are_full_bytes() -> None:
    body = h("dc03 9a 9a 9b 9a")
    assert B.decode(body) == [True, False, True]
    [typed] = B.decode_typed(body)
    assert typed.etype == "bool"
    assert B.encode_typed([typed]) == body
    with pytest.raises(SerializationError):
        B.decode(h("dc01 9a 01"))


def test_empty_packed_containers_carry_no_descriptor() -> None:
    assert B.decode(h("db00")) == {}
    assert B.decode(h("dc00")) == []
    typed = B.decode_typed(h("db00 dc00"))
    assert typed == [Typed("packed_map", ()), Typed("packed_array", ())]
    assert B.encode_typed(typed) == h("db00 dc00")
    # a declared element type is not written for an empty container
    assert B.encode_typed([Typed("packed_array", (), etype="int64")]) == h("dc00")


def test_packed_containers_of_every_element_type() -> None:
    elements = [
        Typed("string", "x"),
        Typed("int32", -300),
        Typed("int64", 2**40),
        Typed("bool", False),
        Typed("byte", 7),
        Typed("bytes", b"\x01"),
        Typed("int16", 300),
        Typed("float32", 0.5),
        Typed("float64", -2.25),
        Typed("map", ((Typed("string", "k"), Typed("null")),)),
        Typed("array", (Typed("int32", 1),)),
        Typed("packed_map", ()),
        Typed("packed_array", (Typed("int64", 1),), etype="int64"),
        Typed("message", ((1, Typed("int64", 1)),), name="m"),
    ]
    for element in elements:
        packed = Typed("packed_array", (element, element), etype=element.t)
        pmap = Typed("packed_map", ((Typed("int64", 1), element),), ktype="int64", vtype=element.t)
        body = B.encode_typed([packed, pmap])
        assert B.decode_typed(body) == [packed, pmap], element
        assert B.encode_typed(B.decode_typed(body)) == body
        assert B.decode_multi(body) == [to_plain(packed), to_plain(pmap)]


def test_untyped_element_bytes() -> None:
    strings = Typed("packed_array", (Typed("string", "ab"),), etype="string")
    assert B.encode_typed([strings]) == h("dc01 3f 02 6162")
    ints = Typed("packed_array", (Typed("int32", -1), Typed("int32", 0)), etype="int32")
    assert B.encode_typed([ints]) == h("dc02 7f 01 00")
    msgs = Typed(
        "packed_array",
        (Typed("message", (), name="m"), Typed("message", ((1, Typed("int64", 0)),), name="m")),
        etype="message",
    )
    assert B.encode_typed([msgs]) == h("dc02 de016d 00000000 00000002 0188")
    # an element type left out is taken from the first element
    assert B.encode_typed([Typed("packed_array", ints.v)]) == h("dc02 7f 01 00")


# ---------------------------------------------------------------------------------------------
# the message name table


def test_second_use_of_a_name_is_a_reference() -> None:
    a = BreezeMessage("a")
    assert B.encode_multi([a, a]) == h("de0161 00000000 e0 00000000")
    assert B.encode([a, BreezeMessage("b"), a]) == h(
        "da03 de0161 00000000 de0162 00000000 e0 00000000"
    )
    assert B.decode_multi(h("de0161 00000000 e0 00000000")) == [a, a]
    # each encode() starts a fresh table
    assert B.encode(a) == B.encode(a) == h("de0161 00000000")
    # decode() reads one value: the reference alone points at nothing
    with pytest.raises(SerializationError):
        B.decode(h("e0 00000000"))


def test_more_than_32_names_use_a_varint_index() -> None:
    names = [f"n{i}" for i in range(34)]
    values = [BreezeMessage(n) for n in names] + [BreezeMessage("n31"), BreezeMessage("n32")]
    body = B.encode_multi(values)
    assert body.endswith(h("ff 00000000 df21 00000000"))
    assert B.decode_multi(body) == values
    assert B.encode_typed(B.decode_typed(body)) == body
    assert B.decode_multi(body[:-6] + h("df22 00000000")) == [*values[:-1], values[33]]


def test_names_are_shared_by_descriptors_and_values() -> None:
    m = Typed("message", ((1, Typed("string", "x")),), name="motan.demo.User")
    packed = Typed("packed_array", (m,), etype="message")
    body = B.encode_typed([packed, m])
    name = b"motan.demo.User".hex()
    assert body == h(f"dc01 de0f{name} 00000003 010178 e0 00000003 010178")
    assert B.decode_typed(body) == [packed, m]


@pytest.mark.parametrize("bad", ["e0 00000000", "df00 00000000", "df05 00000000", "de02ff fe"])
def test_bad_name_references_are_refused(bad: str) -> None:
    with pytest.raises(SerializationError):
        B.decode_multi(h(bad))
    with pytest.raises(SerializationError):
        B.decode_typed(h(bad))


def test_php_empty_message_at_the_end_of_a_buffer() -> None:
    assert B.decode(h("de03666f6f")) == BreezeMessage("foo")
    assert B.decode_multi(h("88 de03666f6f")) == [0, BreezeMessage("foo")]
    [typed] = B.decode_typed(h("de03666f6f"))
    assert typed == Typed("message", (), name="foo")
    assert B.encode_typed([typed]) == h("de03666f6f 00000000")
    # the last field of a message: the end of the enclosing field area
    nested = h("de0161 00000004 01 de0162")
    assert B.decode(nested) == BreezeMessage("a", {1: BreezeMessage("b")})
    # anywhere else the bytes after the type are a length
    with pytest.raises(SerializationError):
        B.decode_multi(h("de03666f6f 88"))
    with pytest.raises(SerializationError):
        B.decode_multi(h("de03666f6f 05776f726c64"))
    # inside packed containers the length is required
    with pytest.raises(SerializationError):
        B.decode(h("dc01 de0161"))


def test_message_fields_are_bounded_by_their_length() -> None:
    with pytest.raises(SerializationError):
        B.decode(h("de0161 00000001 01 88"))  # the value lies past the field area
    with pytest.raises(SerializationError):
        B.decode(h("de0161 00000009 01 88"))  # the field area runs past the body
    assert B.decode(h("de0161 00000004 01 88 02 9a")) == BreezeMessage("a", {1: 0, 2: True})


# ---------------------------------------------------------------------------------------------
# liberal reading


@pytest.mark.parametrize(
    ("hexed", "value"),
    [
        ("9802", 1),
        ("9800", 0),
        ("988000", 0),  # over-long varint
        ("7f02", Int32(1)),
        ("7fffffffffffffffffff01", Int32(-(2**31))),  # Java's 10-byte int32
        ("3f0161", "a"),
        ("3f00", ""),
        ("d902 0161 88 0162 da01 89", {"a": 0, "b": [1]}),
        ("da02 88 9a", [0, True]),
        ("02fffe", b"\xff\xfe"),  # a string that is not UTF-8
    ],
)
def test_reads_long_and_non_canonical_forms(hexed: str, value: Any) -> None:
    back = B.decode(h(hexed))
    assert back == value
    assert type(back) is type(value)


def test_typed_tree_keeps_non_utf8_strings() -> None:
    [typed] = B.decode_typed(h("02fffe"))
    assert typed == Typed("string", b"\xff\xfe")
    assert B.encode_typed([typed]) == h("02fffe")


def test_float32_nan_payload_survives() -> None:
    for body in (h("9f7f800001"), h("9fffc00000"), h("9f7fc00001")):
        [typed] = B.decode_typed(body)
        assert math.isnan(typed.v)
        assert B.encode_typed([typed]) == body
        assert B.encode(B.decode(body)) == body


def test_accepts_bytearray_and_memoryview() -> None:
    assert B.decode(bytearray(USER)) == B.decode(memoryview(USER)) == B.decode(USER)
    assert B.decode_multi(memoryview(MULTI)) == B.decode_multi(MULTI)


def test_unhashable_keys_become_tuples() -> None:
    body = h("d902 da02 88 89 9a d901 0161 88 9b")
    assert B.decode(body) == {(0, 1): True, (("a", 0),): False}
    assert B.decode(body) == to_plain(B.decode_typed(body)[0])
    packed = h("db01 da 3f 01 88 0161")
    assert B.decode(packed) == {(0,): "a"}
    with pytest.raises(SerializationError):
        B.decode(h("d901 de0161 00000000 88"))  # a message cannot be a key


# ---------------------------------------------------------------------------------------------
# refusals while reading


@pytest.mark.parametrize("b", [*range(0xA1, 0xD9), 0xDD])
def test_unknown_type_bytes_are_refused(b: int) -> None:
    for decode in (B.decode, B.decode_multi, B.decode_typed):
        with pytest.raises(SerializationError):
            decode(bytes((b, 0, 0, 0, 0, 0)))


@pytest.mark.parametrize("desc", ["99", "9b", "05", "88", "50", "a1", "dd", "3e"])
def test_bad_packed_descriptors_are_refused(desc: str) -> None:
    with pytest.raises(SerializationError):
        B.decode(h(f"dc01 {desc} 00 00 00 00"))
    with pytest.raises(SerializationError):
        B.decode_typed(h(f"db01 3f {desc} 00 00 00 00 00"))


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def test_element_count_limit() -> None:
    ok = b"\xda" + _varint(MAX_ELEM_SIZE) + b"\x88" * MAX_ELEM_SIZE
    assert len(B.decode(ok)) == MAX_ELEM_SIZE
    over = b"\xda" + _varint(MAX_ELEM_SIZE + 1) + b"\x88" * (MAX_ELEM_SIZE + 1)
    for code in (b"\xd9", b"\xda", b"\xdb", b"\xdc"):
        with pytest.raises(SerializationError, match="over"):
            B.decode(code + over[1:])
        with pytest.raises(SerializationError, match="over"):
            B.decode_typed(code + over[1:])
    with pytest.raises(SerializationError):
        B.encode([0] * (MAX_ELEM_SIZE + 1))
    assert len(B.encode([0] * MAX_ELEM_SIZE)) == len(ok)


@pytest.mark.parametrize(
    "hexed",
    [
        "da05 88 88 88 88",  # 5 elements, 4 bytes
        "d903 88 88 88 88 88",  # 3 entries need at least 6 bytes
        "dc02 a0 0000000000000000",  # 2 float64 need 16 bytes
        "db02 a0 9f 0000000000000000 00000000",  # 2 entries of 12 bytes
        "dc03 9d 00000000 00000000",
        "dc80897a 98",  # 2 000 000 elements in no bytes at all
    ],
)
def test_counts_that_cannot_fit_are_refused_before_reading(hexed: str) -> None:
    with pytest.raises(SerializationError, match=r"fit|over"):
        B.decode(h(hexed))
    with pytest.raises(SerializationError, match=r"fit|over"):
        B.decode_typed(h(hexed))


def test_nesting_depth_limit() -> None:
    deep = b"\xda\x01" * MAX_DEPTH + b"\x88"
    assert B.decode_typed(deep)
    nested: Any = 0
    for _ in range(MAX_DEPTH):
        nested = [nested]
    assert B.decode(deep) == nested
    assert B.encode(nested) == deep
    for decode in (B.decode, B.decode_multi, B.decode_typed):
        with pytest.raises(SerializationError, match="deeper"):
            decode(b"\xda\x01" + deep)
        with pytest.raises(SerializationError, match="deeper"):
            decode(b"\xdc\x01\xda\x01" + deep)
    with pytest.raises(SerializationError, match="deeper"):
        B.encode([nested])
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(SerializationError):
        B.encode(cycle)


@pytest.mark.parametrize(
    "hexed",
    [
        "",
        "3f",
        "3f05 61",
        "05 6162",
        "7f80",
        "98ffffffffffffffffffff01",
        "9c",
        "9d000000",
        "9d0000000201",
        "9e00",
        "9f000000",
        "a000",
        "de",
        "de05 61",
        "de0161 000000",
        "d901 88",
        "dc01",
        "db01 3f",
    ],
)
def test_truncated_values_are_refused(hexed: str) -> None:
    body = h(hexed)
    if not body:
        assert B.decode(body) is None
        return
    for decode in (B.decode, B.decode_multi, B.decode_typed):
        with pytest.raises(SerializationError):
            decode(body)


def test_trailing_bytes_after_one_value_are_refused() -> None:
    with pytest.raises(SerializationError, match="after the value"):
        B.decode(h("88 88"))
    assert B.decode_multi(h("88 88")) == [0, 0]


# ---------------------------------------------------------------------------------------------
# refusals while writing


class _Other:
    pass


@pytest.mark.parametrize(
    "value",
    [
        {1, 2},
        _Other(),
        2**63,
        -(2**63) - 1,
        Int32(2**31),
        Int32(-(2**31) - 1),
        Int16(40000),
        Byte(256),
        Byte(-129),
        Float32(1e300),
        "\ud800",
        BreezeMessage(1),  # type: ignore[arg-type]
        BreezeMessage("m", {-1: 0}),
        BreezeMessage("m", {"x": 0}),  # type: ignore[dict-item]
        [complex(1, 2)],
    ],
)
def test_unencodable_values_are_refused(value: Any) -> None:
    with pytest.raises(SerializationError):
        B.encode(value)
    with pytest.raises(SerializationError):
        B.encode_multi(["ok", value])


def test_subclasses_of_supported_types_are_written() -> None:
    class Name(str):
        pass

    class Count(int):
        pass

    assert B.encode(Name("a")) == h("0161")
    assert B.encode(Count(1)) == h("89")
    assert B.encode((1, 2)) == h("da02 89 8a")
    assert B.encode(bytearray(b"x")) == h("9d00000001 78")
    assert B.encode(memoryview(b"x")) == h("9d00000001 78")
    assert B.encode(Byte(-1)) == h("9cff")
    assert B.decode(h("9cff")) == Byte(255)


@pytest.mark.parametrize(
    "tree",
    [
        Typed("string_map", ()),
        Typed("string_array", ()),
        Typed("nope"),
        Typed("int64", "1"),
        Typed("int64", 1.0),
        Typed("int32", 2**31),
        Typed("bool", 1),
        Typed("string", 5),
        Typed("bytes", "text"),
        Typed("float64", "x"),
        Typed("array", 5),
        Typed("map", ((Typed("null"),),)),
        Typed("array", (5,)),
        Typed(["x"]),  # type: ignore[arg-type]
        Typed("packed_array", (Typed("null"),)),
        Typed("packed_array", (Typed("int64", 1), Typed("int32", 1)), etype="int64"),
        Typed("packed_array", (Typed("int64", 1),), etype="string"),
        Typed("packed_array", (1,), etype="int64"),
        Typed(
            "packed_array",
            (Typed("message", (), name="a"), Typed("message", (), name="b")),
            etype="message",
        ),
        Typed("packed_map", ((Typed("string", "k"), Typed("null")),)),
        Typed("message", (), name=None),
        Typed("message", ((-1, Typed("null")),), name="m"),
    ],
)
def test_bad_typed_trees_are_refused(tree: Typed) -> None:
    with pytest.raises(SerializationError):
        B.encode_typed([tree])


def test_non_typed_arguments_are_refused() -> None:
    with pytest.raises(SerializationError):
        B.encode_typed(["x"])  # type: ignore[list-item]


# ---------------------------------------------------------------------------------------------
# identity and registry


def test_identity_and_registry() -> None:
    assert B.id == 8
    assert B.name == "breeze"
    assert isinstance(B, BreezeSerialization)
    proto: Serialization = B
    assert proto is get_serialization(8) is get_serialization("breeze")


# ---------------------------------------------------------------------------------------------
# properties


def _same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (floats by their bits)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            _same(k1, k2) and _same(v1, v2)
            for (k1, v1), (k2, v2) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, BreezeMessage):
        return a.name == b.name and _same(a.fields, b.fields)
    return bool(a == b)


NAMES = st.sampled_from(["a", "motan.demo.User", "b" * 40, "é"])
INT64 = st.integers(-(2**63), 2**63 - 1)
FIELD_INDEX = st.integers(0, 2**40)
KEYS = st.one_of(
    st.text(max_size=8),
    INT64,
    st.integers(-(2**31), 2**31 - 1).map(Int32),
    st.binary(max_size=4),
)
PLAIN_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.text(),
    st.binary(max_size=20),
    INT64,
    st.integers(-(2**31), 2**31 - 1).map(Int32),
    st.integers(-(2**15), 2**15 - 1).map(Int16),
    st.integers(0, 255).map(Byte),
    st.floats(width=32, allow_nan=False).map(Float32),
    st.floats(allow_nan=False),
)
PLAIN = st.recursive(
    PLAIN_LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(KEYS, children, max_size=5),
        st.builds(BreezeMessage, NAMES, st.dictionaries(FIELD_INDEX, children, max_size=4)),
    ),
    max_leaves=30,
)


@PROPERTY
@given(st.lists(PLAIN, max_size=4))
def test_plain_values_round_trip(values: list[Any]) -> None:
    body = B.encode_multi(values)
    assert _same(B.decode_multi(body), values)
    assert B.encode_multi(B.decode_multi(body)) == body
    assert B.decode_multi(body) == [to_plain(x) for x in B.decode_typed(body)]
    if values:
        one = B.encode(values[0])
        assert _same(B.decode(one), values[0])


SCALARS: dict[str, st.SearchStrategy[Typed]] = {
    "string": st.text(max_size=70).map(lambda v: Typed("string", v)),
    "int32": st.integers(-(2**31), 2**31 - 1).map(lambda v: Typed("int32", v)),
    "int64": INT64.map(lambda v: Typed("int64", v)),
    "bool": st.booleans().map(lambda v: Typed("bool", v)),
    "byte": st.integers(0, 255).map(lambda v: Typed("byte", v)),
    "bytes": st.binary(max_size=10).map(lambda v: Typed("bytes", v)),
    "int16": st.integers(-(2**15), 2**15 - 1).map(lambda v: Typed("int16", v)),
    "float32": st.floats(width=32, allow_nan=False).map(lambda v: Typed("float32", v)),
    "float64": st.floats(allow_nan=False).map(lambda v: Typed("float64", v)),
}
KEY_TYPES = st.sampled_from(sorted(SCALARS))
TYPED_LEAVES = st.one_of(st.just(Typed("null")), *SCALARS.values())


def _packed_array(items: list[Typed], etype: str) -> Typed:
    return Typed("packed_array", tuple(items), etype=etype if items else None)


@st.composite
def _packed(draw: st.DrawFn, children: st.SearchStrategy[Typed]) -> Typed:
    """A packed array or map whose elements share one type."""
    kind = draw(st.sampled_from(["scalar", "array", "packed", "message"]))
    if kind == "scalar":
        etype = draw(KEY_TYPES)
        element = SCALARS[etype]
    elif kind == "array":
        etype = "array"
        element = st.lists(children, max_size=3).map(lambda v: Typed("array", tuple(v)))
    elif kind == "packed":
        etype = "packed_array"
        inner = draw(KEY_TYPES)
        element = st.lists(SCALARS[inner], max_size=3).map(lambda v: _packed_array(v, inner))
    else:
        etype = "message"
        name = draw(NAMES)
        fields = st.lists(st.tuples(FIELD_INDEX, children), max_size=3)
        element = fields.map(lambda v: Typed("message", tuple(v), name=name))
    if draw(st.booleans()):
        return _packed_array(draw(st.lists(element, max_size=4)), etype)
    ktype = draw(KEY_TYPES)
    pairs = draw(st.lists(st.tuples(SCALARS[ktype], element), max_size=4))
    if not pairs:
        return Typed("packed_map", ())
    return Typed("packed_map", tuple(pairs), ktype=ktype, vtype=etype)


TYPED = st.recursive(
    TYPED_LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda v: Typed("array", tuple(v))),
        st.lists(st.tuples(TYPED_LEAVES, children), max_size=4).map(
            lambda v: Typed("map", tuple(v))
        ),
        _packed(children),
        st.builds(
            lambda name, fields: Typed("message", tuple(fields), name=name),
            NAMES,
            st.lists(st.tuples(FIELD_INDEX, children), max_size=4),
        ),
    ),
    max_leaves=25,
)


@PROPERTY
@given(st.lists(TYPED, max_size=4))
def test_typed_trees_round_trip(trees: list[Typed]) -> None:
    body = B.encode_typed(trees)
    assert B.decode_typed(body) == trees
    assert B.encode_typed(B.decode_typed(body)) == body
    assert B.decode_multi(body) == [to_plain(t) for t in trees]


def _only_serialization_errors(body: bytes) -> None:
    for decode in (B.decode, B.decode_multi, B.decode_typed):
        with contextlib.suppress(SerializationError):
            decode(body)


@PROPERTY
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_serialization_error(body: bytes) -> None:
    _only_serialization_errors(body)


@PROPERTY
@given(
    st.lists(
        st.sampled_from([0xD9, 0xDA, 0xDB, 0xDC, 0xDE, 0xDF, 0xE0, 0x9A, 0x3F, 0x98])
        | st.integers(0, 255),
        max_size=60,
    )
)
def test_structured_garbage_only_raises_serialization_error(codes: list[int]) -> None:
    _only_serialization_errors(bytes(codes))


@PROPERTY
@given(st.lists(TYPED, min_size=1, max_size=3), st.data())
def test_truncated_and_mutated_bodies_only_raise_serialization_error(
    trees: list[Typed], data: st.DataObject
) -> None:
    body = B.encode_typed(trees)
    for end in range(len(body)):
        _only_serialization_errors(body[:end])
    at = data.draw(st.integers(0, len(body) - 1))
    mutated = bytearray(body)
    mutated[at] = data.draw(st.integers(0, 255))
    _only_serialization_errors(bytes(mutated))


ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.just(object()),
)
TYPE_NAMES = st.sampled_from(
    [
        *SCALARS,
        "null",
        "map",
        "array",
        "packed_map",
        "packed_array",
        "message",
        "string_map",
        "nope",
    ]
)
WILD_TYPED = st.recursive(
    st.builds(Typed, TYPE_NAMES, ANYTHING),
    lambda children: st.builds(
        Typed,
        TYPE_NAMES,
        st.one_of(
            ANYTHING,
            st.lists(children, max_size=3).map(tuple),
            st.lists(st.tuples(children | FIELD_INDEX, children), max_size=3).map(tuple),
        ),
        st.none() | NAMES | st.integers(),
        st.none() | TYPE_NAMES,
        st.none() | TYPE_NAMES,
        st.none() | TYPE_NAMES,
    ),
    max_leaves=12,
)


@PROPERTY
@given(st.lists(WILD_TYPED | ANYTHING, max_size=3))
def test_arbitrary_trees_and_objects_only_raise_serialization_error(values: list[Any]) -> None:
    for encode in (B.encode_typed, B.encode_multi):
        try:
            body = encode(values)
        except SerializationError:
            continue
        assert B.encode_typed(B.decode_typed(body)) == body
