"""The access-log line formats, field by field, as the Go agent's zap encoder writes them
(``log/log.go``; zap 1.9.1 ``console_encoder.go``, ``json_encoder.go``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from motanmesh.filters import ROLE_CLIENT, ROLE_SERVER, Call, FilterContext
from motanmesh.filters.access_log import AccessLogFilter, ClusterAccessLogFilter
from motanmesh.filters.access_log_writer import (
    AccessEntry,
    RawAccess,
    format_plain,
    format_structured,
)
from motanmesh.transport.errors import ConnectionLost
from motanmesh.url import URL
from motanmesh.wire.frame import (
    ERRTYPE_BIZ,
    FLAG_RESPONSE,
    Frame,
    exception_frame,
    request_frame,
    response_frame,
)

ENTRY: AccessEntry = (
    "accessLog",
    "server-agent",
    18446744073709551615,
    'com.x."quoted"\\path',
    "m\tn\nl",
    "a<b>&c\x01",
    "127.0.0.1",
    12,
    0,
    3,
    45,
    False,
    "503",
    '{"errcode":503,"errmsg":"x","errtype":1}',
    "",
)


def test_plain_joins_the_fields_unescaped() -> None:
    assert format_plain(ENTRY) == (
        'accessLog|server-agent|18446744073709551615|com.x."quoted"\\path|m\tn\nl|a<b>&c\x01'
        '|127.0.0.1|12|0|3|45|false|503|{"errcode":503,"errmsg":"x","errtype":1}|'
    )


def test_structured_escapes_as_zap_does() -> None:
    # zap escapes only '"', '\\' and control characters (\n \r \t, others as \u00XX);
    # '<', '>' and '&' stay; keys and values are separated by ": " and fields by ", "
    assert format_structured(ENTRY) == (
        '{"filterName": "accessLog", "role": "server-agent", '
        '"requestID": 18446744073709551615, '
        '"service": "com.x.\\"quoted\\"\\\\path", "method": "m\\tn\\nl", '
        '"desc": "a<b>&c\\u0001", "remoteAddress": "127.0.0.1", "reqSize": 12, '
        '"resSize": 0, "bizTime": 3, "totalTime": 45, "success": false, '
        '"responseCode": "503", '
        '"exception": "{\\"errcode\\":503,\\"errmsg\\":\\"x\\",\\"errtype\\":1}", '
        '"upstreamCode": ""}'
    )


def test_time_is_iso8601_with_millis_and_the_local_offset() -> None:
    code = (
        "from motanmesh.filters.access_log_writer import format_time;"
        "print(format_time(1764954061.9597))"
    )
    out = {}
    for tz in ("UTC0", "CST-8", "EST5"):  # POSIX zones: no tzdata needed
        env = {**os.environ, "TZ": tz}
        out[tz] = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
    assert out == {
        "UTC0": "2025-12-05T17:01:01.959Z",
        "CST-8": "2025-12-06T01:01:01.959+0800",
        "EST5": "2025-12-05T12:01:01.959-0500",
    }


def _queued(tmp_path: Path, cluster: bool = False) -> tuple[AccessLogFilter, list[RawAccess]]:
    """An access-log filter whose queued entries are kept (no writer thread)."""
    context = FilterContext(log_dir=str(tmp_path))
    url = URL("motan2", "127.0.0.1", 0, "com.x.Svc", "g")
    f = (ClusterAccessLogFilter if cluster else AccessLogFilter)(url, context)
    queued: list[RawAccess] = []
    f._add = queued.append
    return f, queued


def test_the_one_step_line_is_the_formatted_entry(tmp_path: Path) -> None:
    meta = {"M_p": "com.x.|Svc", "M_m": "m\tn", "M_md": "java.lang.String", "host": "10.0.0.9"}
    request = request_frame(18446744073709551615, meta, b"12345")
    answers: list[tuple[Frame | None, BaseException | None]] = [
        (response_frame(1, {"M_pt": "12", "upstreamCode": "503"}, b"abc"), None),
        (response_frame(1, {}, b""), None),
        (response_frame(1, {"M_pt": "x²"}, b"abc"), None),
        (exception_frame(1, 409, 'taken "name"', ERRTYPE_BIZ), None),
        (Frame(FLAG_RESPONSE, 1, 6, 1, {"M_pt": "3"}, b""), None),  # status 1 without M_e
        (None, ConnectionLost("connection to 127.0.0.1:1 lost")),
        (None, RuntimeError("boom")),
        (None, None),
    ]
    for cluster in (False, True):
        for role, peer in ((ROLE_SERVER, "10.0.0.9:5000"), (ROLE_CLIENT, "127.0.0.1:8002")):
            f, queued = _queued(tmp_path, cluster)
            for response, exc in answers:
                call = Call(request, f.url, role, peer, {})
                f._done(call, response, exc)
            assert len(queued) == len(answers)
            for raw in queued:
                assert f.line(raw) == format_plain(f.entry(raw))
    f, queued = _queued(tmp_path)
    f._done(Call(request, f.url, ROLE_SERVER, "10.0.0.9:5000", {}), *answers[0])
    assert f.line(queued[0]) == (
        "accessLog|server-agent|18446744073709551615|com.x.|Svc|m\tn|java.lang.String|10.0.0.9"
        "|5|3|12|0|true|200||503"
    )
    f._done(Call(request, f.url, ROLE_CLIENT, "127.0.0.1:8002", {}), *answers[3])
    assert f.line(queued[1]) == (
        "accessLog|client-agent|18446744073709551615|com.x.|Svc|m\tn|java.lang.String"
        '|127.0.0.1:8002|5|0|0|0|false|409|{"errcode":409,"errmsg":"taken \\"name\\"",'
        '"errtype":2}|'
    )
