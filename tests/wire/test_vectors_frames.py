"""Every frame of the shared vectors: motan-php frames and motan-go captures decode to their
recorded logical form, and the writers reproduce the bytes motan-go writes."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from motanmesh.wire.errors import UnsupportedVersionError
from motanmesh.wire.frame import (
    Frame,
    answer_heartbeat,
    encode_frame,
    exception_frame,
    exception_json,
    heartbeat_request,
    heartbeat_response,
    parse_exception,
    parse_frame,
)
from motanmesh.wire.passthrough import forward
from motanmesh.wire.serialization import get_serialization
from motanmesh.wire.values import to_json
from tests.vectors import load_vectors

FRAME_KINDS = ("request", "response", "response_error", "heartbeat")


_load = load_vectors


PHP: list[dict[str, Any]] = [
    v for v in _load("motan-php-vectors.json")["vectors"] if v["kind"] in FRAME_KINDS
]
V1_HEARTBEAT: dict[str, Any] = next(
    v for v in _load("motan-php-vectors.json")["vectors"] if v["kind"] == "v1_heartbeat"
)
GO: list[dict[str, Any]] = [
    {**f, "hop": hop}
    for hop, h in _load("motan-go-captures.json")["hops"].items()
    for f in h["frames"]
]


def _go_id(f: dict[str, Any]) -> str:
    return f"{f['hop']}-{f['conn']}-{f['dir']}-{f['summary']['request_id']}"


def all_frame_bytes() -> list[bytes]:
    """Every Motan2 frame of both vector files, in file order (used by the decoder tests)."""
    return [bytes.fromhex(v["hex"]) for v in PHP] + [bytes.fromhex(f["hex"]) for f in GO]


def test_vector_files_hold_what_the_tests_expect() -> None:
    kinds = {v["kind"] for v in PHP}
    assert kinds == set(FRAME_KINDS)
    assert len(GO) >= 40
    assert {f["hop"] for f in GO} == {"app-to-agent", "agent-to-agent", "agent-to-backend"}


# --------------------------------------------------------------------------- motan-php


def same_value(logical: Any, got: dict[str, Any]) -> bool:
    """Compare a vector's ``logical`` value with :func:`to_json` output.

    The vectors show string-array elements and string-map entries as bare strings and carry
    floats as authoritative ``bits``; everything else has the same shape.
    """
    if isinstance(logical, str):
        return bool(got["t"] == "string" and got.get("v") == logical)
    if logical["t"] != got["t"]:
        return False
    t = logical["t"]
    if "bits" in logical:
        fmt = ">d" if t == "float64" else ">f"
        return bool(struct.pack(fmt, got["v"]).hex() == logical["bits"])
    if t in ("array", "string_array", "packed_array"):
        return len(logical["v"]) == len(got["v"]) and all(
            same_value(a, b) for a, b in zip(logical["v"], got["v"], strict=True)
        )
    if t in ("map", "string_map", "packed_map"):
        return (
            logical.get("ktype") == got.get("ktype")
            and logical.get("vtype") == got.get("vtype")
            and len(logical["v"]) == len(got["v"])
            and all(
                same_value(lk, gk) and same_value(lv, gv)
                for (lk, lv), (gk, gv) in zip(logical["v"], got["v"], strict=True)
            )
        )
    same: bool = logical == got
    return same


@pytest.mark.parametrize("vec", PHP, ids=[v["id"] for v in PHP])
def test_php_frame_decodes_to_its_logical_form(vec: dict[str, Any]) -> None:
    frame = parse_frame(bytes.fromhex(vec["hex"]))
    logical = vec["logical"]
    h = logical["header"]
    assert frame.flags == h["msg_type_byte"]
    assert frame.is_request == h["request"]
    assert frame.is_response == (not h["request"])
    assert frame.is_heartbeat == h["heartbeat"]
    assert frame.is_gzip == h["gzip"]
    assert frame.is_oneway == h["oneway"]
    assert frame.is_proxy == h["proxy"]
    assert frame.version == h["version"]
    assert frame.status == h["status"]
    assert frame.is_exception == (h["status"] == 1)
    assert frame.serialization == h["serialization"]
    assert frame.request_id == int(h["request_id"])
    assert [list(p) for p in frame.metadata.items()] == logical["metadata"]
    if "exception" in logical:
        exc = parse_exception(frame.metadata["M_e"])
        assert exc.errcode == logical["exception"]["errcode"]
        assert exc.errmsg == logical["exception"]["errmsg"]
        assert exc.errtype == logical["exception"]["errtype"]
    else:
        assert "M_e" not in frame.metadata
    expected_values = logical["body_values"]
    if not frame.body:
        assert expected_values == []
        return
    ser = get_serialization(logical["body_serialization"])
    assert ser.id == frame.serialization
    got = [to_json(v) for v in ser.decode_typed(frame.body)]
    assert len(got) == len(expected_values)
    for want, have in zip(expected_values, got, strict=True):
        assert same_value(want, have), (want, have)


@pytest.mark.parametrize("vec", PHP, ids=[v["id"] for v in PHP])
def test_php_frame_reencodes_when_no_value_is_empty(vec: dict[str, Any]) -> None:
    raw = bytes.fromhex(vec["hex"])
    frame = parse_frame(raw)
    if any(not v for v in frame.metadata.values()):
        # The encoder drops empty values as motan-go does; everything else survives.
        again = parse_frame(encode_frame(frame))
        assert again.metadata == {k: v for k, v in frame.metadata.items() if v}
    else:
        assert encode_frame(frame) == raw
        assert frame.encode() == raw


@pytest.mark.parametrize("vec", PHP, ids=[v["id"] for v in PHP])
def test_php_frame_forwards_byte_for_byte(vec: dict[str, Any]) -> None:
    raw = bytes.fromhex(vec["hex"])
    frame = parse_frame(raw)
    assert forward(frame, frame.request_id) == raw


def test_php_heartbeat_vectors_equal_the_builders() -> None:
    by_id = {v["id"]: bytes.fromhex(v["hex"]) for v in PHP}
    assert heartbeat_request(100) == by_id["heartbeat_request_motan_go_style"]
    assert heartbeat_request(101, style="java") == by_id["heartbeat_request_java_style"]


# --------------------------------------------------------------------------- motan-go


@pytest.mark.parametrize("cap", GO, ids=[_go_id(f) for f in GO])
def test_go_capture_decodes_to_its_summary(cap: dict[str, Any]) -> None:
    raw = bytes.fromhex(cap["hex"])
    frame = parse_frame(raw)
    s = cap["summary"]
    assert f"0x{frame.flags:02x}" == s["flags"]
    assert frame.version == s["version"]
    assert frame.status == s["status"]
    assert frame.serialization == s["serialization"]
    assert frame.request_id == int(s["request_id"])
    assert [list(p) for p in frame.metadata.items()] == s["metadata"]
    assert len(frame.body) == s["body_len"]
    assert frame.is_response == (cap["dir"] == "s2c")


@pytest.mark.parametrize("cap", GO, ids=[_go_id(f) for f in GO])
def test_go_capture_reencodes_and_forwards_identically(cap: dict[str, Any]) -> None:
    raw = bytes.fromhex(cap["hex"])
    frame = parse_frame(raw)
    assert all(frame.metadata.values())  # motan-go never writes an empty value
    assert encode_frame(frame) == raw
    assert forward(frame, frame.request_id) == raw
    # A copy built from the logical fields alone (no raw metadata) encodes the same.
    rebuilt = Frame(
        frame.flags, frame.status, frame.serialization, frame.request_id, dict(frame.metadata)
    )
    rebuilt.body = frame.body
    assert encode_frame(rebuilt) == raw
    assert forward(rebuilt, frame.request_id) == raw


def _go_errors() -> list[dict[str, Any]]:
    return [f for f in GO if f["summary"]["status"] == 1]


@pytest.mark.parametrize("cap", _go_errors(), ids=[_go_id(f) for f in _go_errors()])
def test_exception_json_reproduces_go_written_m_e(cap: dict[str, Any]) -> None:
    frame = parse_frame(bytes.fromhex(cap["hex"]))
    m_e = frame.metadata["M_e"]
    exc = parse_exception(m_e)
    assert exc.errcode in (400, 404)
    assert exc.errtype == 1
    assert exception_json(exc.errcode, exc.errmsg, exc.errtype) == m_e


def test_go_error_captures_are_the_expected_ones() -> None:
    msgs = [
        parse_exception(parse_frame(bytes.fromhex(f["hex"])).metadata["M_e"]) for f in _go_errors()
    ]
    assert any(e.errcode == 400 and e.errmsg.startswith("cluster not found.") for e in msgs)
    assert any(
        e.errcode == 404 and e.errmsg.startswith("provider not exist serviceKey=") for e in msgs
    )


def test_exception_frame_reproduces_the_cluster_not_found_answer() -> None:
    cap = next(
        f
        for f in _go_errors()
        if parse_exception(parse_frame(bytes.fromhex(f["hex"])).metadata["M_e"]).errcode == 400
    )
    raw = bytes.fromhex(cap["hex"])
    built = exception_frame(
        3,
        400,
        "cluster not found. cluster: cluster not found. service: no.such.Service",
        1,
        serialization=0,
        proxy=True,
        metadata={"M_pt": "0"},
    )
    assert built.encode() == raw


def _heartbeats() -> list[dict[str, Any]]:
    return [f for f in GO if int(f["summary"]["flags"], 16) & 0x10]


@pytest.mark.parametrize("cap", _heartbeats(), ids=[_go_id(f) for f in _heartbeats()])
def test_go_heartbeats_equal_the_builders(cap: dict[str, Any]) -> None:
    raw = bytes.fromhex(cap["hex"])
    rid = int(cap["summary"]["request_id"])
    flags = int(cap["summary"]["flags"], 16)
    expected = {
        0x12: heartbeat_request(rid),
        0x13: heartbeat_response(rid),
        0x10: heartbeat_request(rid, style="java"),
        0x11: heartbeat_response(rid, style="java"),
    }[flags]
    assert raw == expected
    assert len(raw) == 21


def test_go_server_answers_every_heartbeat_style_in_go_form() -> None:
    pairs: dict[tuple[str, int, str], bytes] = {
        (f["hop"], f["conn"], f["dir"]): bytes.fromhex(f["hex"]) for f in _heartbeats()
    }
    answered = 0
    for (hop, conn, direction), raw in pairs.items():
        if direction != "c2s":
            continue
        reply = pairs[(hop, conn, "s2c")]
        assert answer_heartbeat(parse_frame(raw)) == reply
        answered += 1
    assert answered == 3  # go style twice, java style once


def test_v1_heartbeat_vector_is_not_a_motan2_frame() -> None:
    with pytest.raises(UnsupportedVersionError) as ei:
        parse_frame(bytes.fromhex(V1_HEARTBEAT["hex"]))
    assert ei.value.version == 0
