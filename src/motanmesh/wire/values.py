"""Values carried by the serializations, shared by ``simple`` and ``breeze``.

Two views of a body are offered:

* **plain** Python values for applications: ``None``, ``str``, ``bytes``, ``bool``, ``int``
  (written as int64), ``float`` (written as float64), ``list``, ``dict``, :class:`BreezeMessage`.
  The subclasses :class:`Byte`, :class:`Int16`, :class:`Int32` and :class:`Float32` ask for a
  narrower wire type, and decoders return them for those wire types, so a plain value
  re-encodes to the type it arrived as.
* a lossless **typed** tree (:class:`Typed`) that records the exact wire type of every node,
  including the container forms (string map vs map, packed vs not). Encoding a decoded
  ``Typed`` tree gives back the same bytes; tools (``motanmesh decode --json``) print it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any


class Byte(int):
    """An integer that goes on the wire as one byte (simple 6, breeze 0x9c)."""


class Int16(int):
    """An integer written as int16."""


class Int32(int):
    """An integer written as int32."""


class Float32(float):
    """A float written as IEEE-754 single precision."""


@dataclass(slots=True)
class BreezeMessage:
    """A breeze message read generically: its name and its fields by index."""

    name: str
    fields: dict[int, Any] = field(default_factory=dict)


#: wire type names used by :class:`Typed` (and by the shared test vectors)
SCALAR_TYPES = frozenset(
    {"null", "string", "bytes", "bool", "byte", "int16", "int32", "int64", "float32", "float64"}
)
CONTAINER_TYPES = frozenset(
    {"string_map", "string_array", "map", "array", "packed_map", "packed_array", "message"}
)


@dataclass(frozen=True, slots=True)
class Typed:
    """One value with its exact wire type.

    ``v`` holds, by ``t``:

    * scalars: the Python value (``None`` for null, ``bytes`` for string when it is not valid
      UTF-8, ``str`` otherwise; ``bytes`` for bytes);
    * ``string_array`` / ``array`` / ``packed_array``: a tuple of :class:`Typed`;
    * ``string_map`` / ``map`` / ``packed_map``: a tuple of ``(Typed, Typed)`` pairs, in wire order;
    * ``message``: a tuple of ``(index, Typed)`` pairs, with the message name in ``name``.

    ``ktype``/``vtype``/``etype`` are the element type names of breeze packed containers
    (``None`` when the packed container is empty and carries no descriptor).
    """

    t: str
    v: Any = None
    name: str | None = None
    ktype: str | None = None
    vtype: str | None = None
    etype: str | None = None


def to_plain(value: Typed) -> Any:
    """Convert a typed tree to plain Python values (narrow types keep their marker class)."""
    t = value.t
    v = value.v
    if t in ("array", "string_array", "packed_array"):
        return [to_plain(x) for x in v]
    if t in ("map", "string_map", "packed_map"):
        return {_hashable(to_plain(k)): to_plain(x) for k, x in v}
    if t == "message":
        return BreezeMessage(value.name or "", {i: to_plain(x) for i, x in v})
    if t == "byte":
        return Byte(v)
    if t == "int16":
        return Int16(v)
    if t == "int32":
        return Int32(v)
    if t == "float32":
        return Float32(v)
    return v


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(x) for x in key)
    if isinstance(key, dict):
        return tuple((k, _hashable(x)) for k, x in key.items())
    return key


def to_json(value: Typed) -> dict[str, Any]:
    """Render a typed tree as JSON-ready data, in the shape of the shared vectors' ``logical``."""
    out: dict[str, Any] = {"t": value.t}
    t = value.t
    v = value.v
    if t == "null":
        return out
    if t in ("array", "string_array", "packed_array"):
        out["v"] = [to_json(x) for x in v]
        if t == "packed_array":
            out["etype"] = value.etype
        return out
    if t in ("map", "string_map", "packed_map"):
        out["v"] = [[to_json(k), to_json(x)] for k, x in v]
        if t == "packed_map":
            out["ktype"] = value.ktype
            out["vtype"] = value.vtype
        return out
    if t == "message":
        out["name"] = value.name
        out["fields"] = [[i, to_json(x)] for i, x in v]
        return out
    if isinstance(v, bytes):
        out["hex"] = v.hex()
        if t == "string":
            with contextlib.suppress(UnicodeDecodeError):
                out["v"] = v.decode("utf-8")
        return out
    if isinstance(v, str):
        out["v"] = v
        out["hex"] = v.encode("utf-8").hex()
        return out
    out["v"] = v
    return out
