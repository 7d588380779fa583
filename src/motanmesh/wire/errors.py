"""The one exception family of the wire layer.

Every refusal of the sans-I/O layer is a :class:`WireError`. Each subclass says what kind of
input was wrong and carries the details (offset, limit, the offending value) as attributes, so
callers can answer or log precisely without parsing messages.
"""

from __future__ import annotations

from typing import Any


class WireError(Exception):
    """Base of everything the wire layer refuses."""

    #: frames an incremental decoder completed from the same input before the bad bytes;
    #: the owner should still serve them
    frames: tuple[Any, ...] = ()


class FrameError(WireError):
    """A Motan2/v1 frame that cannot be read: bad magic, unknown version, truncated, ..."""


class BadMagicError(FrameError):
    """The first two bytes of a frame are not ``f1 f1``."""

    def __init__(self, got: bytes) -> None:
        super().__init__(f"bad magic {got.hex()!r}, expected 'f1f1'")
        self.got = got


class UnsupportedVersionError(FrameError):
    """``byte3 >> 3`` is neither 0 (Motan v1) nor 1 (Motan2)."""

    def __init__(self, version: int) -> None:
        super().__init__(f"unsupported motan version {version}")
        self.version = version


class FrameTooLargeError(FrameError):
    """A metadata or body length field is over the configured limit."""

    def __init__(self, part: str, length: int, limit: int, request_id: int | None = None) -> None:
        super().__init__(f"content length over the limit: {part} length {length} > {limit}")
        self.part = part
        self.length = length
        self.limit = limit
        #: the request id of the offending frame when it could be read (to answer it)
        self.request_id = request_id


class TruncatedError(FrameError):
    """A complete frame was expected but the bytes end early."""

    def __init__(self, what: str, need: int, have: int) -> None:
        super().__init__(f"truncated {what}: need {need} bytes, have {have}")
        self.what = what
        self.need = need
        self.have = have


class MetadataError(WireError):
    """The metadata section is malformed (unpaired key, empty key, bad UTF-8, LF in a string)."""


class SerializationError(WireError):
    """A body that cannot be serialized or deserialized."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at offset {offset})")
        self.offset = offset


class UnknownSerializationError(SerializationError):
    """No serialization is registered for this id or name."""

    def __init__(self, ident: int | str) -> None:
        super().__init__(f"message serialize not found: {ident!r}")
        self.ident = ident


class CompressionError(WireError):
    """A body flagged as gzip that does not gunzip."""


class V1Error(FrameError):
    """A Motan v1 frame that is malformed or is not something this layer can answer."""
