"""``http-locations``: nginx-like location matching and rewrite rules, as the Go agent has them.

Config, per domain::

    http-locations:
      api.example.com:
        - match: /v2/users          # type start (the default): longest prefix wins
          upstream: com.example.UserService
        - match: ^/(tst|2).*
          type: regexp              # exact | regexp | iregexp | start
          upstream: com.example.Test
          rewriteRules:
            - "!regexp ^/2/.* ^/(.*) /2/$1"

Matching: exact locations first, then ``regexp``/``iregexp`` ones in config order (searched
anywhere in the path), then the longest ``start`` prefix. A rewrite rule is
``[!]TYPE CONDITION PATTERN REPLACEMENT`` (TYPE exact, start, regexp, iregexp, regexpVar; ``!``
negates the condition); the first rule whose condition holds and whose PATTERN is found in the
path gives the new path: REPLACEMENT with ``$1``/``${1}``/``${name}`` expanded from that match.
With ``regexpVar`` every ``{var}`` in the result is replaced by query parameter ``var``.
Entries that cannot be used (unknown type, bad regular expression, a rule without four fields)
are left out with a warning, as the Go agent does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs

__all__ = ["Location", "LocationMatcher", "RewriteRule"]

log = logging.getLogger("motanmesh.httpmotan")

MATCH_TYPES: Final = frozenset({"exact", "regexp", "iregexp", "start"})
REWRITE_TYPES: Final = frozenset({"exact", "start", "regexp", "iregexp", "regexpVar"})
_VAR_RE: Final = re.compile(r"\{[0-9a-zA-Z_-]+\}")
_TEMPLATE_RE: Final = re.compile(r"\$(\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def _expand(template: str, match: re.Match[str]) -> str:
    """Go's ``Regexp.Expand``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``; a group that
    does not exist (or did not take part) is empty."""

    def one(m: re.Match[str]) -> str:
        if m.group(1) == "$":
            return "$"
        name = m.group(2) or m.group(3)
        try:
            value = match.group(int(name) if name.isdigit() else name)
        except IndexError:
            return ""
        return value or ""

    return _TEMPLATE_RE.sub(one, template)


def _query_vars(uri: str, query: str) -> str:
    if not query:
        return uri
    values = parse_qs(query, keep_blank_values=True)
    return _VAR_RE.sub(lambda m: values.get(m.group(0)[1:-1], [""])[0], uri)


@dataclass(frozen=True)
class RewriteRule:
    negate: bool
    kind: str
    condition: str
    cond_re: re.Pattern[str] | None
    pattern: re.Pattern[str]
    replacement: str

    @classmethod
    def parse(cls, text: str) -> RewriteRule:
        args = text.split()
        if len(args) != 4:
            raise ValueError(f"illegal argument number {len(args)} for rewrite rule")
        kind, negate = args[0], False
        if kind.startswith("!"):
            kind, negate = kind[1:], True
        if kind not in REWRITE_TYPES:
            raise ValueError(f"unsupported condition type {args[0]}")
        cond_re = None
        if kind in ("regexp", "regexpVar"):
            cond_re = re.compile(args[1])
        elif kind == "iregexp":
            cond_re = re.compile(args[1], re.IGNORECASE)
        return cls(negate, kind, args[1], cond_re, re.compile(args[2]), args[3])

    def rewrite(self, uri: str, query: str) -> tuple[str, bool]:
        if self.kind == "exact":
            matched = uri == self.condition
        elif self.kind == "start":
            matched = uri.startswith(self.condition)
        else:
            assert self.cond_re is not None
            matched = self.cond_re.search(uri) is not None
        if self.negate:
            matched = not matched
        var = self.kind == "regexpVar"
        if matched:
            found = self.pattern.search(uri)
            if found is not None:
                out = _expand(self.replacement, found)
                return (_query_vars(out, query) if var else out), True
        return (_query_vars(uri, query) if var else uri), False


@dataclass
class Location:
    upstream: str
    match: str
    kind: str = "start"
    rules: list[RewriteRule] = field(default_factory=list)
    pattern: re.Pattern[str] | None = None

    def path(self, path: str, query: str, rewrite: bool) -> str:
        if rewrite:
            for rule in self.rules:
                out, done = rule.rewrite(path, query)
                if done:
                    return out
        return path


class LocationMatcher:
    """The locations of one domain (see the module docs)."""

    def __init__(self, locations: list[Location]) -> None:
        self.locations = locations
        self.exact = [loc for loc in locations if loc.kind == "exact"]
        self.regexp = [loc for loc in locations if loc.kind in ("regexp", "iregexp")]
        self.start = [loc for loc in locations if loc.kind == "start"]
        #: whether some rule reads the query (``regexpVar``)
        self.needs_query = any(r.kind == "regexpVar" for loc in locations for r in loc.rules)

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None, domain: str) -> LocationMatcher:
        """The matcher of ``domain`` in an ``http-locations`` section (empty when none)."""
        entries = (section or {}).get(domain) if domain else None
        if not isinstance(entries, list):
            if entries is not None:
                log.warning("http-locations.%s: expected a list of locations", domain)
            return cls([])
        locations = []
        for i, entry in enumerate(entries):
            where = f"http-locations.{domain}[{i}]"
            try:
                locations.append(_location(entry))
            except (ValueError, TypeError, re.error) as e:
                log.warning("%s left out: %s", where, e)
        return cls(locations)

    def pick(self, path: str, query: str = "", rewrite: bool = False) -> tuple[str, str] | None:
        """``(upstream, path)`` for ``path`` (rewritten when ``rewrite``), or ``None``."""
        for loc in self.exact:
            if path == loc.match:
                return loc.upstream, loc.path(path, query, rewrite)
        for loc in self.regexp:
            assert loc.pattern is not None
            if loc.pattern.search(path):
                return loc.upstream, loc.path(path, query, rewrite)
        best: Location | None = None
        for loc in self.start:
            if path.startswith(loc.match) and (best is None or len(loc.match) > len(best.match)):
                best = loc
        if best is not None:
            return best.upstream, best.path(path, query, rewrite)
        return None

    def upstream(self, path: str) -> str:
        """The upstream service of ``path`` (``""`` when no location matches)."""
        found = self.pick(path)
        return found[0] if found else ""


def _location(entry: Any) -> Location:
    if not isinstance(entry, Mapping):
        raise TypeError("expected a mapping")
    upstream, match = entry.get("upstream"), entry.get("match")
    if not isinstance(upstream, str) or not upstream:
        raise ValueError("upstream is missing")
    if not isinstance(match, str):
        raise ValueError("match is missing")
    kind = str(entry.get("type") or "start")
    if kind not in MATCH_TYPES:
        raise ValueError(f"unsupported type {kind!r} for location {match}")
    rules = []
    raw_rules = entry.get("rewriteRules") or []
    if not isinstance(raw_rules, list):
        raise TypeError("rewriteRules: expected a list")
    for text in raw_rules:
        if not text:
            continue
        try:
            rules.append(RewriteRule.parse(str(text)))
        except (ValueError, re.error) as e:
            log.warning("illegal rewrite rule %r for location %s: %s", text, match, e)
    pattern = None
    if kind == "regexp":
        pattern = re.compile(match)
    elif kind == "iregexp":
        pattern = re.compile(match, re.IGNORECASE)
    return Location(upstream, match, kind, rules, pattern)
