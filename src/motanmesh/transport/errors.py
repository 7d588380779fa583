"""The exception family of the transport layer.

:class:`EndpointUnavailable` and :class:`ConnectError` mean the request was never written, so
retrying it elsewhere is always safe. :class:`RequestTimeout` and :class:`ConnectionLost` mean
it was written and its fate is unknown. :class:`RemoteError` is an exception response
(status 1, ``M_e``) turned into an exception by :func:`raise_for_status`.
"""

from __future__ import annotations

from motanmesh.wire.frame import M_EXCEPTION, Frame, parse_exception


class TransportError(Exception):
    """Base of every failure the transport layer reports."""


class EndpointUnavailable(TransportError):  # noqa: N818 - the layer's public names
    """The endpoint does not take requests now (marked down, closed, or not connected)."""


class ConnectError(EndpointUnavailable):
    """No connection to the endpoint could be made."""


class RequestTimeout(TransportError):  # noqa: N818 - the layer's public names
    """No response arrived within the request's timeout."""


class ConnectionLost(TransportError):  # noqa: N818 - the layer's public names
    """The connection carrying the request closed before its response arrived."""


class RemoteError(TransportError):
    """An exception response: the ``M_e`` fields of a status-1 frame."""

    def __init__(self, errcode: int, errmsg: str, errtype: int) -> None:
        super().__init__(f"remote error {errcode} (errtype {errtype}): {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.errtype = errtype

    @classmethod
    def from_frame(cls, frame: Frame) -> RemoteError:
        exc = parse_exception(frame.metadata.get(M_EXCEPTION, ""))
        return cls(exc.errcode, exc.errmsg, exc.errtype)


def raise_for_status(frame: Frame) -> Frame:
    """Return ``frame``, or raise :class:`RemoteError` when it is an exception response that
    carries ``M_e`` (a status-1 frame without ``M_e`` is not an error, as in motan-go)."""
    if frame.status and frame.metadata.get(M_EXCEPTION):
        raise RemoteError.from_frame(frame)
    return frame
