"""Group weights: splitting a cluster's traffic between provider groups.

A traffic-control command such as ``mergeGroups: ["g1:8", "g2:2"]`` reaches the cluster as
the weight string ``"g1:8,g2:2"``; :class:`GroupWeightedLoadBalancer` turns it into a ring of
group slots in front of one inner load balancer per group.
"""

from __future__ import annotations

import math
import random
from typing import Final

from motanmesh.cluster.lb import LoadBalancer, LoadBalancerFactory, create_load_balancer
from motanmesh.cluster.types import EndpointLike
from motanmesh.url import URL
from motanmesh.wire.frame import Frame

__all__ = ["MAX_GROUP_WEIGHT", "GroupWeightedLoadBalancer", "parse_group_weights"]

MAX_GROUP_WEIGHT: Final = 100


def parse_group_weights(text: str) -> dict[str, int] | None:
    """``"g1:8,g2:2"`` → ``{"g1": 8, "g2": 2}``; ``None`` when no entry carries a weight.

    Weights are clamped to 1..100; an entry without a weight, or with one that is not an
    integer, weighs 1 (when any other entry has a weight).
    """
    entries = [e.strip() for e in text.split(",")]
    entries = [e for e in entries if e]
    if not any(":" in e for e in entries):
        return None
    weights: dict[str, int] = {}
    for entry in entries:
        group, sep, raw = entry.rpartition(":")
        if not sep:
            group, raw = entry, ""
        group = group.strip()
        if not group:
            continue
        raw = raw.strip()
        try:
            weight = int(raw)
        except ValueError:
            weight = 1
        weights[group] = min(max(weight, 1), MAX_GROUP_WEIGHT)
    return weights or None


class GroupWeightedLoadBalancer(LoadBalancer):
    """Splits traffic between provider groups by the weights of a traffic-control command.

    :meth:`set_weight` takes the command's merge groups joined by commas (``"g1:8,g2:2"``).
    Without weights (``""``, or mix mode: no entry has ``:weight``) one inner balancer serves
    every endpoint. Otherwise endpoints are grouped by ``endpoint.url.group``, one inner
    balancer per weighted group, and a shuffled ring of group slots (weights divided by their
    GCD: 8:2 gives 4 slots and 1) is walked by a counter, one slot per request. A group that
    has endpoints but no weight gets no slot. If the slot's group has no available endpoint,
    the other weighted groups are tried in turn. If no group with endpoints is weighted, one
    inner balancer serves every endpoint.

    Inner balancers are created by ``factory`` from the refer URL and kept across refreshes,
    so their state (counters, latency estimates) survives.
    """

    name = "groupWeighted"

    def __init__(
        self,
        url: URL,
        rng: random.Random | None = None,
        *,
        factory: LoadBalancerFactory = create_load_balancer,
    ) -> None:
        super().__init__(url, rng)
        self._url = url
        self._factory = factory
        self._weights_text = ""
        self._weights: dict[str, int] | None = None
        self._all = self._new_inner()
        self._single: LoadBalancer | None = self._all
        self.records_latency = self._all.records_latency
        self._groups: dict[str, LoadBalancer] = {}
        self._ring: list[LoadBalancer] = []
        self._ring_groups: list[str] = []
        self._counter = 0

    def _new_inner(self) -> LoadBalancer:
        return self._factory(self._url, random.Random(self._rng.getrandbits(64)))

    @property
    def weights(self) -> dict[str, int] | None:
        """The parsed group weights in force, ``None`` when not weighting."""
        return dict(self._weights) if self._weights is not None else None

    @property
    def ring(self) -> list[str]:
        """One turn of the group ring (empty when not weighting)."""
        return list(self._ring_groups)

    def set_weight(self, weights: str) -> None:
        """Apply a group weight string; ``""`` turns weighting off."""
        if weights == self._weights_text:
            return
        self._weights_text = weights
        self._weights = parse_group_weights(weights)
        self._rebuild()

    def _use_single(self) -> None:
        self._single = self._all
        self._all.on_refresh(self._endpoints)
        self._groups = {}
        self._ring = []
        self._ring_groups = []

    def _rebuild(self) -> None:
        weights = self._weights
        if weights is None:
            self._use_single()
            return
        by_group: dict[str, list[EndpointLike]] = {}
        for ep in self._endpoints:
            by_group.setdefault(ep.url.group, []).append(ep)
        slots = {g: weights[g] for g in by_group if weights.get(g, 0) > 0}
        if not slots:
            self._use_single()
            return
        old = self._groups
        groups: dict[str, LoadBalancer] = {}
        for group in slots:
            inner = old.get(group)
            if inner is None:
                inner = self._new_inner()
            inner.on_refresh(by_group[group])
            groups[group] = inner
        g = math.gcd(*slots.values())
        ring = [group for group, weight in slots.items() for _ in range(weight // g)]
        self._rng.shuffle(ring)
        self._groups = groups
        self._ring_groups = ring
        self._ring = [groups[group] for group in ring]
        self._single = None
        self._all.on_refresh(())
        self._counter = 0

    def select(self, frame: Frame) -> EndpointLike | None:
        single = self._single
        if single is not None:
            return single.select(frame)
        inner = self._next_group()
        ep = inner.select(frame)
        if ep is None:
            for other in self._groups.values():
                if other is not inner:
                    ep = other.select(frame)
                    if ep is not None:
                        break
        return ep

    def select_array(self, frame: Frame, n: int = 3) -> list[EndpointLike]:
        single = self._single
        if single is not None:
            return single.select_array(frame, n)
        inner = self._next_group()
        out = inner.select_array(frame, n)
        if not out:
            for other in self._groups.values():
                if other is not inner:
                    out = other.select_array(frame, n)
                    if out:
                        break
        return out

    def _next_group(self) -> LoadBalancer:
        ring = self._ring
        i = self._counter
        self._counter = i + 1 if i + 1 < len(ring) else 0
        return ring[i]

    def record(self, endpoint: EndpointLike, seconds: float, ok: bool) -> None:
        single = self._single
        inner = single if single is not None else self._groups.get(endpoint.url.group)
        if inner is not None:
            inner.record(endpoint, seconds, ok)
