"""The gRPC ↔ Motan2 mapping (``motanmesh.grpcmap``): paths, metadata, status codes."""

from __future__ import annotations

import pytest

from motanmesh import grpcmap
from motanmesh.grpcmap import (
    attachments_to_metadata,
    grpc_code_for,
    metadata_to_attachments,
    motan_error_for,
    split_method,
    status_of,
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/pkg.Svc/Method", ("pkg.Svc", "Method")),
        ("/Svc/M", ("Svc", "M")),
        ("pkg.Svc/Method", None),
        ("/pkg.Svc", None),
        ("/pkg.Svc/", None),
        ("//Method", None),
        ("/a/b/c", None),
        ("", None),
    ],
)
def test_split_method(path: str, expected: tuple[str, str] | None) -> None:
    assert split_method(path) == expected


def test_metadata_to_attachments() -> None:
    got = metadata_to_attachments(
        [
            ("user-agent", "grpc-python"),
            ("grpc-accept-encoding", "gzip"),
            (":authority", "x"),
            ("x-user", "alice"),
            ("trace-bin", b"\x00\xff"),
            ("motan-g", "group-a"),
            ("motan-p", "other.Service"),
            ("motan-", "nothing"),
            ("x-user", "bob"),
        ],
        skip=frozenset({"M_p"}),
    )
    assert got == {"x-user": "bob", "trace-bin": "AP8=", "M_g": "group-a"}


def test_attachments_to_metadata() -> None:
    got = attachments_to_metadata(
        {
            "M_e": "{}",
            "M_pt": "3",
            "x-ok": "v",
            "Mixed-Case": "kept lower",
            "trace-bin": "AP8",  # unpadded base64 is accepted
            "bad-bin": "***",
            "grpc-status": "5",
            "host": "10.0.0.1",
            "sp ace": "x",
            "x-nonascii": "caf\u00e9",
        },
        skip=frozenset({"M_e"}),
    )
    assert got == [
        ("motan-pt", "3"),
        ("x-ok", "v"),
        ("mixed-case", "kept lower"),
        ("trace-bin", b"\x00\xff"),
    ]


def test_metadata_round_trip() -> None:
    pairs: list[tuple[str, str | bytes]] = [
        ("a", "1"),
        ("b-bin", b"\x01\x02\x03"),
        ("motan-s", "app"),
    ]
    assert attachments_to_metadata(metadata_to_attachments(pairs)) == pairs


def test_every_status_round_trips_through_a_motan_error() -> None:
    for code in range(1, 17):
        errcode, errtype = motan_error_for(code)
        assert errtype in (1, 2) and 400 <= errcode < 600
        assert status_of(str(code)) == code
    assert motan_error_for(grpcmap.INVALID_ARGUMENT) == (400, 2)
    assert motan_error_for(grpcmap.UNAVAILABLE) == (503, 1)
    assert motan_error_for(99) == (500, 1)


@pytest.mark.parametrize("value", ["0", "17", "-1", "x", "", " 5"])
def test_status_of_refuses(value: str) -> None:
    assert status_of(value) is None


@pytest.mark.parametrize(
    ("errcode", "errmsg", "code"),
    [
        (1001, "no available endpoints", grpcmap.UNAVAILABLE),
        (1002, "", grpcmap.UNAVAILABLE),
        (404, "provider not exist serviceKey=g_s", grpcmap.UNIMPLEMENTED),
        (404, "no such user", grpcmap.NOT_FOUND),
        (400, "channel call error: request to 1.2.3.4:1 timed out", grpcmap.DEADLINE_EXCEEDED),
        (400, "channel call error: connection lost", grpcmap.UNAVAILABLE),
        (400, "bad argument", grpcmap.INVALID_ARGUMENT),
        (500, "cluster not available, maybe caused by degrade", grpcmap.UNAVAILABLE),
        (500, "boom", grpcmap.UNKNOWN),
        (503, "", grpcmap.UNAVAILABLE),
        (504, "", grpcmap.DEADLINE_EXCEEDED),
        (20001, "java framework", grpcmap.UNKNOWN),
    ],
)
def test_grpc_code_for(errcode: int, errmsg: str, code: int) -> None:
    assert grpc_code_for(errcode, errmsg) == code
