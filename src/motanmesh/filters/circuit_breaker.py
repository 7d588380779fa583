"""``circuitBreaker`` (endpoint, index 20) and ``clusterCircuitBreaker`` (cluster, index 20):
hystrix circuits with the Go agent's keys and defaults.

A circuit counts, over a rolling window of 10 one-second buckets, the calls it saw and the
errors among them (failures, timeouts, refusals). It opens when the window holds at least
``circuitBreaker.requestThreshold`` calls (default 20) and the error percentage (rounded)
reaches ``circuitBreaker.errorPercent`` (default 50). While open, calls are answered at once
with errcode 400 (service exception) ``hystrix: circuit open``; once
``circuitBreaker.sleepWindow`` ms (default 5000) have passed since it opened or since the
last probe, one call goes through as a probe: a success closes the circuit and clears its
counts, a failure keeps it open for another sleep window. More than
``circuitBreaker.maxConcurrent`` calls in flight (default 5000) are refused with
``hystrix: max concurrency``. ``circuitBreaker.bizException`` (default true) counts
business exceptions as failures; a call slower than ``requestTimeout`` (default 1000 ms)
counts as a timeout.

Circuits are shared agent-wide by identity (as hystrix keys them by URL identity): a
server-side service, a refer (``clusterCircuitBreaker``), or a provider of a refer
(``circuitBreaker`` on the client side, where the Go agent gives every provider endpoint
its own filter). ``context.services["circuitBreakers"]`` maps identities to
:class:`Circuit` objects (``state``, ``state_value``: 0 closed, 1 open, 2 half-open).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar, Final

from motanmesh.filters.base import (
    ERROR_BIZ,
    ROLE_CLIENT,
    Call,
    Filter,
    FilterContext,
    FilterKind,
    Handler,
    error_kind,
)
from motanmesh.url import URL
from motanmesh.wire.frame import M_GROUP, Frame

__all__ = [
    "CIRCUITS_SERVICE",
    "Circuit",
    "CircuitBreakerFilter",
    "CircuitConfig",
    "ClusterCircuitBreakerFilter",
]

log = logging.getLogger("motanmesh.filters.circuitbreaker")

CIRCUITS_SERVICE: Final = "circuitBreakers"
REQUEST_THRESHOLD: Final = "circuitBreaker.requestThreshold"
SLEEP_WINDOW: Final = "circuitBreaker.sleepWindow"
ERROR_PERCENT: Final = "circuitBreaker.errorPercent"
MAX_CONCURRENT: Final = "circuitBreaker.maxConcurrent"
BIZ_EXCEPTION: Final = "circuitBreaker.bizException"
TIMEOUT: Final = "requestTimeout"
WINDOW_SECONDS: Final = 10
ERRCODE: Final = 400
CIRCUIT_OPEN: Final = "hystrix: circuit open"
MAX_CONCURRENCY: Final = "hystrix: max concurrency"
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
_TRUE: Final = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "false", "FALSE", "False"})


def _config_value(url: URL, key: str, default: int) -> int:
    """A positive integer parameter (``errorPercent`` at most 100), else ``default``."""
    text = url.parameters.get(key, "")
    try:
        value = int(text)
    except ValueError:
        return default
    if value <= 0 or (key == ERROR_PERCENT and value > 100):
        return default
    return value


class CircuitConfig:
    """The hystrix settings of one circuit, read from a refer or service URL."""

    __slots__ = (
        "error_percent",
        "include_biz",
        "max_concurrent",
        "request_threshold",
        "sleep_window",
        "timeout",
    )

    def __init__(self, url: URL) -> None:
        self.request_threshold = _config_value(url, REQUEST_THRESHOLD, 20)
        self.sleep_window = _config_value(url, SLEEP_WINDOW, 5000) / 1000
        self.error_percent = _config_value(url, ERROR_PERCENT, 50)
        self.max_concurrent = _config_value(url, MAX_CONCURRENT, 5000)
        self.timeout = _config_value(url, TIMEOUT, 1000) / 1000
        biz = url.parameters.get(BIZ_EXCEPTION, "true")
        self.include_biz = biz not in _FALSE
        if biz not in _TRUE and biz not in _FALSE:
            log.warning("[circuitBreaker] %s=%r is not a boolean; using true", BIZ_EXCEPTION, biz)

    def to_info(self) -> dict[str, Any]:
        return {
            "requestThreshold": self.request_threshold,
            "sleepWindow": int(self.sleep_window * 1000),
            "errorPercent": self.error_percent,
            "maxConcurrent": self.max_concurrent,
            "timeout": int(self.timeout * 1000),
            "bizException": self.include_biz,
        }


class Circuit:
    """One hystrix circuit."""

    __slots__ = (
        "_buckets",
        "active",
        "clock",
        "config",
        "failures",
        "name",
        "open",
        "opened_or_tested",
        "opens",
        "probe",
        "rejects",
        "short_circuits",
        "successes",
        "timeouts",
    )

    def __init__(
        self, name: str, config: CircuitConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self.open = False
        #: when the circuit opened or last let a probe through
        self.opened_or_tested = 0.0
        #: the probe in flight (half-open), if any
        self.probe: Call | None = None
        self.active = 0
        #: second → [calls, errors], the last ``WINDOW_SECONDS`` + 1 seconds
        self._buckets: dict[int, list[int]] = {}
        # cumulative counts (for metrics)
        self.successes = 0
        self.failures = 0
        self.timeouts = 0
        self.short_circuits = 0
        self.rejects = 0
        self.opens = 0

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> str:
        if not self.open:
            return CLOSED
        return HALF_OPEN if self.probe is not None else OPEN

    @property
    def state_value(self) -> int:
        """0 closed, 1 open, 2 half-open (a gauge)."""
        return {CLOSED: 0, OPEN: 1, HALF_OPEN: 2}[self.state]

    def _window(self, now: float) -> tuple[int, int]:
        oldest = int(now) - WINDOW_SECONDS
        calls = errors = 0
        stale = []
        for second, (c, e) in self._buckets.items():
            if second >= oldest:
                calls += c
                errors += e
            else:
                stale.append(second)
        for second in stale:
            del self._buckets[second]
        return calls, errors

    def _record(self, now: float, error: bool) -> None:
        bucket = self._buckets.get(int(now))
        if bucket is None:
            bucket = self._buckets[int(now)] = [0, 0]
        bucket[0] += 1
        if error:
            bucket[1] += 1

    def error_percent(self, now: float | None = None) -> int:
        calls, errors = self._window(self.clock() if now is None else now)
        return int(errors / calls * 100 + 0.5) if calls else 0

    def is_open(self, now: float) -> bool:
        if self.open:
            return True
        calls, errors = self._window(now)
        if calls < self.config.request_threshold:
            return False
        if int(errors / calls * 100 + 0.5) >= self.config.error_percent:
            self.open = True
            self.opened_or_tested = now
            self.opens += 1
            log.warning("circuit %s opened (%d errors in %d calls)", self.name, errors, calls)
            return True
        return False

    # ------------------------------------------------------------------ calls

    def admit(self, call: Call) -> str | None:
        """``None`` when ``call`` may go on, else the error to answer it with."""
        now = self.clock()
        if self.is_open(now):
            if now > self.opened_or_tested + self.config.sleep_window:
                self.opened_or_tested = now
                self.probe = call
                log.info("circuit %s lets a probe through", self.name)
            else:
                self.short_circuits += 1
                self._record(now, True)
                return CIRCUIT_OPEN
        if self.active >= self.config.max_concurrent:
            self.rejects += 1
            self._record(now, True)
            return MAX_CONCURRENCY
        self.active += 1
        return None

    def done(self, call: Call, response: Frame | None, exc: BaseException | None) -> None:
        """The end of an admitted call."""
        self.active -= 1
        now = self.clock()
        kind = error_kind(response, exc)
        failed = kind is not None and (kind != ERROR_BIZ or self.config.include_biz)
        slow = time.perf_counter() - call.start > self.config.timeout
        if failed:
            self.failures += 1
        elif slow:
            self.timeouts += 1
        else:
            self.successes += 1
            if self.open:
                self.open = False
                self._buckets.clear()
                log.warning("circuit %s closed", self.name)
        if call is self.probe:
            self.probe = None
        self._record(now, failed or slow)
        if failed or slow:
            self.is_open(now)  # its state shows at once (hystrix waits for the next call)

    def to_info(self) -> dict[str, Any]:
        now = self.clock()
        calls, errors = self._window(now)
        return {
            "state": self.state,
            "windowRequests": calls,
            "windowErrors": errors,
            "errorPercent": int(errors / calls * 100 + 0.5) if calls else 0,
            "active": self.active,
            "successes": self.successes,
            "failures": self.failures,
            "timeouts": self.timeouts,
            "shortCircuits": self.short_circuits,
            "rejects": self.rejects,
            "opens": self.opens,
        }


def circuits(context: FilterContext) -> dict[str, Circuit]:
    """The agent's circuits by identity."""
    found: dict[str, Circuit] = context.get_service(CIRCUITS_SERVICE, dict)
    return found


class CircuitBreakerFilter(Filter):
    """A hystrix circuit around each provider (client side) or the service (server side)."""

    name = "circuitBreaker"
    kind: ClassVar[FilterKind] = "endpoint"
    index = 20

    def __init__(self, url: URL, context: FilterContext) -> None:
        super().__init__(url, context)
        self.config = CircuitConfig(url)
        self._all = circuits(context)
        #: the circuits this filter used, by key (one, or one per provider)
        self.circuits: dict[str, Circuit] = {}
        log.info("[%s] circuit for %s: %s", self.name, url.identity, self.config.to_info())

    def _key(self, call: Call) -> str:
        if call.role != ROLE_CLIENT:
            return self.url.identity
        url = self.url
        group = call.changes.get(M_GROUP) or url.group
        return f"{url.protocol}://{call.peer}/{url.path}?group={group}"

    def _circuit(self, key: str) -> Circuit:
        circuit = self._all.get(key)
        if circuit is None:
            circuit = self._all[key] = Circuit(key, self.config)
        self.circuits[key] = circuit
        return circuit

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        key = self._key(call)
        circuit = self.circuits.get(key) or self._circuit(key)
        refused = circuit.admit(call)
        if refused is not None:
            call.fail(ERRCODE, refused)
            return
        call.on_complete(circuit.done)
        proceed(call)

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "config": self.config.to_info(),
            "circuits": {key: c.to_info() for key, c in self.circuits.items()},
        }


class ClusterCircuitBreakerFilter(CircuitBreakerFilter):
    """A hystrix circuit around a refer's whole HA call."""

    name = "clusterCircuitBreaker"
    kind: ClassVar[FilterKind] = "cluster"
    index = 20

    def _key(self, call: Call) -> str:
        return "cluster:" + self.url.identity
