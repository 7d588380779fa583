"""``rateLimit`` (endpoint, index 3): token buckets for a service and its methods, with the
Go agent's keys.

* ``rateLimit``: calls per second for the whole service; the bucket holds ``capacity``
  tokens (default ``2 * rate`` clamped to 1000..5000). A call waits up to ``requestTimeout``
  (ms, default 1000) for a token, else it is answered errcode 400 (service exception)
  ``[rateLimit] wait time exceed timeout(1s)``.
* ``rateLimit.<method>``: calls per second for one method, with capacity
  ``<method>().capacity`` (else ``capacity``, else the default above). The wait is bounded
  by the request's ``M_tmo`` (ms) when it has one, else the method's ``requestTimeout``.
* The switcher ``<conf-id>_rateLimit`` (registered on, as in the Go agent) turns it off.

Waiting never blocks the event loop: a call that must wait for a token reserves it and
goes on when it is due (``call_later``). Client side, as in the Go agent where every
provider endpoint gets its own filter, each provider has its own buckets; server side the
service has one set.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

from motanmesh.filters.base import ROLE_CLIENT, Call, Filter, FilterContext, Handler
from motanmesh.filters.chain import FilterError
from motanmesh.url import URL
from motanmesh.wire.frame import M_METHOD_DESC, M_TIMEOUT

__all__ = ["RateLimitFilter", "TokenBucket", "default_capacity", "go_duration"]

log = logging.getLogger("motanmesh.filters.ratelimit")

RATE_LIMIT: Final = "rateLimit"
METHOD_PREFIX: Final = "rateLimit."
CAPACITY: Final = "capacity"
TIMEOUT: Final = "requestTimeout"
DEFAULT_TIMEOUT_MS: Final = 1000
MIN_CAPACITY: Final = 1000
MAX_CAPACITY: Final = 5000
ERRCODE: Final = 400


def default_capacity(rate: float) -> int:
    """``2 * rate`` clamped to 1000..5000 (the Go agent's default)."""
    return int(min(MAX_CAPACITY, max(MIN_CAPACITY, rate * 2)))


def go_duration(ms: int) -> str:
    """A whole number of milliseconds as Go's ``time.Duration.String`` writes it."""
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest // 1000}.{rest % 1000:03d}".rstrip("0").rstrip(".")
    out = f"{hours}h" if hours else ""
    if hours or minutes:
        out += f"{minutes}m"
    return out + seconds + "s"


class TokenBucket:
    """A token bucket that lends tokens ahead: a call that finds none reserves the next one
    and learns how long to wait for it."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        self.rate = rate
        self.capacity = float(capacity)
        #: starts full, as the Go agent's buckets
        self.tokens = float(capacity)
        self.stamp = now

    def reserve(self, now: float, max_wait: float) -> float | None:
        """Take one token: the seconds to wait for it (0 = now), or ``None`` (nothing taken)
        when that would be longer than ``max_wait``."""
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        wait = (1.0 - self.tokens) / self.rate
        if wait > max_wait:
            return None
        self.tokens -= 1.0
        return wait


def _positive_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 else None


class _Buckets:
    """The buckets of one service (server side) or one provider (client side)."""

    __slots__ = ("methods", "service")

    def __init__(self, service: TokenBucket | None, methods: dict[str, TokenBucket]) -> None:
        self.service = service
        self.methods = methods


class RateLimitFilter(Filter):
    """Token buckets in front of a service and its methods."""

    name = "rateLimit"
    kind = "endpoint"
    index = 3

    def __init__(self, url: URL, context: FilterContext) -> None:
        super().__init__(url, context)
        self.rate: float | None = None
        self.capacity = 0
        raw = url.get(RATE_LIMIT)
        if raw:
            rate = _positive_float(raw)
            if rate is None:
                log.warning("[rateLimit] %s: rateLimit %r is not a positive number", url.path, raw)
            else:
                self.rate = rate
                self.capacity = _positive(url.get_int(CAPACITY, 0), default_capacity(rate))
        timeout = url.parameters.get(TIMEOUT, "")
        self.wait_ms = int(timeout) if _is_int(timeout) else DEFAULT_TIMEOUT_MS
        #: method → (rate, capacity)
        self.method_rates: dict[str, tuple[float, int]] = {}
        for key, value in url.parameters.items():
            if not key.startswith(METHOD_PREFIX):
                continue
            method = key[len(METHOD_PREFIX) :]
            rate = _positive_float(value)
            if not method or rate is None:
                log.warning("[rateLimit] %s: %s=%r ignored", url.path, key, value)
                continue
            capacity = _positive(
                url.get_method_int(method, "", CAPACITY, 0), default_capacity(rate)
            )
            self.method_rates[method] = (rate, capacity)
        if self.rate is None and not self.method_rates:
            log.warning("[rateLimit] %s: no service or method rate limit takes effect", url.path)
        self.switcher = f"{url.conf_id}_{RATE_LIMIT}"
        context.switchers.register(self.switcher, True)
        self._buckets: dict[str, _Buckets] = {}
        self._active = self.rate is not None or bool(self.method_rates)
        self.passed = 0
        self.delayed = 0
        self.rejected = 0

    def _new_buckets(self, now: float) -> _Buckets:
        service = TokenBucket(self.rate, self.capacity, now) if self.rate is not None else None
        methods = {m: TokenBucket(r, c, now) for m, (r, c) in self.method_rates.items()}
        return _Buckets(service, methods)

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        if not self._active or not self.context.switchers.is_open(self.switcher, True):
            proceed(call)
            return
        now = time.monotonic()
        key = call.peer if call.role == ROLE_CLIENT else ""
        buckets = self._buckets.get(key)
        if buckets is None:
            buckets = self._buckets[key] = self._new_buckets(now)
        wait = 0.0
        if buckets.service is not None:
            got = buckets.service.reserve(now, self.wait_ms / 1000)
            if got is None:
                self.rejected += 1
                call.fail(
                    ERRCODE, f"[rateLimit] wait time exceed timeout({go_duration(self.wait_ms)})"
                )
                return
            wait = got
        if buckets.methods:
            method = call.method
            bucket = buckets.methods.get(method)
            if bucket is not None:
                limit_ms = self._method_wait_ms(call, method)
                got = bucket.reserve(now, limit_ms / 1000)
                if got is None:
                    self.rejected += 1
                    call.fail(
                        ERRCODE,
                        f"[rateLimit] method {method} wait time exceed timeout"
                        f"({go_duration(limit_ms)})",
                    )
                    return
                wait = max(wait, got)
        if wait <= 0.0:
            self.passed += 1
            proceed(call)
            return
        self.delayed += 1
        asyncio.get_running_loop().call_later(wait, _go_on, call, proceed)

    def _method_wait_ms(self, call: Call, method: str) -> int:
        tmo = call.request.metadata.get(M_TIMEOUT)
        if tmo is not None and tmo != "":
            return int(tmo) if _is_int(tmo) else 0
        return _positive(
            self.url.get_method_int(
                method, call.request.metadata.get(M_METHOD_DESC, ""), TIMEOUT, 0
            ),
            DEFAULT_TIMEOUT_MS,
        )

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "switcher": self.switcher,
            "enabled": self.context.switchers.is_open(self.switcher, True),
            "rate": self.rate,
            "capacity": self.capacity,
            "waitMs": self.wait_ms,
            "methods": {m: {"rate": r, "capacity": c} for m, (r, c) in self.method_rates.items()},
            "passed": self.passed,
            "delayed": self.delayed,
            "rejected": self.rejected,
        }


def _go_on(call: Call, proceed: Handler) -> None:
    """Hand a call on once its token is due."""
    try:
        proceed(call)
    except Exception as e:
        if not call.done():
            call.complete(None, FilterError(f"filter rateLimit failed: {e}"))


def _positive(value: int, default: int) -> int:
    return value if value > 0 else default


def _is_int(text: str) -> bool:
    body = text[1:] if text[:1] in "+-" else text
    return body.isdigit()
