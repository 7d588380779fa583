"""``auth`` (endpoint, index 0, server side): which callers may call a service and its methods.

The policy is read from the exported service's URL (its ``motan-service`` entry):

* ``auth.allow``: the caller applications allowed to call the service, a comma list;
  ``*`` allows every caller;
* ``auth.allow.<method>``: the callers allowed for that method, instead of ``auth.allow``.

A service with the filter and no policy refuses every call (fail closed). The caller is the
request's ``M_s`` (the application the caller names itself), which is **unauthenticated**:
any process that reaches the export port can write any ``M_s``, so this guards against
mistakes and well-behaved but unwanted callers, not against a hostile workload.

A refused call is answered with a Motan exception (code :data:`E_AUTH_DENIED`, a message
naming the caller, service and method), counted (``info()["denied"]``) and logged at most
once per :data:`LOG_INTERVAL` seconds, never with its body. On the client side the filter
does nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

from motanmesh.filters.base import ROLE_SERVER, Call, Filter, FilterContext, Handler
from motanmesh.url import URL

__all__ = ["E_AUTH_DENIED", "AuthFilter", "AuthPolicy"]

log = logging.getLogger("motanmesh.filters.auth")

#: the errcode of a refused call
E_AUTH_DENIED: Final = 403
LOG_INTERVAL: Final = 10.0
_ANY: Final = "*"
_PREFIX: Final = "auth.allow"


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip() for n in text.split(",") if n.strip())


class AuthPolicy:
    """The allowed callers of one service, by method."""

    __slots__ = ("by_method", "service")

    def __init__(self, service: frozenset[str] | None, by_method: dict[str, frozenset[str]]):
        self.service = service
        self.by_method = by_method

    @classmethod
    def from_url(cls, url: URL) -> AuthPolicy:
        service: frozenset[str] | None = None
        by_method: dict[str, frozenset[str]] = {}
        for key, value in url.parameters.items():
            if key == _PREFIX:
                service = _names(value)
            elif key.startswith(_PREFIX + ".") and len(key) > len(_PREFIX) + 1:
                by_method[key[len(_PREFIX) + 1 :]] = _names(value)
        return cls(service, by_method)

    def allows(self, method: str, caller: str) -> bool:
        allowed = self.by_method.get(method, self.service)
        if allowed is None:
            return False
        return _ANY in allowed or (bool(caller) and caller in allowed)

    def to_info(self) -> dict[str, Any]:
        return {
            "allow": sorted(self.service) if self.service is not None else None,
            "methods": {m: sorted(v) for m, v in sorted(self.by_method.items())},
        }


class AuthFilter(Filter):
    """Refuses calls from callers the service's policy does not name."""

    name = "auth"
    kind = "endpoint"
    index = 0

    def __init__(self, url: URL, context: FilterContext) -> None:
        super().__init__(url, context)
        self.policy = AuthPolicy.from_url(url)
        self.denied = 0
        self._logged = 0.0
        if self.policy.service is None and not self.policy.by_method:
            log.warning("auth on %s has no auth.allow policy: every call is refused", url.path)

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        if call.role != ROLE_SERVER:
            proceed(call)
            return
        caller = call.caller
        method = call.method
        if self.policy.allows(method, caller):
            proceed(call)
            return
        self.denied += 1
        now = time.monotonic()
        if now - self._logged >= LOG_INTERVAL:
            self._logged = now
            log.warning(
                "auth: refused %s.%s to caller %r from %s (%d refused so far)",
                call.service,
                method,
                caller,
                call.peer,
                self.denied,
            )
        call.fail(
            E_AUTH_DENIED,
            f"auth: caller {caller or '(none)'!r} may not call {call.service}.{method} "
            "(M_s is not in the service's auth.allow)",
        )

    def info(self) -> dict[str, Any]:
        return {**super().info(), **self.policy.to_info(), "denied": self.denied}
