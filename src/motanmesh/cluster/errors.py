"""Error codes and exception responses produced by the cluster layer.

The cluster never raises for a failed call: the HA strategy always answers with a frame, an
exception response (status 1 with ``M_e``) when every attempt failed.
"""

from __future__ import annotations

from typing import Final

from motanmesh.transport.errors import TransportError
from motanmesh.wire.frame import (
    ERRTYPE_BIZ,
    ERRTYPE_SERVICE,
    M_EXCEPTION,
    Frame,
    exception_frame,
    parse_exception,
)

__all__ = [
    "E_BAD_REQUEST",
    "E_CONVERT_FAILURE",
    "E_NO_CHANNEL",
    "E_NO_ENDPOINTS",
    "E_PROVIDER_NOT_EXIST",
    "E_SERVICE",
    "E_UNKNOWN_MESSAGE",
    "ClusterError",
    "UnknownExtensionError",
    "call_error_response",
    "error_response",
    "is_biz_exception",
    "is_failure",
    "no_endpoints_response",
]

E_NO_ENDPOINTS: Final = 1001
E_NO_CHANNEL: Final = 1002
E_UNKNOWN_MESSAGE: Final = 1003
E_CONVERT_FAILURE: Final = 1004
E_PROVIDER_NOT_EXIST: Final = 404
E_BAD_REQUEST: Final = 400
E_SERVICE: Final = 500

NO_ENDPOINTS_MESSAGE: Final = "no available endpoints"
CHANNEL_CALL_ERROR: Final = "channel call error: "


class ClusterError(Exception):
    """Base of the errors the cluster layer raises (configuration problems only)."""


class UnknownExtensionError(ClusterError, ValueError):
    """A ``loadbalance`` or ``haStrategy`` name that is not registered."""

    def __init__(self, kind: str, name: str, valid: list[str]) -> None:
        super().__init__(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)


def error_response(
    request: Frame, errcode: int, errmsg: str, errtype: int = ERRTYPE_SERVICE
) -> Frame:
    """An exception response to ``request``: same request id, serialization and proxy bit."""
    return exception_frame(
        request.request_id,
        errcode,
        errmsg,
        errtype,
        serialization=request.serialization,
        proxy=request.is_proxy,
    )


def no_endpoints_response(request: Frame) -> Frame:
    """Error 1001: the load balancer had no available endpoint."""
    return error_response(request, E_NO_ENDPOINTS, NO_ENDPOINTS_MESSAGE)


def call_error_response(request: Frame, exc: BaseException) -> Frame:
    """The exception response for an attempt that ended with ``exc`` instead of a frame.

    A transport failure is error 400 ``channel call error: ...``; anything else is 500.
    """
    if isinstance(exc, TransportError):
        return error_response(request, E_BAD_REQUEST, CHANNEL_CALL_ERROR + _describe(exc))
    return error_response(request, E_SERVICE, f"cluster call error: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


def is_biz_exception(response: Frame) -> bool:
    """Whether ``response`` is a business exception (errtype 2): the service worked."""
    if not response.status:
        return False
    value = response.metadata.get(M_EXCEPTION)
    if not value:
        return False
    return parse_exception(value).errtype == ERRTYPE_BIZ


def is_failure(response: Frame) -> bool:
    """Whether ``response`` counts as a failed attempt (worth retrying elsewhere).

    Success and business exceptions are not failures. A status-1 frame without ``M_e`` is not
    one either: like motan-go, only ``M_e`` makes an exception.
    """
    if not response.status:
        return False
    value = response.metadata.get(M_EXCEPTION)
    if not value:
        return False
    return parse_exception(value).errtype != ERRTYPE_BIZ
