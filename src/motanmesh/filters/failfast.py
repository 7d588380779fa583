"""``failfast`` (endpoint, index 1): a provider address that failed 10 calls in a row leaves
load balancing; one call is let through as a probe every 10 seconds, and a success brings
it back.

The state is per address and shared by every refer of the agent (as the Go agent's
process-wide map): ten failures through one refer take the address out for all of them.
Errors are exception responses other than business exceptions, and transport errors; any
other outcome resets the count. The probe interval counts from the last call that
completed or the last probe let through. Server side the filter only counts (there is no
load balancing to leave).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any, Final

from motanmesh.filters.base import (
    ERROR_OTHER,
    ROLE_CLIENT,
    Call,
    Filter,
    FilterContext,
    Handler,
    error_kind,
)
from motanmesh.url import URL
from motanmesh.wire.frame import Frame

__all__ = ["FAILFAST_SERVICE", "AddressStatus", "FailfastFilter"]

FAILFAST_SERVICE: Final = "failfast"
FAILURE_COUNT: Final = 10
PROBE_INTERVAL: Final = 10.0


class AddressStatus:
    """The health of one provider address."""

    __slots__ = ("available", "error_count", "last")

    def __init__(self, now: float) -> None:
        self.available = True
        self.error_count = 0
        #: when a call last completed, or a probe was last let through
        self.last = now

    def to_info(self) -> dict[str, Any]:
        return {"available": self.available, "errorCount": self.error_count}


class FailfastFilter(Filter):
    """Takes a failing provider address out of load balancing until a probe succeeds."""

    name = "failfast"
    kind = "endpoint"
    index = 1

    def __init__(self, url: URL, context: FilterContext) -> None:
        super().__init__(url, context)
        self._states: dict[str, AddressStatus] = context.get_service(FAILFAST_SERVICE, dict)
        #: the addresses this filter has seen
        self.addresses: set[str] = set()

    def _status(self, address: str) -> AddressStatus:
        status = self._states.get(address)
        if status is None:
            status = self._states[address] = AddressStatus(time.monotonic())
        self.addresses.add(address)
        return status

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        address = call.peer if call.role == ROLE_CLIENT else self.url.address
        call.on_complete(partial(_done, self._states.get(address) or self._status(address)))
        proceed(call)

    def is_available(self, peer: str) -> bool:
        status = self._states.get(peer)
        if status is None or status.available:
            return True
        now = time.monotonic()
        if now > status.last + PROBE_INTERVAL:
            status.last = now  # one probe per interval
            return True
        return False

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "addresses": {a: self._states[a].to_info() for a in sorted(self.addresses)},
        }


def _done(
    status: AddressStatus, call: Call, response: Frame | None, exc: BaseException | None
) -> None:
    if error_kind(response, exc) == ERROR_OTHER:
        status.error_count += 1
        if status.error_count >= FAILURE_COUNT:
            status.available = False
    else:
        status.error_count = 0
        status.available = True
    status.last = time.monotonic()
