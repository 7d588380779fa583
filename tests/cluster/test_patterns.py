from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from motanmesh.cluster.patterns import (
    PatternError,
    RouteRule,
    apply_route_rules,
    compile_java_expression,
    compile_pattern,
    match_address,
    match_pattern,
    parse_route_rule,
    parse_route_rules,
    pattern_mode,
)
from motanmesh.url import URL

# ---------------------------------------------------------------------------- service patterns


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*", "com.weibo.api.UserService", True),
        ("com.weibo.feed.", "com.weibo.feed.FeedService", True),
        ("com.weibo.feed.", "com.weibo.user.UserService", False),
        ("com.weibo.api.UserService", "com.weibo.api.UserServiceV2", True),  # prefix
        ("UserService", "com.weibo.api.UserService", True),  # unanchored regexp
        ("^api", "com.weibo.api.UserService", False),
        ("Service$", "com.weibo.api.UserService", True),
        ("com\\.weibo\\.(feed|user)\\.", "com.weibo.user.UserService", True),
        ("a|b", "xxbyy", True),  # regexp alternation, not a boolean expression
        ("com.weibo.(", "com.weibo.(odd", True),  # invalid regexp still works as a prefix
        ("com.weibo.(", "com.weibo.feed", False),
        ("com.weibo.*&!com.weibo.Foo", "com.weibo.Bar", False),  # literal in go mode
        ("", "com.weibo.api.UserService", False),
        ("   ", "com.weibo.api.UserService", False),
    ],
)
def test_go_mode(pattern: str, path: str, expected: bool) -> None:
    assert match_pattern(pattern, path, "go") is expected


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("com.weibo.*&!com.weibo.Foo", "com.weibo.Bar", True),
        ("com.weibo.*&!com.weibo.Foo", "com.weibo.Foo", False),
        ("com.weibo.*&!com.weibo.Foo", "com.weibo.FooBar", True),
        ("com.weibo.*&!com.weibo.Foo", "org.weibo.Bar", False),
        ("com.weibo.Foo", "com.weibo.FooBar", False),  # exact, not prefix
        ("com.weibo.Foo", "com.weibo.Foo", True),
        ("*", "anything", True),
        ("a|b&c", "a", True),  # & binds tighter than |
        ("a|b&c", "b", False),
        ("(a|b)&c", "a", False),
        ("(a|b)&!c", "b", True),
        ("!a|b", "b", True),
        ("!a|b", "a", False),
        ("!(a|b)", "c", True),
        ("!!a", "a", True),
        (" a | b ", "b", True),  # whitespace ignored
        ("a*&!ab*|x", "ac", True),
        ("a*&!ab*|x", "abc", False),
        ("a*&!ab*|x", "x", True),
        ("com.weibo.feed.", "com.weibo.feed.FeedService", False),
        ("(a", "a", False),  # malformed: matches nothing
        ("", "a", False),
    ],
)
def test_java_mode(pattern: str, path: str, expected: bool) -> None:
    assert match_pattern(pattern, path, "java") is expected


@pytest.mark.parametrize(
    ("pattern", "mode"),
    [
        ("com.weibo.*&!com.weibo.Foo", "java"),
        ("com.weibo.*", "java"),
        ("a|b", "java"),
        ("!com.weibo.Foo", "java"),
        ("(a|b)&c*", "java"),
        ("com.weibo.feed.", "go"),
        ("com.weibo.api.UserService", "go"),
        ("*", "go"),
        (".*", "go"),
        (".*Service$", "go"),
        ("com.weibo.(feed|user).", "go"),
        ("^com\\.weibo\\.(a|b)", "go"),
        ("com.weibo.feed.*Service", "go"),
        ("(a", "go"),
    ],
)
def test_auto_mode_reading(pattern: str, mode: str) -> None:
    assert pattern_mode(pattern) == mode
    assert compile_pattern(pattern).mode == mode


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("com.weibo.*&!com.weibo.Foo", "com.weibo.Bar", True),
        ("com.weibo.*&!com.weibo.Foo", "com.weibo.Foo", False),
        ("com.weibo.*", "com.weibo.api.UserService", True),
        ("com.weibo.*", "org.com.weibo.x", False),  # prefix, not a regexp search
        ("a|b", "xxbyy", False),
        ("com.weibo.feed.", "com.weibo.feed.FeedService", True),
        ("FeedService", "com.weibo.feed.FeedService", True),
        (".*", "anything", True),
    ],
)
def test_auto_mode_matching(pattern: str, path: str, expected: bool) -> None:
    assert match_pattern(pattern, path) is expected


def test_errors_are_reported_not_raised() -> None:
    assert compile_pattern("", "go").error == "the pattern is empty"
    assert "regular expression" in compile_pattern("com.(", "go").error
    assert "'(' is not closed" in compile_pattern("(a", "java").error
    assert compile_pattern("com.weibo.*", "auto").error == ""
    with pytest.raises(ValueError, match="unknown pattern mode"):
        compile_pattern("a", "lua")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "empty"),
        ("(a", "not closed"),
        ("a)", "unexpected ')'"),
        ("a&", "ends where a name is expected"),
        ("&a", "'&' where a name is expected"),
        ("a(b)", "'(' follows 'a' without an operator"),
        ("a!b", "'!' follows 'a'"),
        ("a||b", "'|' where a name is expected"),
    ],
)
def test_java_expression_errors(expression: str, message: str) -> None:
    with pytest.raises(PatternError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_java_expression(expression)


NAMES = st.sampled_from(["a", "ab", "abc", "b", "bc", "c", "a*", "b*", "ab*", "*"])
PATHS = st.sampled_from(["a", "ab", "abc", "b", "bc", "c", "x"])


@given(NAMES, NAMES, PATHS)
def test_java_de_morgan(x: str, y: str, path: str) -> None:
    left = match_pattern(f"!({x}|{y})", path, "java")
    assert left == match_pattern(f"!{x}&!{y}", path, "java")
    assert left == (not (match_pattern(x, path, "java") or match_pattern(y, path, "java")))


@given(st.text(alphabet="abc.XY", min_size=1, max_size=12), st.integers(1, 12))
def test_a_prefix_always_matches_in_go_mode(path: str, cut: int) -> None:
    assert match_pattern(path[:cut], path, "go")


@given(st.text(alphabet="abc.", min_size=1, max_size=8), st.text(alphabet="abc.", max_size=12))
def test_java_prefix_term_is_startswith(prefix: str, path: str) -> None:
    assert match_pattern(prefix + "*", path, "java") == path.startswith(prefix)


# ---------------------------------------------------------------------------- route rules


def provider(host: str, group: str = "g") -> URL:
    return URL("motan2", host, 8002, "com.weibo.Svc", group)


HOSTS = ["10.71.1.5", "10.71.2.5", "10.72.1.1", "10.77.1.1", "192.168.0.9"]
PROVIDERS = [provider(h) for h in HOSTS]


def hosts(urls: list[URL]) -> list[str]:
    return [u.host for u in urls]


@pytest.mark.parametrize(
    ("side", "address", "expected"),
    [
        ("*", "10.1.1.1", True),
        ("10.1.1.1", "10.1.1.1", True),
        ("10.1.1.1", "10.1.1.10", False),
        ("10.1.*", "10.1.2.3", True),
        ("10.1.*", "10.10.2.3", False),
        ("10.1*", "10.10.2.3", True),
        ("!10.1.*", "10.1.2.3", False),
        ("!10.1.*", "10.2.2.3", True),
        ("!*", "10.2.2.3", False),
    ],
)
def test_match_address(side: str, address: str, expected: bool) -> None:
    assert match_address(side, address) is expected


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("10.75.* to 10.75.*", RouteRule("10.75.*", "10.75.*")),
        ("  * to !10.71.3.* ", RouteRule("*", "!10.71.3.*")),
        ("10.1.1.1to10.2.*", RouteRule("10.1.1.1", "10.2.*")),
        ("!10.77.1.1 to 10.71.*", RouteRule("!10.77.1.1", "10.71.*")),
    ],
)
def test_parse_route_rule(text: str, rule: RouteRule) -> None:
    assert parse_route_rule(text) == rule
    assert parse_route_rule(str(rule)) == rule


@pytest.mark.parametrize(
    "text", ["10.1.1.1", "a to b to c", " to 10.*", "10.* to ", "10.*.1 to *", "! to *", "!!1 to *"]
)
def test_parse_route_rule_rejects(text: str) -> None:
    with pytest.raises(PatternError, match="route rule"):
        parse_route_rule(text)


def test_exclude_a_rack_for_10_clients() -> None:
    rules = ["10.* to !10.71.1.*"]
    assert hosts(apply_route_rules(rules, "10.1.1.1", PROVIDERS)) == [
        "10.71.2.5",
        "10.72.1.1",
        "10.77.1.1",
        "192.168.0.9",
    ]
    assert apply_route_rules(rules, "192.168.1.1", PROVIDERS) == PROVIDERS


def test_negated_from_is_a_no_op_for_that_client() -> None:
    rules = ["!10.77.1.1 to 10.71.*"]
    assert apply_route_rules(rules, "10.77.1.1", PROVIDERS) == PROVIDERS
    assert hosts(apply_route_rules(rules, "10.77.1.2", PROVIDERS)) == ["10.71.1.5", "10.71.2.5"]


def test_rules_chain_on_the_survivors() -> None:
    rules = ["* to 10.71.*", "10.* to !10.71.2.*"]
    assert hosts(apply_route_rules(rules, "10.0.0.1", PROVIDERS)) == ["10.71.1.5"]
    assert hosts(apply_route_rules(rules, "11.0.0.1", PROVIDERS)) == ["10.71.1.5", "10.71.2.5"]
    assert apply_route_rules(["* to 172.*"], "10.0.0.1", PROVIDERS) == []


def test_unreadable_rules_are_skipped() -> None:
    parsed, errors = parse_route_rules(["10.* to 10.71.1.*", "garbage", RouteRule("*", "*")])
    assert parsed == [RouteRule("10.*", "10.71.1.*"), RouteRule("*", "*")]
    assert len(errors) == 1
    assert "'garbage'" in errors[0]
    assert hosts(apply_route_rules(["garbage", "* to 10.72.*"], "1.1.1.1", PROVIDERS)) == [
        "10.72.1.1"
    ]


SIDES = st.sampled_from(
    ["*", "!*", "10.*", "!10.*", "10.71.*", "!10.71.*", "10.71.1.5", "!10.77.1.1", "192.*"]
)
RULES = st.lists(st.builds(lambda a, b: f"{a} to {b}", SIDES, SIDES), max_size=5)
LOCAL = st.sampled_from(["10.71.1.5", "10.77.1.1", "192.168.0.1", "10.0.0.1"])


@given(RULES, LOCAL, st.lists(st.sampled_from(HOSTS), max_size=8))
def test_route_rules_never_add_providers(rules: list[str], local: str, pool: list[str]) -> None:
    providers = [provider(h) for h in pool]
    result = apply_route_rules(rules, local, providers)
    remaining = iter(providers)
    assert all(any(url is p for p in remaining) for url in result)  # an ordered sub-list


@given(RULES, LOCAL, st.randoms(use_true_random=False))
def test_rule_order_does_not_matter(rules: list[str], local: str, rnd: random.Random) -> None:
    shuffled = list(rules)
    rnd.shuffle(shuffled)
    assert apply_route_rules(rules, local, PROVIDERS) == apply_route_rules(
        shuffled, local, PROVIDERS
    )
