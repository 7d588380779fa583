"""Serialization id 1, ``grpc-pb``: one protobuf message's bytes, as they are."""

from __future__ import annotations

import pytest

from motanmesh.wire.errors import WireError
from motanmesh.wire.serialization import GRPC_PB, get_serialization
from motanmesh.wire.values import Typed


class _Message:
    def SerializeToString(self) -> bytes:  # noqa: N802 - the protobuf method name
        return b"\x0a\x02hi"


def test_found_by_id_and_name() -> None:
    ser = get_serialization(GRPC_PB)
    assert ser is get_serialization("grpc-pb")
    assert (ser.id, ser.name) == (1, "grpc-pb")


def test_bytes_and_messages_travel_as_they_are() -> None:
    ser = get_serialization(GRPC_PB)
    assert ser.encode_multi([b"\x0a\x02hi"]) == b"\x0a\x02hi"
    assert ser.encode_multi([_Message()]) == b"\x0a\x02hi"
    assert ser.encode_multi([]) == b""
    assert ser.encode(None) == b""
    assert ser.decode(b"\x0a\x02hi") == b"\x0a\x02hi"
    assert ser.decode_multi(b"") == [b""]
    typed = ser.decode_typed(b"\x01")
    assert typed == [Typed("bytes", b"\x01")]
    assert ser.encode_typed(typed) == b"\x01"


@pytest.mark.parametrize("args", [[b"a", b"b"], ["text"], [1], [{"k": "v"}]])
def test_refuses_what_is_not_one_message(args: list[object]) -> None:
    with pytest.raises(WireError):
        get_serialization(GRPC_PB).encode_multi(args)


def test_encode_typed_refuses_other_values() -> None:
    with pytest.raises(WireError):
        get_serialization(GRPC_PB).encode_typed([Typed("string", "x")])
