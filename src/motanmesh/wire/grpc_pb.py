"""Serialization id 1, ``grpc-pb`` (spec section 5): one protobuf message, as it is.

The body is the marshalled message itself, without a length prefix or any framing, and a
request carries exactly one argument. Nothing here parses protobuf: values are ``bytes`` (an
object with ``SerializeToString()``, such as a generated message class, is encoded by calling
it). This is what the gRPC ingress and the ``grpc`` provider put on the Motan2 wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from motanmesh.wire.errors import WireError
from motanmesh.wire.values import Typed

__all__ = ["GRPC_PB_SERIALIZATION", "GrpcPbSerialization"]


class GrpcPbSerialization:
    """Serialization id 1: the body is one protobuf message's bytes."""

    __slots__ = ()

    @property
    def id(self) -> int:
        return 1

    @property
    def name(self) -> str:
        return "grpc-pb"

    def encode(self, value: Any) -> bytes:
        if value is None:
            return b""
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        serialize = getattr(value, "SerializeToString", None)
        if callable(serialize):
            data = serialize()
            if isinstance(data, bytes):
                return data
        raise WireError(f"grpc-pb encodes bytes or a protobuf message, not {type(value).__name__}")

    def encode_multi(self, values: Sequence[Any]) -> bytes:
        if not values:
            return b""
        if len(values) > 1:
            raise WireError(f"grpc-pb carries exactly one argument, got {len(values)}")
        return self.encode(values[0])

    def decode(self, body: bytes) -> bytes:
        return bytes(body)

    def decode_multi(self, body: bytes) -> list[Any]:
        return [bytes(body)]

    def decode_typed(self, body: bytes) -> list[Typed]:
        return [Typed("bytes", bytes(body))]

    def encode_typed(self, values: Sequence[Typed]) -> bytes:
        if len(values) != 1 or not isinstance(values[0].v, bytes | bytearray):
            raise WireError("grpc-pb carries exactly one bytes value")
        return bytes(values[0].v)


GRPC_PB_SERIALIZATION: Final = GrpcPbSerialization()
