"""Serializations by id (spec section 5): the interface and the registry.

The transport and the SDK pick a serialization by the frame's id (byte 4 >> 3) or by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from motanmesh.wire.errors import UnknownSerializationError
from motanmesh.wire.values import Typed

# Serialization ids (spec 5).
HESSIAN2 = 0
GRPC_PB = 1
JSON = 2
MSGPACK = 3
HPROSE = 4
PROTOBUF = 5
SIMPLE = 6
GRPC_PB_JSON = 7
BREEZE = 8


class Serialization(Protocol):
    """Encode and decode bodies of one serialization."""

    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...

    def encode(self, value: Any) -> bytes:
        """One value (a response body). ``None`` gives what motan-go writes for nil."""
        ...

    def encode_multi(self, values: Sequence[Any]) -> bytes:
        """Request arguments, concatenated; no arguments gives ``b""``."""
        ...

    def decode(self, body: bytes) -> Any:
        """One value; an empty body is ``None``."""
        ...

    def decode_multi(self, body: bytes) -> list[Any]:
        """Every value in the body, in order (request arguments)."""
        ...

    def decode_typed(self, body: bytes) -> list[Typed]:
        """Every value in the body as a lossless typed tree."""
        ...

    def encode_typed(self, values: Sequence[Typed]) -> bytes:
        """The exact bytes of typed trees (inverse of :meth:`decode_typed`)."""
        ...


_BY_ID: dict[int, Serialization] = {}
_BY_NAME: dict[str, Serialization] = {}


def register_serialization(serialization: Serialization) -> None:
    _BY_ID[serialization.id] = serialization
    _BY_NAME[serialization.name] = serialization


def get_serialization(ident: int | str) -> Serialization:
    """The serialization for an id (6) or name (``"simple"``); raises
    :class:`UnknownSerializationError` when there is none."""
    _load_builtin()
    found = _BY_ID.get(ident) if isinstance(ident, int) else _BY_NAME.get(ident)
    if found is None:
        raise UnknownSerializationError(ident)
    return found


def serialization_id(name: str) -> int:
    """The id of a serialization name as used in URLs (``simple`` → 6)."""
    return get_serialization(name).id


_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from motanmesh.wire import breeze, grpc_pb, simple  # noqa: PLC0415 - registers themselves

    register_serialization(simple.SIMPLE_SERIALIZATION)
    register_serialization(breeze.BREEZE_SERIALIZATION)
    register_serialization(grpc_pb.GRPC_PB_SERIALIZATION)
