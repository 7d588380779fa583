"""The wire layer: Motan2/v1 frames and the simple and breeze serializations.

Sans-I/O: bytes in, frames and values out, and back. No asyncio, no sockets, no logging.
Everything it refuses is a :class:`WireError`.

The modules on the request path (:data:`COMPILED_MODULES`) are compiled to C extensions by
mypyc when the package is installed with a C compiler at hand (``setup.py``); otherwise they
run interpreted, with the same behaviour.
"""

import sys
from typing import Final

from motanmesh.wire.decoder import FrameDecoder
from motanmesh.wire.errors import (
    BadMagicError,
    CompressionError,
    FrameError,
    FrameTooLargeError,
    MetadataError,
    SerializationError,
    TruncatedError,
    UnknownSerializationError,
    UnsupportedVersionError,
    V1Error,
    WireError,
)
from motanmesh.wire.frame import (
    DEFAULT_MAX_CONTENT_LENGTH,
    FLAG_GZIP,
    FLAG_HEARTBEAT,
    FLAG_ONEWAY,
    FLAG_PROXY,
    FLAG_RESPONSE,
    Frame,
    RemoteException,
    answer_heartbeat,
    decode_metadata,
    encode_frame,
    encode_metadata,
    exception_frame,
    exception_json,
    gunzip_body,
    gzip_body,
    heartbeat_request,
    heartbeat_response,
    parse_exception,
    parse_frame,
    request_frame,
    response_frame,
)
from motanmesh.wire.passthrough import forward
from motanmesh.wire.serialization import Serialization, get_serialization
from motanmesh.wire.v1 import V1Frame, V1Request, parse_v1_request

#: the modules ``setup.py`` compiles with mypyc
COMPILED_MODULES: Final = ("frame", "decoder", "passthrough")


def compiled_modules() -> list[str]:
    """Which of :data:`COMPILED_MODULES` run as compiled extensions in this process."""
    out = []
    for name in COMPILED_MODULES:
        path = getattr(sys.modules[f"motanmesh.wire.{name}"], "__file__", "") or ""
        if not path.endswith((".py", ".pyc")):
            out.append(name)
    return out


__all__ = [
    "COMPILED_MODULES",
    "DEFAULT_MAX_CONTENT_LENGTH",
    "FLAG_GZIP",
    "FLAG_HEARTBEAT",
    "FLAG_ONEWAY",
    "FLAG_PROXY",
    "FLAG_RESPONSE",
    "BadMagicError",
    "CompressionError",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameTooLargeError",
    "MetadataError",
    "RemoteException",
    "Serialization",
    "SerializationError",
    "TruncatedError",
    "UnknownSerializationError",
    "UnsupportedVersionError",
    "V1Error",
    "V1Frame",
    "V1Request",
    "WireError",
    "answer_heartbeat",
    "compiled_modules",
    "decode_metadata",
    "encode_frame",
    "encode_metadata",
    "exception_frame",
    "exception_json",
    "forward",
    "get_serialization",
    "gunzip_body",
    "gzip_body",
    "heartbeat_request",
    "heartbeat_response",
    "parse_exception",
    "parse_frame",
    "parse_v1_request",
    "request_frame",
    "response_frame",
]
