"""Access policies of the ``auth`` filter: which callers may call a service and its methods.

A policy holds, for the whole service and optionally per method, a list of entries. Each
entry is one of:

* ``*``: every caller;
* a SPIFFE URI (``spiffe://<trust-domain>/<path>``): exactly the caller whose verified mTLS
  identity is that URI (compared as text, case-sensitively);
* an application name (``web``): a caller whose verified identity is
  ``spiffe://<any trust domain>/app/web``, or, on a connection without an identity, a
  caller whose ``M_s`` is ``web``.

The caller is its verified identity when the connection has one (``M_s`` is then ignored),
else its ``M_s``, which is **unauthenticated** (any process can write any ``M_s``). With
``requireIdentity`` a caller without a verified identity is refused whatever the lists say.
A method's list replaces the service's list for that method; a method with no list of its
own and a policy with no service list refuse the call (fail closed).

Two sources: the exported service's URL (``auth.allow``, ``auth.allow.<method>``,
``auth.requireIdentity``; :meth:`AuthPolicy.from_url`) and a JSON document from the
registry (:meth:`AuthPolicy.from_json`)::

    {"allow": ["web", "spiffe://prod.example/app/mobile"],
     "methods": {"refund": ["billing"]},
     "requireIdentity": false}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from motanmesh.url import URL

__all__ = [
    "ALLOW_KEY",
    "ANY",
    "REQUIRE_IDENTITY_KEY",
    "SPIFFE_SCHEME",
    "Allowed",
    "AuthPolicy",
    "PolicyError",
    "application_of",
]

ANY: Final = "*"
SPIFFE_SCHEME: Final = "spiffe://"
ALLOW_KEY: Final = "auth.allow"
REQUIRE_IDENTITY_KEY: Final = "auth.requireIdentity"
_APP: Final = "app"
_JSON_KEYS: Final = frozenset({"allow", "methods", "requireIdentity"})
_BAD_NAME_CHARS: Final = frozenset(" \t\r\n/,:*\"'\\")
_TRUE: Final = frozenset({"true", "1", "t", "yes"})
_FALSE: Final = frozenset({"false", "0", "f", "no", ""})


class PolicyError(ValueError):
    """A policy that cannot be read; the message says what is wrong."""


def application_of(identity: str) -> str:
    """``web`` for ``spiffe://<trust-domain>/app/web``; ``""`` for any other identity."""
    if not identity.startswith(SPIFFE_SCHEME):
        return ""
    _domain, slash, path = identity[len(SPIFFE_SCHEME) :].partition("/")
    if not slash:
        return ""
    kind, slash, name = path.partition("/")
    if kind != _APP or not slash or not name or "/" in name:
        return ""
    return name


#: identities are few (one per calling application) and come back on every call
_application_of = lru_cache(maxsize=4096)(application_of)


def _check_entry(entry: str) -> str:
    if entry == ANY:
        return entry
    if entry.startswith(SPIFFE_SCHEME):
        domain, slash, path = entry[len(SPIFFE_SCHEME) :].partition("/")
        if not domain or not slash or not path or any(c.isspace() for c in entry):
            raise PolicyError(
                f"{entry!r} is not a SPIFFE URI (spiffe://<trust-domain>/<path>, no spaces)"
            )
        return entry
    if any(c in _BAD_NAME_CHARS or not c.isprintable() for c in entry):
        raise PolicyError(
            f"{entry!r} is neither '*', a spiffe:// URI nor an application name "
            "(no spaces, '/', ',', ':', '*' or quotes)"
        )
    return entry


@dataclass(frozen=True, slots=True)
class Allowed:
    """One list of allowed callers."""

    #: application names (``M_s``, or the ``/app/<name>`` of a verified identity)
    names: frozenset[str] = frozenset()
    #: full SPIFFE URIs (verified identities only)
    uris: frozenset[str] = frozenset()
    #: ``*``: every caller
    any: bool = False

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowed:
        """The list of ``entries`` (blank ones skipped); :class:`PolicyError` on a bad one."""
        names: set[str] = set()
        uris: set[str] = set()
        anyone = False
        for raw in entries:
            entry = _check_entry(raw.strip()) if raw.strip() else ""
            if not entry:
                continue
            if entry == ANY:
                anyone = True
            elif entry.startswith(SPIFFE_SCHEME):
                uris.add(entry)
            else:
                names.add(entry)
        return cls(frozenset(names), frozenset(uris), anyone)

    @classmethod
    def from_text(cls, text: str) -> Allowed:
        """A comma list, as in the config."""
        return cls.parse(text.split(","))

    def admits(self, identity: str, caller: str) -> bool:
        """Whether the caller (``identity`` when not empty, else ``caller``, its ``M_s``)
        is on this list."""
        if self.any:
            return True
        if identity:
            return identity in self.uris or _application_of(identity) in self.names
        return bool(caller) and caller in self.names

    def entries(self) -> list[str]:
        return ([ANY] if self.any else []) + sorted(self.names) + sorted(self.uris)


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """The allowed callers of one service, by method, and where the policy came from."""

    service: Allowed | None = None
    by_method: Mapping[str, Allowed] = field(default_factory=dict)
    require_identity: bool = False
    #: ``config``, or the registry the policy was read from
    source: str = "config"

    # ------------------------------------------------------------------ reading

    @classmethod
    def from_url(cls, url: URL) -> AuthPolicy:
        """The policy in an exported service's URL; :class:`PolicyError` on a bad entry."""
        service: Allowed | None = None
        by_method: dict[str, Allowed] = {}
        require = False
        prefix = ALLOW_KEY + "."
        for key, value in url.parameters.items():
            if key == ALLOW_KEY:
                service = Allowed.from_text(value)
            elif key.startswith(prefix) and len(key) > len(prefix):
                by_method[key[len(prefix) :]] = Allowed.from_text(value)
            elif key == REQUIRE_IDENTITY_KEY:
                require = _flag(value, key)
        return cls(service, by_method, require)

    @classmethod
    def from_json(cls, text: str, source: str = "registry") -> AuthPolicy:
        """The policy in a JSON document (the registry's form); :class:`PolicyError` with the
        reason when it is not one."""
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise PolicyError(f"not JSON: {e}") from None
        if not isinstance(doc, dict):
            raise PolicyError(f"a policy is a JSON object, not {type(doc).__name__}")
        unknown = sorted(set(doc) - _JSON_KEYS)
        if unknown:
            raise PolicyError(
                f"unknown key(s) {', '.join(map(repr, unknown))} (known: allow, methods, "
                "requireIdentity)"
            )
        service = _json_list(doc["allow"], "allow") if "allow" in doc else None
        methods = doc.get("methods", {})
        if not isinstance(methods, dict):
            raise PolicyError("'methods' must be an object of method name -> list of callers")
        by_method: dict[str, Allowed] = {}
        for method, entries in methods.items():
            if not method:
                raise PolicyError("'methods' has an empty method name")
            by_method[method] = _json_list(entries, f"methods.{method}")
        require = doc.get("requireIdentity", False)
        if not isinstance(require, bool):
            raise PolicyError("'requireIdentity' must be true or false")
        return cls(service, by_method, require, source)

    # ------------------------------------------------------------------ checking

    @property
    def empty(self) -> bool:
        """No list at all: every call is refused."""
        return self.service is None and not self.by_method

    def admits(self, method: str, identity: str, caller: str) -> bool:
        """Whether the call may go on (the per-call check; :meth:`refusal` says why not)."""
        if not identity and self.require_identity:
            return False
        allowed = self.by_method.get(method, self.service)
        return allowed is not None and allowed.admits(identity, caller)

    def refusal(self, method: str, identity: str, caller: str) -> str:
        """``""`` when the call may go on, else why it may not."""
        if self.require_identity and not identity:
            return "the service requires a verified mTLS identity and the connection has none"
        allowed = self.by_method.get(method, self.service)
        if allowed is None:
            return "the service's policy names no callers for this method"
        if allowed.admits(identity, caller):
            return ""
        if identity:
            return "the caller's identity is not in the service's auth.allow"
        return "M_s is not in the service's auth.allow"

    def to_info(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "allow": self.service.entries() if self.service is not None else None,
            "methods": {m: a.entries() for m, a in sorted(self.by_method.items())},
            "requireIdentity": self.require_identity,
        }

    def to_json(self) -> str:
        """The registry form of this policy."""
        doc: dict[str, Any] = {}
        if self.service is not None:
            doc["allow"] = self.service.entries()
        if self.by_method:
            doc["methods"] = {m: a.entries() for m, a in sorted(self.by_method.items())}
        if self.require_identity:
            doc["requireIdentity"] = True
        return json.dumps(doc, separators=(",", ":"))


def _flag(value: str, key: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise PolicyError(f"{key} must be true or false, not {value!r}")


def _json_list(value: Any, where: str) -> Allowed:
    if isinstance(value, str):
        return Allowed.from_text(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where!r} must be a list of strings (or a comma list)")
    try:
        return Allowed.parse(value)
    except PolicyError as e:
        raise PolicyError(f"{where}: {e}") from None
