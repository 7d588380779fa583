"""``http-locations`` matching and rewriting (the cases of the Go agent's tests and nginx's)."""

from __future__ import annotations

import logging
import re

import pytest

from motanmesh.httpmotan.heads import (
    HeadError,
    forward_headers,
    parse_request_head,
    parse_response_head,
    request_head_bytes,
    response_head_bytes,
)
from motanmesh.httpmotan.locations import LocationMatcher, RewriteRule

SECTION = {
    "test.domain": [
        {"match": "/test2", "type": "start", "upstream": "test2"},
        {"match": "/test2/longer", "upstream": "longer"},  # type defaults to start
        {"match": "^/test3/.*", "type": "regexp", "upstream": "test3"},
        {
            "match": "^/(tst|2).*",
            "type": "regexp",
            "upstream": "test",
            "rewriteRules": ["!regexp ^/2/.*  ^/(.*) /2/$1"],
        },
        {"match": "^/UP", "type": "iregexp", "upstream": "upper"},
        {"match": "/exact", "type": "exact", "upstream": "exact"},
        {"match": "/exact", "type": "start", "upstream": "prefix"},
        {"match": "/x", "type": "bogus", "upstream": "never"},
        {"match": "([", "type": "regexp", "upstream": "never"},
        "not a mapping",
    ]
}


def test_matching_order(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        m = LocationMatcher.from_config(SECTION, "test.domain")
    assert len(m.locations) == 7
    assert sum("left out" in r.message for r in caplog.records) == 3
    assert m.upstream("/test2/a") == "test2"
    assert m.upstream("/test2/longer/b") == "longer"
    assert m.upstream("/test3/x") == "test3"
    assert m.upstream("/tst/x") == "test"
    assert m.upstream("/up/case") == "upper"
    assert m.upstream("/exact") == "exact"
    assert m.upstream("/exactly") == "prefix"
    assert m.upstream("/none") == ""
    assert LocationMatcher.from_config(SECTION, "other").upstream("/test2") == ""
    assert LocationMatcher.from_config(None, "test.domain").pick("/") is None


def test_rewrites() -> None:
    m = LocationMatcher.from_config(SECTION, "test.domain")
    assert m.pick("/tst/a", "", True) == ("test", "/2/tst/a")
    assert m.pick("/2/a", "", True) == ("test", "/2/a")  # negated condition: no rewrite
    assert m.pick("/tst/a", "", False) == ("test", "/tst/a")


def test_rule_forms() -> None:
    exact = RewriteRule.parse("exact /a ^/a$ /b")
    assert exact.rewrite("/a", "") == ("/b", True)
    assert exact.rewrite("/ab", "") == ("/ab", False)
    start = RewriteRule.parse("start /api ^/api/(?P<rest>.*) /v2/${rest}/$$")
    assert start.rewrite("/api/x/y", "") == ("/v2/x/y/$", True)
    ireg = RewriteRule.parse("iregexp ^/A ^/a(.*) /z$1$9")
    assert ireg.rewrite("/abc", "") == ("/zbc", True)
    var = RewriteRule.parse("regexpVar ^/u ^/u/(.*) /user/{id}/$1")
    assert var.rewrite("/u/p", "id=42&x=1") == ("/user/42/p", True)
    assert var.rewrite("/u/p", "") == ("/user/{id}/p", True)  # no query: left as is
    assert var.rewrite("/u/p", "x=1") == ("/user//p", True)
    assert var.rewrite("/q/{id}", "id=7") == ("/q/7", False)
    for bad in ("regexp a b", "nope a b c", "regexp ( b c"):
        with pytest.raises((ValueError, re.error)):
            RewriteRule.parse(bad)
    m = LocationMatcher.from_config(
        {"d": [{"match": "/", "upstream": "u", "rewriteRules": ["regexpVar ^/ ^/ /{a}"]}]}, "d"
    )
    assert m.needs_query


def test_heads_round_trip() -> None:
    head = request_head_bytes(b"POST", b"/p?q=1", [(b"Host", b"h"), (b"X-A", b"b")])
    parsed = parse_request_head(head)
    assert (parsed.method, parsed.target, parsed.path, parsed.query) == (
        b"POST",
        b"/p?q=1",
        "/p",
        "q=1",
    )
    assert parsed.get(b"x-a") is None and parsed.headers[1] == (b"X-A", b"b")
    response = response_head_bytes(201, b"Created", [(b"Content-Length", b"3"), (b"X", b"y")])
    got = parse_response_head(response)
    assert (got.status, got.reason, got.headers) == (
        201,
        b"Created",
        [(b"Content-Length", b"3"), (b"X", b"y")],
    )
    with pytest.raises(HeadError):
        parse_request_head(b"garbage\r\n\r\n")
    with pytest.raises(HeadError):
        parse_response_head(b"HTTP/1.1 abc\r\n\r\n")


def test_forward_headers() -> None:
    headers = [
        (b"Connection", b"close, X-Hop"),
        (b"X-Hop", b"1"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Content-Length", b"5"),
        (b"Keep-Alive", b"timeout=5"),
        (b"X-End", b"2"),
    ]
    assert forward_headers(headers) == [(b"X-End", b"2")]
    assert forward_headers(headers, keep_length=True) == [
        (b"Content-Length", b"5"),
        (b"X-End", b"2"),
    ]
