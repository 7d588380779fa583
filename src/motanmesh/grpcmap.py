"""How gRPC calls and Motan2 frames map onto each other (see ``docs/grpc.md``).

Pure data and functions, without grpcio: the gRPC ingress of the client agent and the ``grpc``
provider of the server agent share them, so a call that crosses the mesh comes out as it went in.

* **Path.** ``/<package.Service>/<Method>`` is ``M_p`` = ``package.Service``, ``M_m`` =
  ``Method``.
* **Body.** The protobuf message, undecoded, as a serialization-1 (``grpc-pb``) body.
* **Metadata ↔ attachments.** gRPC metadata keys are lower case; Motan's reserved keys are
  ``M_x``. ``motan-x`` metadata is the attachment ``M_x`` and back (``motan-g`` picks the
  group, ``motan-pt`` carries the process time). Binary (``-bin``) values travel base64-encoded
  (standard alphabet, padded) under the same key. Keys gRPC or HTTP/2 own (``grpc-*``,
  ``user-agent``, ``content-type``, ``te``, ``host``...) do not cross; neither do keys or
  values gRPC cannot carry.
* **Status.** A failed gRPC call is an exception response: ``errcode`` an HTTP-like code for
  the gRPC status, ``errtype`` 2 (business) when the service answered with an application
  error and 1 otherwise, and the attachment ``grpc-status`` holding the exact status code so
  that the client agent gives the caller the same code. Exception responses made by the mesh
  itself have no ``grpc-status``; their code comes from :func:`grpc_code_for`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = [
    "GRPC_STATUS",
    "attachments_to_metadata",
    "grpc_code_for",
    "metadata_to_attachments",
    "motan_error_for",
    "split_method",
    "status_of",
]

#: response attachment: the gRPC status code of a failed call (decimal)
GRPC_STATUS: Final = "grpc-status"

# gRPC status codes (grpc/doc/statuscodes.md)
OK: Final = 0
CANCELLED: Final = 1
UNKNOWN: Final = 2
INVALID_ARGUMENT: Final = 3
DEADLINE_EXCEEDED: Final = 4
NOT_FOUND: Final = 5
ALREADY_EXISTS: Final = 6
PERMISSION_DENIED: Final = 7
RESOURCE_EXHAUSTED: Final = 8
FAILED_PRECONDITION: Final = 9
ABORTED: Final = 10
OUT_OF_RANGE: Final = 11
UNIMPLEMENTED: Final = 12
INTERNAL: Final = 13
UNAVAILABLE: Final = 14
DATA_LOSS: Final = 15
UNAUTHENTICATED: Final = 16

ERRTYPE_SERVICE: Final = 1
ERRTYPE_BIZ: Final = 2

#: gRPC status → (errcode, errtype) of the Motan exception response
STATUS_TO_MOTAN: Final[Mapping[int, tuple[int, int]]] = {
    CANCELLED: (499, ERRTYPE_SERVICE),
    UNKNOWN: (500, ERRTYPE_SERVICE),
    INVALID_ARGUMENT: (400, ERRTYPE_BIZ),
    DEADLINE_EXCEEDED: (504, ERRTYPE_SERVICE),
    NOT_FOUND: (404, ERRTYPE_BIZ),
    ALREADY_EXISTS: (409, ERRTYPE_BIZ),
    PERMISSION_DENIED: (403, ERRTYPE_BIZ),
    RESOURCE_EXHAUSTED: (429, ERRTYPE_SERVICE),
    FAILED_PRECONDITION: (412, ERRTYPE_BIZ),
    ABORTED: (409, ERRTYPE_BIZ),
    OUT_OF_RANGE: (416, ERRTYPE_BIZ),
    UNIMPLEMENTED: (501, ERRTYPE_SERVICE),
    INTERNAL: (500, ERRTYPE_SERVICE),
    UNAVAILABLE: (503, ERRTYPE_SERVICE),
    DATA_LOSS: (500, ERRTYPE_SERVICE),
    UNAUTHENTICATED: (401, ERRTYPE_BIZ),
}

#: Motan errcode → gRPC status, for exception responses without ``grpc-status``
ERRCODE_TO_STATUS: Final[Mapping[int, int]] = {
    400: INVALID_ARGUMENT,
    401: UNAUTHENTICATED,
    403: PERMISSION_DENIED,
    404: NOT_FOUND,
    409: ABORTED,
    412: FAILED_PRECONDITION,
    416: OUT_OF_RANGE,
    429: RESOURCE_EXHAUSTED,
    499: CANCELLED,
    500: UNKNOWN,
    501: UNIMPLEMENTED,
    502: UNAVAILABLE,
    503: UNAVAILABLE,
    504: DEADLINE_EXCEEDED,
    1001: UNAVAILABLE,  # no available endpoints
    1002: UNAVAILABLE,  # no channel
    1003: INTERNAL,  # unknown message
    1004: INTERNAL,  # response could not be converted
}

_PROVIDER_NOT_EXIST: Final = "provider not exist"
_CHANNEL_ERROR: Final = "channel call error"
_DEGRADED: Final = "maybe caused by degrade"

#: metadata that belongs to gRPC or HTTP/2 and never becomes an attachment (or back)
_RESERVED: Final = frozenset(
    {"user-agent", "content-type", "te", "host", "connection", "content-length", "grpc-status"}
)
_KEY_RE: Final = re.compile(r"[0-9a-z_.\-]+\Z")
_ASCII_VALUE_RE: Final = re.compile(r"[\x20-\x7e]*\Z")
_MOTAN_PREFIX: Final = "motan-"


def split_method(path: str) -> tuple[str, str] | None:
    """``/package.Service/Method`` → ``("package.Service", "Method")``; ``None`` otherwise."""
    if not path.startswith("/"):
        return None
    service, sep, method = path[1:].partition("/")
    if not sep or not service or not method or "/" in method:
        return None
    return service, method


def grpc_code_for(errcode: int, errmsg: str) -> int:
    """The gRPC status for a Motan exception response without ``grpc-status``."""
    if errcode == 404 and errmsg.startswith(_PROVIDER_NOT_EXIST):
        return UNIMPLEMENTED  # the server agent exports no such service
    if errcode == 400 and errmsg.startswith(_CHANNEL_ERROR):
        lowered = errmsg.lower()
        return DEADLINE_EXCEEDED if "timed out" in lowered or "timeout" in lowered else UNAVAILABLE
    if errcode == 500 and _DEGRADED in errmsg:
        return UNAVAILABLE
    return ERRCODE_TO_STATUS.get(errcode, UNKNOWN)


def motan_error_for(code: int) -> tuple[int, int]:
    """``(errcode, errtype)`` of the exception response for a gRPC status (not OK)."""
    return STATUS_TO_MOTAN.get(code, (500, ERRTYPE_SERVICE))


def status_of(value: str) -> int | None:
    """A ``grpc-status`` attachment as a code, or ``None`` when it is not one."""
    if value.isdigit():
        code = int(value)
        if OK < code <= UNAUTHENTICATED:
            return code
    return None


def metadata_to_attachments(
    metadata: Iterable[tuple[str, str | bytes]], skip: frozenset[str] = frozenset()
) -> dict[str, str]:
    """gRPC metadata → Motan attachments (``motan-x`` → ``M_x``; ``-bin`` values base64).

    Keys in ``skip`` (after the mapping, so ``M_p`` skips ``motan-p``) are dropped; of a key
    given twice the last value is kept.
    """
    out: dict[str, str] = {}
    for key, value in metadata:
        if key in _RESERVED or key.startswith(("grpc-", ":")):
            continue
        name = "M_" + key[len(_MOTAN_PREFIX) :] if key.startswith(_MOTAN_PREFIX) else key
        if name in skip or name == "M_":
            continue
        if isinstance(value, bytes):
            if not key.endswith("-bin"):
                continue
            out[name] = base64.b64encode(value).decode("ascii")
        elif key.endswith("-bin"):
            continue
        else:
            out[name] = value
    return out


def attachments_to_metadata(
    attachments: Mapping[str, str], skip: frozenset[str] = frozenset()
) -> list[tuple[str, str | bytes]]:
    """Motan attachments → gRPC metadata (``M_x`` → ``motan-x``; ``-bin`` values decoded).

    ``skip`` names attachments (as in Motan: ``M_e``) to leave out. Keys that are not legal
    gRPC keys once lower-cased, reserved keys and values gRPC cannot carry are dropped.
    """
    out: list[tuple[str, str | bytes]] = []
    for name, value in attachments.items():
        if name in skip:
            continue
        key = (_MOTAN_PREFIX + name[2:] if name.startswith("M_") else name).lower()
        if key in _RESERVED or key.startswith("grpc-") or not _KEY_RE.match(key):
            continue
        if key.endswith("-bin"):
            try:
                out.append((key, base64.b64decode(_pad(value), validate=True)))
            except (binascii.Error, ValueError):
                continue
        elif _ASCII_VALUE_RE.match(value):
            out.append((key, value))
    return out


def _pad(value: str) -> str:
    return value + "=" * (-len(value) % 4)
