"""The remote error classes."""

from __future__ import annotations

import pytest

from motanmesh.sdk import (
    MotanBizError,
    MotanFrameworkError,
    MotanRemoteError,
    MotanServiceError,
    remote_error,
)
from motanmesh.sdk.client import decode_response
from motanmesh.wire.frame import exception_frame, response_frame
from motanmesh.wire.serialization import get_serialization


@pytest.mark.parametrize(
    ("errtype", "cls"), [(0, MotanFrameworkError), (1, MotanServiceError), (2, MotanBizError)]
)
def test_remote_error_picks_the_subclass(errtype: int, cls: type[MotanRemoteError]) -> None:
    err = remote_error(404, "gone", errtype)
    assert type(err) is cls
    assert (err.errcode, err.errmsg, err.errtype) == (404, "gone", errtype)
    assert str(err) == f"remote error errcode=404 errtype={errtype}: gone"
    assert "gone" in repr(err)


def test_unknown_errtype_keeps_the_base_class() -> None:
    err = remote_error(1, "odd", 7)
    assert type(err) is MotanRemoteError
    assert err.errtype == 7


def test_biz_error_defaults() -> None:
    err = MotanBizError("insufficient balance")
    assert (err.errcode, err.errtype) == (500, 2)


def test_decode_response() -> None:
    simple = get_serialization("simple")
    assert decode_response(response_frame(1, {}, simple.encode("x"))) == "x"
    assert decode_response(response_frame(1, {}, b"")) is None
    with pytest.raises(MotanBizError, match="nope"):
        decode_response(exception_frame(1, 409, "nope", 2))
    broken = exception_frame(1, 500, "x")
    broken.metadata.clear()
    with pytest.raises(MotanServiceError, match="without M_e"):
        decode_response(broken)
    garbage = exception_frame(1, 500, "x")
    garbage.metadata["M_e"] = "not json"
    with pytest.raises(MotanServiceError, match="not json"):
        decode_response(garbage)
