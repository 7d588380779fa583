"""Load balancers: which endpoint of a cluster serves the next request.

Every balancer is refreshed with the cluster's endpoint list (:meth:`LoadBalancer.on_refresh`)
and answers :meth:`~LoadBalancer.select` (one endpoint or ``None``) and
:meth:`~LoadBalancer.select_array` (up to ``n`` distinct available endpoints, the first being
the one ``select`` would pick, for retries and backup requests). Unavailable endpoints are
never returned.

Names (the refer's ``loadbalance`` parameter):

``random`` (default)
    A random index; if that endpoint is unavailable, the first available one scanning from a
    second random start.
``roundrobin``
    A counter over the list; an unavailable pick falls back to the random scan.
``wrr``
    Static per-endpoint weights from the provider URL's ``META_WEIGHT`` (default 10, clamped
    to 1..500). The weights are divided by their GCD and laid out as a shuffled ring of
    endpoint slots walked by a counter, so one turn of the ring gives each endpoint exactly
    its share. A ring that would exceed :data:`WRR_RING_LIMIT` slots is scaled down
    proportionally (every endpoint keeps at least one slot).
``consistentHashKey``
    Bounded-load consistent hashing on the request attachment ``consistentHashKey``; see
    :mod:`motanmesh.cluster.hashring`. A missing key or an unavailable owner falls back to
    ``random``.
``leastRequest``
    Power of two choices: two random available endpoints, the one with the lower
    ``(in_flight + 1) * latency EWMA`` wins. Latencies come from :meth:`LoadBalancer.record`,
    which the HA strategy calls after every attempt.

:class:`motanmesh.cluster.group_weights.GroupWeightedLoadBalancer` wraps any of them with
the group weights of a traffic-control command.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar, Final

from motanmesh.cluster.errors import UnknownExtensionError
from motanmesh.cluster.stats import Ewma
from motanmesh.cluster.types import EndpointLike
from motanmesh.url import URL
from motanmesh.wire.frame import Frame

if TYPE_CHECKING:
    from motanmesh.cluster.hashring import HashRing

__all__ = [
    "CONSISTENT_HASH_KEY",
    "WRR_RING_LIMIT",
    "ConsistentHashLoadBalancer",
    "LeastRequestLoadBalancer",
    "LoadBalancer",
    "LoadBalancerFactory",
    "RandomLoadBalancer",
    "RoundRobinLoadBalancer",
    "WeightedRoundRobinLoadBalancer",
    "create_load_balancer",
    "load_balancer_names",
    "register_load_balancer",
]

CONSISTENT_HASH_KEY: Final = "consistentHashKey"
WRR_RING_LIMIT: Final = 8192
WEIGHT_PARAM: Final = "META_WEIGHT"
DEFAULT_ENDPOINT_WEIGHT: Final = 10
MAX_ENDPOINT_WEIGHT: Final = 500


class LoadBalancer(ABC):
    """Base of all load balancers. One instance serves one cluster (or one group of it)."""

    name: ClassVar[str] = ""
    #: whether :meth:`record` uses what it is given (the HA skips timing otherwise)
    records_latency: bool = False

    def __init__(self, url: URL | None = None, rng: random.Random | None = None) -> None:
        self.url = url
        self._rng = rng if rng is not None else random.Random()
        self._random = self._rng.random
        self._endpoints: list[EndpointLike] = []

    @property
    def endpoints(self) -> Sequence[EndpointLike]:
        return self._endpoints

    def on_refresh(self, endpoints: Sequence[EndpointLike]) -> None:
        """Replace the endpoint list."""
        self._endpoints = list(endpoints)
        self._rebuild()

    def _rebuild(self) -> None:  # noqa: B027 - optional hook
        """Recompute derived state after :meth:`on_refresh`."""

    @abstractmethod
    def select(self, frame: Frame) -> EndpointLike | None:
        """An available endpoint for ``frame``, or ``None``."""

    def select_array(self, frame: Frame, n: int = 3) -> list[EndpointLike]:
        """Up to ``n`` distinct available endpoints, ``select``'s choice first."""
        first = self.select(frame)
        if first is None:
            return []
        return self._collect(first, n)

    def record(self, endpoint: EndpointLike, seconds: float, ok: bool) -> None:  # noqa: B027
        """Feedback from the HA: one attempt on ``endpoint`` took ``seconds``."""

    # ------------------------------------------------------------------ shared helpers

    def _pick_random(self) -> EndpointLike | None:
        """A random endpoint; if unavailable, :meth:`_scan`."""
        eps = self._endpoints
        n = len(eps)
        if not n:
            return None
        ep = eps[int(self._random() * n)]
        if ep.available:
            return ep
        return self._scan()

    def _scan(self) -> EndpointLike | None:
        """The first available endpoint from a random start, or ``None``."""
        eps = self._endpoints
        n = len(eps)
        if not n:
            return None
        start = int(self._random() * n)
        for i in range(start, n):
            ep = eps[i]
            if ep.available:
                return ep
        for i in range(start):
            ep = eps[i]
            if ep.available:
                return ep
        return None

    def _collect(self, first: EndpointLike, n: int) -> list[EndpointLike]:
        """``first`` plus available endpoints following it in the list, ``n`` at most."""
        out = [first]
        eps = self._endpoints
        size = len(eps)
        if n <= 1 or size <= 1:
            return out
        try:
            start = eps.index(first)
        except ValueError:
            start = int(self._random() * size)
        for k in range(1, size + 1):
            ep = eps[(start + k) % size]
            if ep is not first and ep.available:
                out.append(ep)
                if len(out) >= n:
                    break
        return out


class RandomLoadBalancer(LoadBalancer):
    name = "random"

    def select(self, frame: Frame) -> EndpointLike | None:
        return self._pick_random()


class RoundRobinLoadBalancer(LoadBalancer):
    name = "roundrobin"

    def __init__(self, url: URL | None = None, rng: random.Random | None = None) -> None:
        super().__init__(url, rng)
        self._counter = 0

    def select(self, frame: Frame) -> EndpointLike | None:
        eps = self._endpoints
        n = len(eps)
        if not n:
            return None
        i = self._counter
        self._counter = i + 1 if i + 1 < n else 0
        ep = eps[i % n]
        if ep.available:
            return ep
        return self._scan()


def _endpoint_weight(ep: EndpointLike) -> int:
    weight = ep.url.get_int(WEIGHT_PARAM, DEFAULT_ENDPOINT_WEIGHT)
    return min(max(weight, 1), MAX_ENDPOINT_WEIGHT)


def _ring_shares(weights: Sequence[int], limit: int) -> list[int]:
    """Weights divided by their GCD; scaled to at most ``limit`` in total (each kept >= 1)."""
    g = math.gcd(*weights)
    shares = [w // g for w in weights]
    total = sum(shares)
    if total > limit:
        shares = [max(1, w * limit // total) for w in shares]
    return shares


class WeightedRoundRobinLoadBalancer(LoadBalancer):
    name = "wrr"

    def __init__(self, url: URL | None = None, rng: random.Random | None = None) -> None:
        super().__init__(url, rng)
        self._ring: list[EndpointLike] = []
        self._counter = 0

    def _rebuild(self) -> None:
        eps = self._endpoints
        if not eps:
            self._ring = []
            return
        shares = _ring_shares([_endpoint_weight(ep) for ep in eps], WRR_RING_LIMIT)
        ring = [ep for ep, share in zip(eps, shares, strict=True) for _ in range(share)]
        self._rng.shuffle(ring)
        self._ring = ring
        self._counter = 0

    @property
    def ring(self) -> Sequence[EndpointLike]:
        """One turn of the weighted ring."""
        return self._ring

    def select(self, frame: Frame) -> EndpointLike | None:
        ring = self._ring
        n = len(ring)
        if not n:
            return None
        i = self._counter
        self._counter = i + 1 if i + 1 < n else 0
        ep = ring[i]
        if ep.available:
            return ep
        return self._scan()


class ConsistentHashLoadBalancer(LoadBalancer):
    """Keyed by the ``consistentHashKey`` request attachment over ``host:port`` members.

    URL parameters: ``consistentHashKey.partSize`` (partitions; default ``5 * n + 271``, at
    least ``2 * n``), ``consistentHashKey.replica`` (virtual nodes per member: 20 below 100
    endpoints, else 10), ``consistentHashKey.load`` (bound on a member's partitions relative
    to the average; default 1.25, at least 1.1).

    With the default partition count, a refresh keeps the previous count while it stays
    within a factor of two of the default for the new size: the key → partition map then
    does not change, and a member joining or leaving moves only about ``1/n`` of the keys.
    """

    name = "consistentHashKey"
    DEFAULT_LOAD: ClassVar[float] = 1.25

    def __init__(self, url: URL | None = None, rng: random.Random | None = None) -> None:
        super().__init__(url, rng)
        self._ring: HashRing | None = None
        self._members: list[str] = []
        self._member_eps: list[EndpointLike] = []

    @property
    def ring(self) -> HashRing | None:
        return self._ring

    def _param_int(self, key: str) -> int:
        return self.url.get_int(key, 0) if self.url is not None else 0

    def _partitions(self, n: int) -> int:
        configured = self._param_int("consistentHashKey.partSize")
        if configured > 0:
            return max(configured, 2 * n)
        default = 5 * n + 271
        last = self._ring.partitions if self._ring is not None else 0
        if default <= 2 * last and last <= 2 * default and last >= 2 * n:
            return last
        return default

    def _rebuild(self) -> None:
        by_address: dict[str, EndpointLike] = {}
        for ep in self._endpoints:
            by_address.setdefault(ep.url.address, ep)
        members = sorted(by_address)
        self._member_eps = [by_address[m] for m in members]
        if members == self._members and self._ring is not None:
            return
        self._members = members
        if not members:
            self._ring = None
            return
        n = len(members)
        replica = self._param_int("consistentHashKey.replica")
        if replica <= 0:
            replica = 20 if n < 100 else 10
        load = self.DEFAULT_LOAD
        if self.url is not None:
            load = self.url.get_float("consistentHashKey.load", load)
        from motanmesh.cluster.hashring import HashRing  # noqa: PLC0415 - only when used

        self._ring = HashRing(members, partitions=self._partitions(n), replicas=replica, load=load)

    def select(self, frame: Frame) -> EndpointLike | None:
        key = frame.metadata.get(CONSISTENT_HASH_KEY)
        ring = self._ring
        if key and ring is not None:
            ep = self._member_eps[ring.locate(key)]
            if ep.available:
                return ep
        return self._pick_random()

    def select_array(self, frame: Frame, n: int = 3) -> list[EndpointLike]:
        key = frame.metadata.get(CONSISTENT_HASH_KEY)
        ring = self._ring
        if not key or ring is None:
            return super().select_array(frame, n)
        eps = self._member_eps
        out: list[EndpointLike] = []
        for idx in ring.closest(key, len(eps)):
            ep = eps[idx]
            if ep.available:
                out.append(ep)
                if len(out) >= n:
                    break
        return out


class LeastRequestLoadBalancer(LoadBalancer):
    """Power of two choices on ``(in_flight + 1) * latency``.

    Each endpoint's latency is an EWMA of the attempts :meth:`record` reports. A failed
    attempt counts as ``FAILURE_PENALTY`` times the slower of its own duration and the
    cluster-wide average, so a failing node is avoided until it answers well again. An
    endpoint without samples is costed at the cluster-wide average.
    """

    name = "leastRequest"
    records_latency = True
    FAILURE_PENALTY: ClassVar[float] = 5.0
    #: the cluster-wide average before any sample (seconds); only its ratio to others matters
    INITIAL_LATENCY: ClassVar[float] = 0.001

    def __init__(
        self, url: URL | None = None, rng: random.Random | None = None, *, alpha: float = 0.3
    ) -> None:
        super().__init__(url, rng)
        self._alpha = alpha
        self._latency: dict[int, Ewma] = {}
        self._overall = Ewma(alpha, self.INITIAL_LATENCY)

    def _rebuild(self) -> None:
        alive = {id(ep) for ep in self._endpoints}
        self._latency = {k: v for k, v in self._latency.items() if k in alive}

    def latency(self, endpoint: EndpointLike) -> float:
        """The latency estimate used for ``endpoint`` (seconds)."""
        stat = self._latency.get(id(endpoint))
        return stat.value if stat is not None else self._overall.value

    def _cost(self, ep: EndpointLike) -> float:
        return (ep.in_flight + 1) * self.latency(ep)

    def select(self, frame: Frame) -> EndpointLike | None:
        eps = self._endpoints
        n = len(eps)
        if n <= 1:
            if n and eps[0].available:
                return eps[0]
            return None
        rnd = self._random
        i = int(rnd() * n)
        j = int(rnd() * (n - 1))
        if j >= i:
            j += 1
        a = eps[i]
        b = eps[j]
        if a.available:
            if b.available:
                return a if self._cost(a) <= self._cost(b) else b
            return a
        if b.available:
            return b
        return self._scan()

    def record(self, endpoint: EndpointLike, seconds: float, ok: bool) -> None:
        key = id(endpoint)
        stat = self._latency.get(key)
        if stat is None:
            stat = self._latency[key] = Ewma(self._alpha)
        if ok:
            stat.update(seconds)
            self._overall.update(seconds)
        else:
            stat.update(max(seconds, self._overall.value) * self.FAILURE_PENALTY)


# --------------------------------------------------------------------------- registry

LoadBalancerFactory = Callable[[URL, random.Random | None], LoadBalancer]

_LOAD_BALANCERS: dict[str, LoadBalancerFactory] = {
    cls.name: cls
    for cls in (
        RandomLoadBalancer,
        RoundRobinLoadBalancer,
        WeightedRoundRobinLoadBalancer,
        ConsistentHashLoadBalancer,
        LeastRequestLoadBalancer,
    )
}


def register_load_balancer(name: str, factory: LoadBalancerFactory) -> None:
    """Make ``loadbalance=<name>`` create balancers with ``factory(url, rng)``."""
    _LOAD_BALANCERS[name] = factory


def load_balancer_names() -> list[str]:
    return sorted(_LOAD_BALANCERS)


def create_load_balancer(url: URL, rng: random.Random | None = None) -> LoadBalancer:
    """The balancer named by ``url``'s ``loadbalance`` parameter (default ``random``).

    Raises :class:`~motanmesh.cluster.errors.UnknownExtensionError` (a ``ValueError``) for an
    unknown name.
    """
    name = url.loadbalance
    factory = _LOAD_BALANCERS.get(name)
    if factory is None:
        raise UnknownExtensionError("load balancer", name, list(_LOAD_BALANCERS))
    return factory(url, rng)
