"""The access-log line formats, field by field, as the Go agent's zap encoder writes them
(``log/log.go``; zap 1.9.1 ``console_encoder.go``, ``json_encoder.go``)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from motanmesh.filters import ROLE_CLIENT, ROLE_SERVER, Call, FilterContext
from motanmesh.filters.access_log import AccessLogFilter, ClusterAccessLogFilter
from motanmesh.filters.access_log_writer import (
    AccessEntry,
    AccessLogWriter,
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


def _filter(
    tmp_path: Path, cluster: bool = False, *, structured: bool = False, buffer: int = 100
) -> AccessLogFilter:
    """An access-log filter whose writer has no thread: lines stay queued until
    :func:`_written` writes them."""
    params = {"log_structured": str(structured).lower(), "log_buffer_size": str(buffer)}
    context = FilterContext(log_dir=str(tmp_path), params=params)
    url = URL("motan2", "127.0.0.1", 0, "com.x.Svc", "g")
    f = (ClusterAccessLogFilter if cluster else AccessLogFilter)(url, context)
    f.writer.close()
    return f


def _written(f: AccessLogFilter) -> list[str]:
    """The messages of the lines ``f`` queued (written now; time stamps left out)."""
    f.writer.close()  # no thread: writes what is queued
    text = f.writer.path.read_text()
    f.writer.path.unlink()
    sep = "\t\t" if f.writer.structured else "\t"
    return [line.split(sep, 1)[1] for line in text.splitlines()]


def _plain(structured: str) -> str:
    """The plain message of the same fields as a structured one."""
    fields = json.loads(structured)
    return "|".join(
        ("true" if v else "false") if isinstance(v, bool) else str(v) for v in fields.values()
    )


def test_the_one_step_line_has_the_fields_of_the_structured_one(tmp_path: Path) -> None:
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
            plain = _filter(tmp_path, cluster)
            structured = _filter(tmp_path / "s", cluster, structured=True)
            for response, exc in answers:
                plain._done(Call(request, plain.url, role, peer, {}), response, exc)
                structured._done(Call(request, structured.url, role, peer, {}), response, exc)
            lines, objects = _written(plain), _written(structured)
            assert len(lines) == len(objects) == len(answers)
            assert lines == [_plain(o) for o in objects]
    f = _filter(tmp_path)
    f._done(Call(request, f.url, ROLE_SERVER, "10.0.0.9:5000", {}), *answers[0])
    f._done(Call(request, f.url, ROLE_CLIENT, "127.0.0.1:8002", {}), *answers[3])
    queued = _written(f)
    assert queued[0] == (
        "accessLog|server-agent|18446744073709551615|com.x.|Svc|m\tn|java.lang.String|10.0.0.9"
        "|5|3|12|0|true|200||503"
    )
    assert queued[1] == (
        "accessLog|client-agent|18446744073709551615|com.x.|Svc|m\tn|java.lang.String"
        '|127.0.0.1:8002|5|0|0|0|false|409|{"errcode":409,"errmsg":"taken \\"name\\"",'
        '"errtype":2}|'
    )


def test_a_full_buffer_drops_and_counts(tmp_path: Path) -> None:
    f = _filter(tmp_path, buffer=2)
    request = request_frame(7, {"M_p": "com.x.Svc", "M_m": "m"}, b"")
    for _ in range(5):
        call = Call(request, f.url, ROLE_CLIENT, "127.0.0.1:1", {})
        f._done(call, response_frame(7, {}, b""), None)
    assert f.writer.info()["buffered"] == 2
    assert f.writer.discarded == 3
    assert len(_written(f)) == 2


def test_log_dir_stdout_writes_the_lines_to_the_standard_output(tmp_path: Path) -> None:
    code = (
        "from motanmesh.filters.access_log_writer import AccessLogWriter;"
        "w = AccessLogWriter('stdout'); w.add_line('a|é'); w.add_line('b'); w.close()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, cwd=tmp_path
    ).stdout.decode("utf-8")
    assert [line.split("\t", 1)[1] for line in out.splitlines()] == ["a|é", "b"]
    assert not list(tmp_path.iterdir())  # no file


def test_log_dir_stdout_replaced_by_a_text_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    writer = AccessLogWriter("stdout")
    writer.close()  # no thread: the lines are written by the flush below
    writer.add_line("x|ü")
    writer.flush()
    assert stream.getvalue().split("\t", 1)[1] == "x|ü\n"
