"""The access-log line formats, field by field, as the Go agent's zap encoder writes them
(``log/log.go``; zap 1.9.1 ``console_encoder.go``, ``json_encoder.go``)."""

from __future__ import annotations

import os
import subprocess
import sys

from motanmesh.filters.access_log_writer import AccessEntry, format_plain, format_structured

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
