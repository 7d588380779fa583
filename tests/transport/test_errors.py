"""The transport exception family."""

from __future__ import annotations

import pytest

from motanmesh.transport import (
    ConnectError,
    ConnectionLost,
    EndpointUnavailable,
    RemoteError,
    RequestTimeout,
    TransportError,
    raise_for_status,
)
from motanmesh.wire.frame import ERRTYPE_BIZ, exception_frame, response_frame


def test_family() -> None:
    for cls in (ConnectError, ConnectionLost, EndpointUnavailable, RemoteError, RequestTimeout):
        assert issubclass(cls, TransportError)
    assert issubclass(ConnectError, EndpointUnavailable)


def test_raise_for_status() -> None:
    ok = response_frame(7, {"M_pt": "1"}, b"body")
    assert raise_for_status(ok) is ok
    bad = exception_frame(7, 404, "provider not exist serviceKey=g_p", ERRTYPE_BIZ)
    with pytest.raises(RemoteError) as info:
        raise_for_status(bad)
    assert (info.value.errcode, info.value.errmsg, info.value.errtype) == (
        404,
        "provider not exist serviceKey=g_p",
        ERRTYPE_BIZ,
    )
    assert "404" in str(info.value)
    no_m_e = response_frame(7, {})
    no_m_e.status = 1
    assert raise_for_status(no_m_e) is no_m_e


def test_remote_error_from_unparsable_m_e() -> None:
    frame = response_frame(1, {"M_e": "boom"})
    frame.status = 1
    err = RemoteError.from_frame(frame)
    assert err.errcode == 500
    assert err.errtype == 1
    assert err.errmsg.endswith("boom")
