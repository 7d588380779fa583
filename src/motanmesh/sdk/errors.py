"""Errors a Motan2 call can end with, shared by the client and the service library.

An exception response carries ``M_e`` = ``{"errcode":N,"errmsg":"...","errtype":T}``. The
client raises it as a :class:`MotanRemoteError` of the subclass that matches ``errtype``;
service code raises the same classes to choose what goes back (a :class:`MotanBizError` is a
business failure, errtype 2).
"""

from __future__ import annotations

from typing import ClassVar

from motanmesh.wire.frame import (
    ERRTYPE_BIZ,
    ERRTYPE_FRAMEWORK,
    ERRTYPE_SERVICE,
    RemoteException,
)

#: the errcode used when none is given (motan-go's generic failure code)
DEFAULT_ERRCODE = 500


class MotanRemoteError(Exception):
    """The callee answered with an exception response.

    ``MotanRemoteError(errcode, errmsg, errtype)``; :func:`remote_error` builds the subclass
    that matches ``errtype``.
    """

    errtype_default: ClassVar[int] = ERRTYPE_SERVICE

    def __init__(self, errcode: int, errmsg: str, errtype: int | None = None) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.errtype = self.errtype_default if errtype is None else errtype
        super().__init__(errcode, errmsg, self.errtype)

    def __str__(self) -> str:
        return f"remote error errcode={self.errcode} errtype={self.errtype}: {self.errmsg}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(errcode={self.errcode!r}, errmsg={self.errmsg!r}, "
            f"errtype={self.errtype!r})"
        )


class MotanFrameworkError(MotanRemoteError):
    """errtype 0: the framework (an agent, a codec) failed."""

    errtype_default = ERRTYPE_FRAMEWORK

    def __init__(self, errmsg: str = "framework error", errcode: int = DEFAULT_ERRCODE) -> None:
        super().__init__(errcode, errmsg, ERRTYPE_FRAMEWORK)


class MotanServiceError(MotanRemoteError):
    """errtype 1: the service failed (unknown service or method, bad body, a crash)."""

    errtype_default = ERRTYPE_SERVICE

    def __init__(self, errmsg: str = "service error", errcode: int = DEFAULT_ERRCODE) -> None:
        super().__init__(errcode, errmsg, ERRTYPE_SERVICE)


class MotanBizError(MotanRemoteError):
    """errtype 2: a business failure. Service code raises it to answer with an error the
    caller is expected to handle (``raise MotanBizError("no such user", errcode=404)``)."""

    errtype_default = ERRTYPE_BIZ

    def __init__(self, errmsg: str = "business error", errcode: int = DEFAULT_ERRCODE) -> None:
        super().__init__(errcode, errmsg, ERRTYPE_BIZ)


_BY_TYPE: dict[int, type[MotanFrameworkError | MotanServiceError | MotanBizError]] = {
    ERRTYPE_FRAMEWORK: MotanFrameworkError,
    ERRTYPE_SERVICE: MotanServiceError,
    ERRTYPE_BIZ: MotanBizError,
}


def remote_error(errcode: int, errmsg: str, errtype: int) -> MotanRemoteError:
    """The :class:`MotanRemoteError` subclass for ``errtype`` (the base class for an errtype
    no subclass covers)."""
    cls = _BY_TYPE.get(errtype)
    if cls is None:
        return MotanRemoteError(errcode, errmsg, errtype)
    return cls(errmsg, errcode)


def from_exception(exc: RemoteException) -> MotanRemoteError:
    """The error for a parsed ``M_e`` value."""
    return remote_error(exc.errcode, exc.errmsg, exc.errtype)
