"""Pattern matchers of the command system: which services a command covers, which providers
a route rule keeps.

Service patterns (the ``pattern`` field of a command) are read in one of two ways, as the two
families of Motan clients read them:

* **go** -- the command covers a service path when the pattern is ``*``, when it is a string
  prefix of the path, or when it is a regular expression found anywhere in the path
  (unanchored search). A pattern that is not a valid regular expression still works as a
  prefix. Python's ``re`` syntax is used; RE2-only constructs do not compile and then only the
  prefix test applies.
* **java** -- a boolean expression over service names: operators ``(`` ``)`` ``!`` ``&`` ``|``
  with precedence ``()`` > ``!`` > ``&`` > ``|``; each term is an exact service name, or a
  prefix when it ends with ``*`` (``*`` alone covers everything). Whitespace is ignored. For
  example ``com.weibo.*&!com.weibo.Foo``.

The **auto** mode picks one per pattern: a pattern is read as *java* when it uses Java syntax
(one of ``& | ! ( )``, or a term ending with ``*`` such as ``com.weibo.*``) *and* it parses as
an expression whose terms all look like service names (``[A-Za-z0-9_$][A-Za-z0-9_.$-]*``,
optionally followed by ``*``). Everything else is read as *go*: plain names (prefix match) and
regular expressions such as ``.*Service$`` or ``com.weibo.(feed|user).``. Where a deployment's
other clients all read patterns one way, force that mode.

An empty or blank pattern covers nothing in every mode (a Go client would read ``""`` as a
prefix of every path; here a command without a pattern is an authoring mistake, not a wildcard).

Route rules (``"<from> to <to>"``) compare IP addresses: each side is ``*``, an exact address,
or a prefix ending in ``*``, optionally negated with a leading ``!``. ``from`` is matched
against the client's local IP and ``to`` against every provider host; a rule whose ``from``
matches drops the providers whose host does not match ``to``. Rules chain in order, each
filtering the survivors of the previous one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, TypeAlias

from motanmesh.url import URL

__all__ = [
    "PatternError",
    "PatternMode",
    "RouteRule",
    "ServicePattern",
    "apply_route_rules",
    "compile_java_expression",
    "compile_pattern",
    "match_address",
    "match_pattern",
    "parse_route_rule",
    "parse_route_rules",
    "pattern_mode",
]

PatternMode: TypeAlias = Literal["go", "java", "auto"]
Matcher: TypeAlias = Callable[[str], bool]


class PatternError(ValueError):
    """A service pattern or a route rule that cannot be read."""


# ---------------------------------------------------------------------------- java expressions

_OPERATORS = frozenset("&|!()")
_CLOSERS = frozenset("&|)")
_NAME_TERM_RE = re.compile(r"(?:[A-Za-z0-9_$][A-Za-z0-9_.$\-]*\*?|\*)\Z")


def _tokenize(expression: str) -> list[str]:
    tokens: list[str] = []
    term: list[str] = []
    for ch in expression:
        if ch.isspace():
            continue
        if ch in _OPERATORS:
            if term:
                tokens.append("".join(term))
                term = []
            tokens.append(ch)
        else:
            term.append(ch)
    if term:
        tokens.append("".join(term))
    return tokens


def _term_matcher(term: str) -> Matcher:
    if term.endswith("*"):
        prefix = term[:-1]
        return lambda path: path.startswith(prefix)
    return lambda path: path == term


class _ExpressionParser:
    """Recursive descent: ``or := and ('|' and)*``, ``and := not ('&' not)*``,
    ``not := '!' not | '(' or ')' | TERM``."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = _tokenize(expression)
        self.pos = 0
        self.terms: list[str] = []

    def fail(self, what: str) -> PatternError:
        return PatternError(f"invalid pattern expression {self.expression!r}: {what}")

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def parse(self) -> Matcher:
        if not self.tokens:
            raise self.fail("it is empty")
        matcher = self.parse_or()
        token = self.peek()
        if token is not None:
            raise self.fail(f"unexpected {token!r}")
        return matcher

    def parse_or(self) -> Matcher:
        parts = [self.parse_and()]
        while self.peek() == "|":
            self.pos += 1
            parts.append(self.parse_and())
        if len(parts) == 1:
            return parts[0]
        return lambda path: any(part(path) for part in parts)

    def parse_and(self) -> Matcher:
        parts = [self.parse_not()]
        while self.peek() == "&":
            self.pos += 1
            parts.append(self.parse_not())
        if len(parts) == 1:
            return parts[0]
        return lambda path: all(part(path) for part in parts)

    def parse_not(self) -> Matcher:
        token = self.peek()
        if token is None:
            raise self.fail("it ends where a name is expected")
        self.pos += 1
        if token == "!":
            inner = self.parse_not()
            return lambda path: not inner(path)
        if token == "(":
            inner = self.parse_or()
            if self.peek() != ")":
                raise self.fail("'(' is not closed")
            self.pos += 1
            return inner
        if token in _OPERATORS:
            raise self.fail(f"{token!r} where a name is expected")
        after = self.peek()
        if after is not None and after not in _CLOSERS:
            raise self.fail(f"{after!r} follows {token!r} without an operator")
        self.terms.append(token)
        return _term_matcher(token)


def compile_java_expression(expression: str) -> Matcher:
    """Compile a Java-style boolean pattern to a matcher; raise :class:`PatternError`."""
    return _ExpressionParser(expression).parse()


def _java_reading(pattern: str) -> Matcher | None:
    """The matcher when ``pattern`` is meant as a Java expression (auto mode), else ``None``."""
    compact = "".join(pattern.split())
    uses_java = any(ch in _OPERATORS for ch in compact) or any(
        len(token) > 1 and token.endswith("*") for token in _tokenize(compact)
    )
    if not uses_java:
        return None
    parser = _ExpressionParser(compact)
    try:
        matcher = parser.parse()
    except PatternError:
        return None
    if all(_NAME_TERM_RE.match(term) for term in parser.terms):
        return matcher
    return None


# ---------------------------------------------------------------------------- go patterns


@lru_cache(maxsize=512)
def _regexp(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return None


def _go_matcher(pattern: str) -> Matcher:
    regexp = _regexp(pattern)
    if regexp is None:
        return lambda path: path.startswith(pattern)
    search = regexp.search
    return lambda path: path.startswith(pattern) or search(path) is not None


def _never(_path: str) -> bool:
    return False


def _always(_path: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class ServicePattern:
    """A compiled service pattern. ``mode`` is the reading used (``go`` or ``java``);
    ``error`` explains why the pattern is partly or wholly unusable (then it may match less)."""

    pattern: str
    mode: Literal["go", "java"]
    matches: Matcher
    error: str = ""

    def __call__(self, path: str) -> bool:
        return self.matches(path)


def pattern_mode(pattern: str) -> Literal["go", "java"]:
    """The reading ``auto`` mode chooses for ``pattern`` (see the module docstring)."""
    return "java" if _java_reading(pattern) is not None else "go"


def compile_pattern(pattern: str, mode: PatternMode = "auto") -> ServicePattern:
    """Compile a service pattern under ``mode``. Never raises for a pattern: an unreadable one
    matches nothing (java) or only as a prefix (go), and says why in ``error``. Results are
    cached, so compiling the same pattern again is cheap."""
    if mode not in ("go", "java", "auto"):
        raise ValueError(f"unknown pattern mode {mode!r}; valid: go, java, auto")
    return _compile(pattern, mode)


@lru_cache(maxsize=512)
def _compile(pattern: str, mode: PatternMode) -> ServicePattern:
    if not pattern.strip():
        reading: Literal["go", "java"] = "java" if mode == "java" else "go"
        return ServicePattern(pattern, reading, _never, "the pattern is empty")
    if pattern.strip() == "*":
        return ServicePattern(pattern, "java" if mode == "java" else "go", _always)
    if mode == "auto":
        java = _java_reading(pattern)
        if java is not None:
            return ServicePattern(pattern, "java", java)
        mode = "go"
    if mode == "java":
        try:
            return ServicePattern(pattern, "java", compile_java_expression(pattern))
        except PatternError as exc:
            return ServicePattern(pattern, "java", _never, str(exc))
    error = "" if _regexp(pattern) is not None else "not a valid regular expression (prefix only)"
    return ServicePattern(pattern, "go", _go_matcher(pattern), error)


def match_pattern(pattern: str, path: str, mode: PatternMode = "auto") -> bool:
    """Whether a command with ``pattern`` covers the service ``path``."""
    return compile_pattern(pattern, mode).matches(path)


# ---------------------------------------------------------------------------- route rules

_SIDE_RE = re.compile(r"!?[^\s!*]*\*?\Z")


def match_address(side: str, address: str) -> bool:
    """One side of a route rule against an IP: ``*``, exact, ``prefix*``, ``!`` negation."""
    if side.startswith("!"):
        return not match_address(side[1:], address)
    if side.endswith("*"):
        return address.startswith(side[:-1])
    return address == side


@dataclass(frozen=True, slots=True)
class RouteRule:
    """A parsed ``"<from> to <to>"`` rule."""

    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.source} to {self.target}"

    def applies_to(self, local_ip: str) -> bool:
        return match_address(self.source, local_ip)

    def keeps(self, host: str) -> bool:
        return match_address(self.target, host)


def parse_route_rule(text: str) -> RouteRule:
    """Parse ``"<from> to <to>"``. Whitespace is ignored; each side must be non-empty and of
    the form ``[!]chars[*]`` (``*`` only at the end). Raise :class:`PatternError` otherwise."""
    compact = "".join(text.split())
    parts = compact.split("to")
    if len(parts) != 2:
        raise PatternError(f"route rule {text!r} is not '<from> to <to>'")
    for side in parts:
        if not side or side == "!" or not _SIDE_RE.match(side):
            raise PatternError(
                f"route rule {text!r}: side {side!r} is not '*', an address or 'prefix*',"
                " optionally negated with '!'"
            )
    return RouteRule(parts[0], parts[1])


def parse_route_rules(rules: Iterable[str | RouteRule]) -> tuple[list[RouteRule], list[str]]:
    """Parse rules, keeping the readable ones; also return an error message per skipped rule."""
    parsed: list[RouteRule] = []
    errors: list[str] = []
    for rule in rules:
        if isinstance(rule, RouteRule):
            parsed.append(rule)
            continue
        try:
            parsed.append(parse_route_rule(rule))
        except PatternError as exc:
            errors.append(str(exc))
    return parsed, errors


def apply_route_rules(
    rules: Iterable[str | RouteRule], local_ip: str, providers: Sequence[URL]
) -> list[URL]:
    """The providers the route rules keep for a client at ``local_ip``, in their order.

    Rules that cannot be parsed are skipped. The result may be empty; what to do then is the
    caller's choice (see ``EffectiveCommand.providers``).
    """
    result = list(providers)
    for rule in parse_route_rules(rules)[0]:
        if rule.applies_to(local_ip):
            result = [url for url in result if rule.keeps(url.host)]
    return result
