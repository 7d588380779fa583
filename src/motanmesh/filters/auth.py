"""``auth`` (endpoint, index 0, server side): which callers may call a service and its methods.

The policy (:mod:`motanmesh.filters.auth_policy`) comes from the exported service's URL (its
``motan-service`` entry: ``auth.allow``, ``auth.allow.<method>``, ``auth.requireIdentity``)
unless the registry holds one for the service; the agent follows that node and hands its
policy to :meth:`AuthFilter.use_registry_policy`, which replaces the configured one until
the node is removed.

The caller is the connection's verified mTLS identity (``call.conn.identity``, a SPIFFE URI)
when there is one, else the request's ``M_s``, which is **unauthenticated**: any process
that reaches the export port can write any ``M_s``, so without mTLS this guards against
mistakes and well-behaved but unwanted callers, not against a hostile workload.

A refused call is answered with a Motan exception: errcode :data:`E_AUTH_DENIED` (403),
errtype 2 (a refusal another attempt would not change: callers' agents neither retry it nor
count it against the provider's health), a message naming the caller, service, method and
reason. It is counted per method (``/runtime/info``, and ``motan_auth_denied_total`` on
``/metrics``) and logged at most once per :data:`LOG_INTERVAL` seconds per service, never
with its body. On the client side the filter does nothing.
"""

from __future__ import annotations

import logging
from time import monotonic
from typing import Any, Final

from motanmesh.filters.auth_policy import AuthPolicy, PolicyError
from motanmesh.filters.base import ROLE_SERVER, Call, Filter, FilterContext, Handler
from motanmesh.telemetry.runtime import RuntimeSample
from motanmesh.url import URL
from motanmesh.wire.frame import ERRTYPE_BIZ

__all__ = ["AUTH_SERVICE", "E_AUTH_DENIED", "AuthFilter", "AuthFilters", "AuthPolicy"]

log = logging.getLogger("motanmesh.filters.auth")

#: the errcode of a refused call
E_AUTH_DENIED: Final = 403
#: the errtype of a refused call (biz: not retried, not counted against the provider)
ERRTYPE_AUTH_DENIED: Final = ERRTYPE_BIZ
LOG_INTERVAL: Final = 10.0
#: distinct method names counted one by one per service; the rest are counted together
MAX_COUNTED_METHODS: Final = 64
OTHER_METHODS: Final = "(other)"
#: where the auth filters of an agent are found among the filters' shared objects
AUTH_SERVICE: Final = "auth"
_SHOWN: Final = 128


def _shown(text: str) -> str:
    """Caller-written text as a log line or an answer shows it: quoted and bounded."""
    if len(text) > _SHOWN:
        text = text[:_SHOWN] + "..."
    return repr(text)


class AuthFilters:
    """Every auth filter of one agent (the shared object ``auth``): their refusal counts
    as runtime samples for ``/metrics``."""

    def __init__(self) -> None:
        self.filters: list[AuthFilter] = []

    def runtime_samples(self) -> list[RuntimeSample]:
        out: list[RuntimeSample] = []
        totals: dict[tuple[str, str, str], int] = {}
        for f in list(self.filters):
            for method, n in f.denied_by_method.items():
                key = (f.url.group, f.url.path, method)
                totals[key] = totals.get(key, 0) + n
        for (group, service, method), n in sorted(totals.items()):
            out.append(
                RuntimeSample(
                    "motan_auth_denied_total",
                    "counter",
                    n,
                    "Calls refused by the auth filter",
                    (("group", group), ("service", service), ("method", method)),
                )
            )
        return out


class AuthFilter(Filter):
    """Refuses calls from callers the service's policy does not name."""

    name = "auth"
    kind = "endpoint"
    index = 0

    def __init__(self, url: URL, context: FilterContext) -> None:
        super().__init__(url, context)
        self.config_error = ""
        try:
            self.config_policy = AuthPolicy.from_url(url)
        except PolicyError as e:
            # fail closed: a typo must not open the service
            self.config_error = str(e)
            self.config_policy = AuthPolicy()
            log.error(
                "auth on %s: bad policy in the config; every call is refused: %s", url.path, e
            )
        #: the policy in force: the registry's when there is one, else the config's
        self.policy = self.config_policy
        self.denied = 0
        #: refusals by method (at most :data:`MAX_COUNTED_METHODS` names, then ``(other)``)
        self.denied_by_method: dict[str, int] = {}
        self._logged = 0.0
        self._unlogged = 0
        if self.policy.empty and not self.config_error:
            log.warning("auth on %s has no auth.allow policy: every call is refused", url.path)
        context.get_service(AUTH_SERVICE, AuthFilters).filters.append(self)

    def use_registry_policy(self, policy: AuthPolicy | None) -> None:
        """Put ``policy`` (from the registry) in force; ``None`` returns to the config's."""
        self.policy = policy if policy is not None else self.config_policy
        log.info(
            "auth on %s/%s: policy from %s in force: %s",
            self.url.group,
            self.url.path,
            self.policy.source,
            self.policy.to_info(),
        )

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        if call.role != ROLE_SERVER:
            proceed(call)
            return
        conn = call.conn
        identity: str = conn.identity if conn is not None else ""
        caller = call.caller
        method = call.method
        policy = self.policy
        if policy.admits(method, identity, caller):
            proceed(call)
            return
        self._deny(call, method, identity, caller, policy.refusal(method, identity, caller))

    def _deny(self, call: Call, method: str, identity: str, caller: str, reason: str) -> None:
        self.denied += 1
        counts = self.denied_by_method
        key = method if method in counts or len(counts) < MAX_COUNTED_METHODS else OTHER_METHODS
        counts[key] = counts.get(key, 0) + 1
        who = f"identity {_shown(identity)}" if identity else f"caller {_shown(caller or '')}"
        now = monotonic()
        if now - self._logged >= LOG_INTERVAL:
            self._logged = now
            log.warning(
                "auth: refused %s.%s to %s from %s: %s (%d refused so far, %d not logged)",
                self.url.path,
                _shown(method)[1:-1],
                who,
                call.peer,
                reason,
                self.denied,
                self._unlogged,
            )
            self._unlogged = 0
        else:
            self._unlogged += 1
        call.fail(
            E_AUTH_DENIED,
            f"auth: {who} may not call {self.url.path}.{_shown(method)[1:-1]} ({reason})",
            ERRTYPE_AUTH_DENIED,
        )

    def close(self) -> None:
        shared = self.context.services.get(AUTH_SERVICE)
        if isinstance(shared, AuthFilters) and self in shared.filters:
            shared.filters.remove(self)

    def info(self) -> dict[str, Any]:
        out = {
            **super().info(),
            **self.policy.to_info(),
            "denied": self.denied,
            "deniedByMethod": dict(self.denied_by_method),
        }
        if self.config_error:
            out["configError"] = self.config_error
        return out
