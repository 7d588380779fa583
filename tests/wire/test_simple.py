"""The simple serialization (spec section 4): shared vectors, worked examples, writing rules,
tolerant reading, and property tests over values, typed trees and arbitrary bytes."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motanmesh.wire.errors import SerializationError
from motanmesh.wire.serialization import Serialization
from motanmesh.wire.simple import MAX_DEPTH, SIMPLE_SERIALIZATION, SimpleSerialization
from motanmesh.wire.values import Byte, Float32, Int16, Int32, Typed, to_plain
from tests.vectors import load_vectors

S = SIMPLE_SERIALIZATION
PROPERTY = settings(deadline=None, max_examples=200)


_load = load_vectors


def _body(frame_hex: str) -> tuple[int, int, bytes]:
    """(flags, serialization id, body) of one Motan2 frame."""
    frame = bytes.fromhex(frame_hex)
    (meta_len,) = struct.unpack_from(">I", frame, 13)
    (body_len,) = struct.unpack_from(">I", frame, 17 + meta_len)
    start = 21 + meta_len
    assert len(frame) == start + body_len
    return frame[2], frame[4] >> 3, frame[start:]


def _php_bodies() -> list[tuple[str, bytes, list[Any]]]:
    """(id, body, logical values) of every simple body in the motan-php vectors."""
    out: list[tuple[str, bytes, list[Any]]] = []
    for vec in _load("motan-php-vectors.json")["vectors"]:
        if vec["kind"] == "simple_value":
            out.append((vec["id"], bytes.fromhex(vec["hex"]), [vec["logical"]]))
        elif vec["kind"] == "simple_multi":
            out.append((vec["id"], bytes.fromhex(vec["hex"]), vec["logical"]))
        elif "body_values" in vec.get("logical", {}):
            _, ser, body = _body(vec["hex"])
            if ser == 6:
                out.append((vec["id"], body, vec["logical"]["body_values"]))
    return out


PHP_BODIES = _php_bodies()


def _expected(logical: Any) -> Typed:
    """The typed tree a vector's logical JSON describes (floats from their bits)."""
    if isinstance(logical, str):  # bare strings inside string maps / string arrays
        return Typed("string", logical)
    t = logical["t"]
    if t == "null":
        return Typed("null")
    if t == "string":
        raw = bytes.fromhex(logical["hex"])
        if "v" in logical:
            assert raw == logical["v"].encode()
            return Typed("string", logical["v"])
        return Typed("string", raw)
    if t == "bytes":
        return Typed("bytes", bytes.fromhex(logical["hex"]))
    if t in ("float32", "float64"):
        fmt = ">f" if t == "float32" else ">d"
        (value,) = struct.unpack(fmt, bytes.fromhex(logical["bits"]))
        return Typed(t, value)
    if t in ("array", "string_array"):
        return Typed(t, tuple(_expected(x) for x in logical["v"]))
    if t in ("map", "string_map"):
        return Typed(t, tuple((_expected(k), _expected(v)) for k, v in logical["v"]))
    return Typed(t, logical["v"])


def _bits(x: float) -> bytes:
    return struct.pack(">d", x)


def same(a: Any, b: Any) -> bool:
    """Strict equality: same types everywhere, floats by their bits, dicts in order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return _bits(a) == _bits(b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    return bool(a == b)


# --------------------------------------------------------------------------------------------
# identity


def test_identity_and_protocol() -> None:
    typed: Serialization = S
    assert typed.id == 6
    assert typed.name == "simple"
    assert isinstance(S, SimpleSerialization)


def test_registry_finds_simple() -> None:
    pytest.importorskip("motanmesh.wire.breeze")
    from motanmesh.wire.serialization import get_serialization  # noqa: PLC0415

    assert get_serialization(6) is S
    assert get_serialization("simple") is S


# --------------------------------------------------------------------------------------------
# shared vectors


def test_php_vectors_are_all_found() -> None:
    ids = {vid for vid, _, _ in PHP_BODIES}
    assert len(PHP_BODIES) >= 20
    assert {"simple_mixed_map", "simple_multi_three_args", "req_bytes_arg", "resp_map_value"} <= ids


@pytest.mark.parametrize(("vid", "body", "logical"), PHP_BODIES, ids=[b[0] for b in PHP_BODIES])
def test_php_vector_decodes_to_logical(vid: str, body: bytes, logical: list[Any]) -> None:
    expected = [_expected(x) for x in logical]
    assert S.decode_typed(body) == expected
    assert S.encode_typed(expected) == body  # exact bytes, so float bits too
    plain = S.decode_multi(body)
    assert same(plain, [to_plain(x) for x in expected])
    if len(expected) == 1:
        assert same(S.decode(body), plain[0])


# where motan-php's writing differs from motan-go's for the decoded plain values
PHP_ONLY = {"req_bytes_arg": "PHP writes binary data as a string (1); bytes go out as 3"}


@pytest.mark.parametrize(("vid", "body", "logical"), PHP_BODIES, ids=[b[0] for b in PHP_BODIES])
def test_php_vector_reencodes_from_plain(vid: str, body: bytes, logical: list[Any]) -> None:
    again = S.encode_multi(S.decode_multi(body))
    if vid in PHP_ONLY:
        assert again != body
        assert again[0] == 3
        assert again[1:] == body[1:]
    else:
        assert again == body


def test_php_integral_float_and_empty_array_quirks() -> None:
    # PHP sends 2.0 as int64 2 and an empty array as null; motanmesh writes what Go writes
    assert S.encode(2) == bytes.fromhex("0904")
    assert S.encode(2.0) == bytes.fromhex("0b4000000000000000")
    assert S.encode([]) == bytes.fromhex("1500000000")
    assert S.decode(bytes.fromhex("00")) is None


def _go_bodies() -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for hop, data in _load("motan-go-captures.json")["hops"].items():
        for n, frame in enumerate(data["frames"]):
            flags, ser, body = _body(frame["hex"])
            if ser == 6 and body and not flags & 0x08:
                out.append((f"{hop}-{n}", body))
    return out


GO_BODIES = _go_bodies()


def test_go_captures_are_found() -> None:
    assert len(GO_BODIES) >= 30


@pytest.mark.parametrize(("name", "body"), GO_BODIES, ids=[b[0] for b in GO_BODIES])
def test_go_capture_round_trips(name: str, body: bytes) -> None:
    assert S.encode_typed(S.decode_typed(body)) == body
    assert S.encode_multi(S.decode_multi(body)) == body


# --------------------------------------------------------------------------------------------
# worked examples of the spec

INT64_TABLE = [
    (0, "0900"),
    (1, "0902"),
    (-1, "0901"),
    (63, "097e"),
    (64, "098001"),
    (-64, "097f"),
    (-65, "098101"),
    (300, "09d804"),
    (2147483647, "09feffffff0f"),
    (-2147483648, "09ffffffff0f"),
    (2**63 - 1, "09feffffffffffffffff01"),
    (-(2**63), "09ffffffffffffffffff01"),
]


@pytest.mark.parametrize(("value", "hexed"), INT64_TABLE)
def test_int64_table(value: int, hexed: str) -> None:
    assert S.encode(value).hex() == hexed
    decoded = S.decode(bytes.fromhex(hexed))
    assert type(decoded) is int
    assert decoded == value


@pytest.mark.parametrize(("value", "hexed"), INT64_TABLE)
def test_int64_table_inside_containers(value: int, hexed: str) -> None:
    body = bytes.fromhex(hexed)
    array = struct.pack(">BI", 21, len(body) + 1) + body + b"\x00"
    assert same(S.decode(array), [value, None])
    assert S.encode([value, None]) == array
    assert same(S.decode_multi(body + body), [value, value])


def test_int32_min_java_and_go_forms() -> None:
    go = bytes.fromhex("08ffffffff0f")
    java = bytes.fromhex("08ffffffffffffffffff01")
    assert S.encode(Int32(-(2**31))) == go
    for body in (go, java):
        value = S.decode(body)
        assert type(value) is Int32
        assert value == -(2**31)
    # the typed tree re-encodes Java's 10-byte form in the 5-byte form
    assert S.encode_typed(S.decode_typed(java)) == go


def _java_int32(value: int) -> bytes:
    zz = ((value << 1) ^ (value >> 31)) & 0xFFFFFFFF
    if zz & 0x80000000:  # widened as a signed 64-bit value
        zz |= 0xFFFFFFFF00000000
    out = bytearray([8])
    while zz >= 0x80:
        out.append(zz & 0x7F | 0x80)
        zz >>= 7
    out.append(zz)
    return bytes(out)


@pytest.mark.parametrize("value", [2**30, -(2**30) - 1, 2**31 - 1, -(2**31), 5, -7])
def test_java_int32_forms(value: int) -> None:
    body = _java_int32(value)
    assert same(S.decode(body), Int32(value))
    assert S.encode_typed(S.decode_typed(body)) == S.encode(Int32(value))


def test_mixed_map_example() -> None:
    body = bytes.fromhex("140000001c01000000016109020100000001620100000001780100000001630500")
    value = {"a": 1, "b": "x", "c": False}
    assert S.encode(value) == body
    assert same(S.decode(body), value)


def test_request_arguments_example() -> None:
    body = bytes.fromhex("010000000161090e0501")
    assert S.encode_multi(["a", 7, True]) == body
    assert same(S.decode_multi(body), ["a", 7, True])
    assert S.encode_multi([]) == b""


def test_frame_example_body() -> None:
    assert S.encode("world") == bytes.fromhex("0100000005776f726c64")


# --------------------------------------------------------------------------------------------
# writing rules (motan-go)

WRITES: list[tuple[Any, str]] = [
    (None, "00"),
    ("", "0100000000"),
    ("é", "0100000002c3a9"),
    (b"", "0300000000"),
    (b"\x00\xff", "030000000200ff"),
    (bytearray(b"\x01"), "030000000101"),
    (memoryview(b"\x02"), "030000000102"),
    (True, "0501"),
    (False, "0500"),
    (Byte(255), "06ff"),
    (Byte(-1), "06ff"),
    (Int16(-2), "07fffe"),
    (Int16(32767), "077fff"),
    (Int32(1), "0802"),
    (Int32(2**31 - 1), "08feffffff0f"),
    (Float32(1.5), "0a3fc00000"),
    (1.5, "0b3ff8000000000000"),
    (float("inf"), "0b7ff0000000000000"),
    ([], "1500000000"),
    ((), "1500000000"),
    (["a"], "040000000500000001" + "61"),
    (("a", "b"), "040000000a0000000161" + "0000000162"),
    (["a", 1], "150000000801000000016109" + "02"),
    ([True], "15000000020501"),
    ({}, "1400000000"),
    ({"a": "b"}, "020000000a0000000161" + "0000000162"),
    ({"a": 1}, "140000000801000000016109" + "02"),
    ({1: "a"}, "140000000809020100000001" + "61"),
    ({"a": None}, "140000000701000000016100"),
    ([[]], "15000000051500000000"),
]


@pytest.mark.parametrize(("value", "hexed"), WRITES, ids=[repr(w[0]) for w in WRITES])
def test_writes_like_motan_go(value: Any, hexed: str) -> None:
    assert S.encode(value).hex() == hexed


def test_bool_is_not_an_int() -> None:
    assert S.encode(True) != S.encode(1)
    assert S.encode([1, True]) == bytes.fromhex("1500000004" + "0902" + "0501")


def test_subclasses_of_builtin_types() -> None:
    class Name(str):
        pass

    class Count(int):
        pass

    class Ratio(float):
        pass

    assert S.encode(Name("x")) == S.encode("x")
    assert S.encode(Count(3)) == S.encode(3)
    assert S.encode(Ratio(0.5)) == S.encode(0.5)
    assert S.encode([Name("x")]) == S.encode(["x"])


REFUSED: list[Any] = [
    2**63,
    -(2**63) - 1,
    Int32(2**31),
    Int32(-(2**31) - 1),
    Int16(2**15),
    Byte(256),
    Byte(-129),
    {1, 2},
    frozenset(),
    object(),
    1j,
    Float32(1e300),
    "\ud800",
    ["ok", "\udfff"],
    {"k": "\ud800"},
    [{"k": {3}}],
]


@pytest.mark.parametrize("value", REFUSED, ids=[repr(r) for r in REFUSED])
def test_refuses_unsupported_values(value: Any) -> None:
    with pytest.raises(SerializationError):
        S.encode(value)
    with pytest.raises(SerializationError):
        S.encode_multi(["first", value])


def test_not_support_type_message() -> None:
    with pytest.raises(SerializationError, match="not support type set"):
        S.encode({1})


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_limit_on_both_sides() -> None:
    deepest = S.encode(_nested(MAX_DEPTH))
    assert same(S.decode(deepest), _nested(MAX_DEPTH))
    with pytest.raises(SerializationError, match="nested"):
        S.encode(_nested(MAX_DEPTH + 1))
    too_deep = b"".join(
        struct.pack(">BI", 21, 2 + 5 * (MAX_DEPTH - i)) for i in range(MAX_DEPTH + 1)
    )
    too_deep += b"\x09\x02"
    with pytest.raises(SerializationError, match="nested"):
        S.decode(too_deep)
    with pytest.raises(SerializationError, match="nested"):
        S.decode_typed(too_deep)


def test_self_referential_list_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError):
        S.encode(loop)


# --------------------------------------------------------------------------------------------
# reading what Java and PHP write


@pytest.mark.parametrize(("hexed", "value"), [("0501", True), ("0500", False), ("0502", False)])
def test_bool_byte(hexed: str, value: bool) -> None:
    assert S.decode(bytes.fromhex(hexed)) is value
    assert S.decode_typed(bytes.fromhex(hexed)) == [Typed("bool", value)]


def test_php_binary_string() -> None:
    body = bytes.fromhex("010000000300ff10")
    assert S.decode(body) == b"\x00\xff\x10"
    assert S.decode_typed(body) == [Typed("string", b"\x00\xff\x10")]
    assert S.encode_typed(S.decode_typed(body)) == body


def test_binary_strings_inside_string_containers() -> None:
    body = bytes.fromhex("020000000a00000001ff0000000161")
    assert S.decode(body) == {b"\xff": "a"}
    tree = S.decode_typed(body)
    assert tree == [Typed("string_map", ((Typed("string", b"\xff"), Typed("string", "a")),))]
    assert S.encode_typed(tree) == body


def test_narrow_types_read_back_with_markers() -> None:
    body = bytes.fromhex("06ff" + "07fffe" + "0803" + "0a3fc00000")
    values = S.decode_multi(body)
    assert same(values, [Byte(255), Int16(-2), Int32(-2), Float32(1.5)])
    assert S.encode_multi(values) == body


def test_empty_containers_and_go_empty_string_list() -> None:
    assert same(S.decode_multi(bytes.fromhex("0400000000" + "0200000000")), [[], {}])
    go_empty = bytes.fromhex("0400000000")
    assert S.decode_typed(go_empty) == [Typed("string_array", ())]
    assert S.encode_typed(S.decode_typed(go_empty)) == go_empty


def test_map_keys_are_made_hashable() -> None:
    key_list = S.encode_typed(
        [Typed("map", ((Typed("array", (Typed("int64", 1),)), Typed("null")),))]
    )
    assert same(S.decode(key_list), {(1,): None})
    dict_key = Typed("map", ((Typed("string", "k"), Typed("array", (Typed("int64", 2),))),))
    key_dict = S.encode_typed([Typed("map", ((dict_key, Typed("bool", True)),))])
    assert same(S.decode(key_dict), {(("k", (2,)),): True})
    assert same(S.decode(key_dict), to_plain(S.decode_typed(key_dict)[0]))
    # a tuple key goes out as an array, so it comes back equal
    assert same(S.decode(S.encode({(1, "a"): 3})), {(1, "a"): 3})


def test_empty_body() -> None:
    assert S.decode(b"") is None
    assert S.decode_multi(b"") == []
    assert S.decode_typed(b"") == []
    assert S.encode_typed([]) == b""


def test_buffer_types() -> None:
    body = S.encode(["x", 1])
    assert S.decode(bytearray(body)) == ["x", 1]
    assert S.decode_multi(memoryview(body)) == [["x", 1]]


BAD = [
    ("0c", "not support type 12"),
    ("13", "not support type 19"),
    ("16", "not support type 22"),
    ("ff", "not support type 255"),
    ("1500000001" + "0c", "not support type 12"),
    ("01", "truncated"),
    ("0100000005" + "6869", "truncated"),
    ("0100000003" + "6869", "truncated"),
    ("0300000001", "truncated"),
    ("1500000006" + "0100000002" + "68", "truncated"),
    ("01ffffffff", "truncated"),
    ("15ffffffff", "truncated"),
    ("0209", "truncated"),
    ("09", "truncated"),
    ("0980", "truncated"),
    ("09" + "80" * 10 + "01", "varint"),
    ("05", "truncated"),
    ("06", "truncated"),
    ("07ff", "truncated"),
    ("0a000000", "truncated"),
    ("0b00000000000000", "truncated"),
    ("1500000003" + "0900" + "0900", "wrong map/array size"),
    ("1400000002" + "0900", "truncated map value"),
    ("1400000003" + "0900" + "0900", "wrong map/array size"),
    ("0200000004" + "00000000", "wrong map/array size"),
    ("0400000003" + "00000000", "wrong map/array size"),
    ("0400000004" + "00000001", "truncated"),
    ("0900" + "00", "1 bytes after the value"),
]


@pytest.mark.parametrize(("hexed", "message"), BAD, ids=[b[0] for b in BAD])
def test_refuses_bad_bodies(hexed: str, message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        S.decode(bytes.fromhex(hexed))
    if "after the value" not in message:
        with pytest.raises(SerializationError):
            S.decode_typed(bytes.fromhex(hexed))
        with pytest.raises(SerializationError):
            S.decode_multi(bytes.fromhex(hexed))


@pytest.mark.parametrize("code", [c for c in range(256) if c not in (*range(12), 20, 21)])
def test_every_unknown_type_code(code: int) -> None:
    with pytest.raises(SerializationError, match=f"not support type {code}\\b") as info:
        S.decode_multi(bytes([0, code]))
    assert info.value.offset == 1


BAD_TYPED = [
    Typed("packed_map", ()),
    Typed("int64", True),
    Typed("int64", "1"),
    Typed("int64", 2**63),
    Typed("int32", 2**31),
    Typed("byte", 256),
    Typed("bool", 1),
    Typed("float64", "x"),
    Typed("bytes", "x"),
    Typed("string", 3),
    Typed("array", (1,)),
    Typed("array", None),
    Typed("string_array", (Typed("int64", 1),)),
    Typed("string_map", ((Typed("string", "a"),),)),
    Typed("map", ((Typed("string", "a"), 2),)),
]


@pytest.mark.parametrize("tree", BAD_TYPED, ids=[repr(t) for t in BAD_TYPED])
def test_encode_typed_refuses_malformed_trees(tree: Typed) -> None:
    with pytest.raises(SerializationError):
        S.encode_typed([tree])


def test_encode_typed_refuses_non_typed() -> None:
    with pytest.raises(SerializationError):
        S.encode_typed(["plain"])  # type: ignore[list-item]


def test_float32_nan_payload_is_kept() -> None:
    for hexed in ("0a7f800001", "0aff800001", "0a7fc00000", "0a7fffffff"):
        body = bytes.fromhex(hexed)
        value = S.decode(body)
        assert type(value) is Float32
        assert math.isnan(value)
        assert S.encode(value) == body
        assert S.encode_typed(S.decode_typed(body)) == body


# --------------------------------------------------------------------------------------------
# properties

_scalars = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.integers(0, 255).map(Byte),
    st.integers(-(2**15), 2**15 - 1).map(Int16),
    st.integers(-(2**31), 2**31 - 1).map(Int32),
    st.floats(width=32).map(Float32),
)
_keys = st.one_of(
    st.text(max_size=10),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.binary(max_size=5),
    st.integers(-(2**31), 2**31 - 1).map(Int32),
)
plain_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(st.text(max_size=8), min_size=1, max_size=5),
        st.dictionaries(_keys, children, max_size=5),
        st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=5),
    ),
    max_leaves=30,
)


@PROPERTY
@given(plain_values)
def test_plain_round_trip(value: Any) -> None:
    body = S.encode(value)
    back = S.decode(body)
    assert same(back, value)
    assert S.encode(back) == body
    assert same(back, to_plain(S.decode_typed(body)[0]))
    assert S.encode_typed(S.decode_typed(body)) == body


@PROPERTY
@given(st.lists(plain_values, max_size=4))
def test_plain_multi_round_trip(values: list[Any]) -> None:
    body = S.encode_multi(values)
    assert same(S.decode_multi(body), values)
    assert body == b"".join(S.encode(v) for v in values)


def _string_node(raw: bytes) -> Typed:
    try:
        return Typed("string", raw.decode())
    except UnicodeDecodeError:
        return Typed("string", raw)


_strings = st.binary(max_size=12).map(_string_node) | st.text(max_size=8).map(
    lambda s: Typed("string", s)
)
_typed_scalars = st.one_of(
    st.just(Typed("null")),
    _strings,
    st.binary(max_size=12).map(lambda b: Typed("bytes", b)),
    st.booleans().map(lambda b: Typed("bool", b)),
    st.integers(0, 255).map(lambda i: Typed("byte", i)),
    st.integers(-(2**15), 2**15 - 1).map(lambda i: Typed("int16", i)),
    st.integers(-(2**31), 2**31 - 1).map(lambda i: Typed("int32", i)),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: Typed("int64", i)),
    st.floats(width=32, allow_nan=False).map(lambda f: Typed("float32", f)),
    st.floats(allow_nan=False).map(lambda f: Typed("float64", f)),
)


def _typed_containers(children: st.SearchStrategy[Typed]) -> st.SearchStrategy[Typed]:
    return st.one_of(
        st.lists(children, max_size=5).map(lambda xs: Typed("array", tuple(xs))),
        st.lists(st.tuples(children, children), max_size=4).map(lambda p: Typed("map", tuple(p))),
        st.lists(_strings, max_size=5).map(lambda xs: Typed("string_array", tuple(xs))),
        st.lists(st.tuples(_strings, _strings), max_size=4).map(
            lambda p: Typed("string_map", tuple(p))
        ),
    )


typed_trees = st.recursive(_typed_scalars, _typed_containers, max_leaves=30)


@PROPERTY
@given(st.lists(typed_trees, max_size=4))
def test_typed_round_trip(trees: list[Typed]) -> None:
    body = S.encode_typed(trees)
    assert S.decode_typed(body) == trees
    assert S.encode_typed(S.decode_typed(body)) == body
    assert len(S.decode_multi(body)) == len(trees)


def _decodes_or_refuses(body: bytes) -> None:
    """Only ever a value or a SerializationError; what decodes is consistent and canonical."""
    try:
        trees = S.decode_typed(body)
    except SerializationError:
        with pytest.raises(SerializationError):
            S.decode_multi(body)
        return
    plain = S.decode_multi(body)
    assert same(plain, [to_plain(t) for t in trees])
    canonical = S.encode_typed(trees)
    assert S.encode_typed(S.decode_typed(canonical)) == canonical
    try:
        single = S.decode(body)
    except SerializationError:
        assert len(trees) > 1
    else:
        assert same([single] if body else [], plain)


@PROPERTY
@given(st.binary(max_size=64))
def test_arbitrary_bytes(body: bytes) -> None:
    _decodes_or_refuses(body)


_shaped_bytes = st.lists(
    st.one_of(
        st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 20, 21]).map(lambda c: bytes([c])),
        st.integers(0, 40).map(lambda n: struct.pack(">I", n)),
        st.binary(max_size=4),
    ),
    max_size=24,
).map(b"".join)


@PROPERTY
@given(_shaped_bytes)
def test_shaped_garbage(body: bytes) -> None:
    _decodes_or_refuses(body)


@PROPERTY
@given(plain_values, st.data())
def test_every_truncation_is_refused(value: Any, data: st.DataObject) -> None:
    body = S.encode(value)
    for cut in range(1, len(body)):
        with pytest.raises(SerializationError):
            S.decode(body[:cut])
        with pytest.raises(SerializationError):
            S.decode_multi(body[:cut])
        with pytest.raises(SerializationError):
            S.decode_typed(body[:cut])
    index = data.draw(st.integers(0, len(body) - 1))
    byte = data.draw(st.integers(0, 255))
    _decodes_or_refuses(body[:index] + bytes([byte]) + body[index + 1 :])
