"""``methodAcl``: an example filter shipped as its own package.

Configured on a refer or a service::

    filter: methodAcl
    methodAcl.deny: sleep,fail

Calls to a denied method are answered errcode 403 without reaching the provider; the
others go on. ``/runtime/info`` shows the denied methods and how many calls were refused.
"""

from __future__ import annotations

from typing import Any

from motanmesh.filters import Call, Filter, FilterContext, Handler
from motanmesh.url import URL

__all__ = ["MethodAclFilter"]


class MethodAclFilter(Filter):
    name = "methodAcl"
    kind = "endpoint"
    index = 5

    def __init__(self, url: URL, context: FilterContext) -> None:
        super().__init__(url, context)
        # read the configuration once, not per call
        self.denied = frozenset(url.get_list("methodAcl.deny"))
        self.refused = 0

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        if call.method in self.denied:
            self.refused += 1
            call.fail(403, f"method {call.method} is denied by methodAcl")
            return
        proceed(call)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "denied": sorted(self.denied), "refused": self.refused}
