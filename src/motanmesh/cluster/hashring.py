"""Consistent hashing with bounded loads, for the ``consistentHashKey`` load balancer.

The key space is cut into a fixed number of *partitions*; a key belongs to partition
``hash(key) % partitions``. Every member (``host:port``) puts ``replicas`` virtual nodes on a
64-bit ring. Each partition is owned by the first member clockwise from the partition's own
hash that still has room: no member owns more than ``ceil(partitions / members * load)``
partitions. Adding or removing a member therefore moves only the partitions that member
gains or loses, plus the few pushed along by the load bound.

Ring positions are BLAKE2b cut to 64 bits; keys map to partitions by CRC-32 (cheap on the
request path, and as even as a random spread over a few hundred partitions). Both are stable
across processes and restarts. The ring is not the one another implementation (motan-go uses
xxhash) would build for the same members: a key may land on a different node than it would
behind a Go agent, but always on the same node behind any motanmesh agent with the same
member list.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from hashlib import blake2b
from typing import Final
from zlib import crc32

__all__ = ["MIN_LOAD", "HashRing", "hash64"]

MIN_LOAD: Final = 1.1


def hash64(data: bytes) -> int:
    """A stable 64-bit hash of ``data``."""
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


class HashRing:
    """An immutable partition → member table built from ``members`` (distinct strings)."""

    __slots__ = (
        "_owner",
        "_point_owner",
        "_points",
        "_start",
        "load",
        "loads",
        "max_load",
        "members",
        "partitions",
        "replicas",
    )

    def __init__(
        self,
        members: Sequence[str],
        *,
        partitions: int,
        replicas: int,
        load: float = MIN_LOAD,
    ) -> None:
        if not members:
            raise ValueError("a hash ring needs at least one member")
        if len(set(members)) != len(members):
            raise ValueError("hash ring members must be distinct")
        self.members = tuple(members)
        self.partitions = max(1, partitions)
        self.replicas = max(1, replicas)
        self.load = max(load, MIN_LOAD)
        n = len(self.members)
        points = sorted(
            (hash64(f"{member}#{r}".encode()), index)
            for index, member in enumerate(self.members)
            for r in range(self.replicas)
        )
        self._points = [h for h, _ in points]
        self._point_owner = [index for _, index in points]
        # n * max_load >= partitions * load > partitions: every partition finds a member.
        self.max_load = math.ceil(self.partitions / n * self.load)
        loads = [0] * n
        owner = [0] * self.partitions
        start = [0] * self.partitions
        npoints = len(points)
        point_owner = self._point_owner
        for part in range(self.partitions):
            pos = bisect_left(self._points, hash64(b"partition#%d" % part)) % npoints
            start[part] = pos
            for k in range(npoints):
                member = point_owner[(pos + k) % npoints]
                if loads[member] < self.max_load:
                    loads[member] += 1
                    owner[part] = member
                    break
        self._owner = owner
        self._start = start
        self.loads = loads

    def partition(self, key: str) -> int:
        return crc32(key.encode("utf-8", "surrogateescape")) % self.partitions

    def locate(self, key: str) -> int:
        """The index (in ``members``) of the member owning ``key``."""
        return self._owner[self.partition(key)]

    def closest(self, key: str, n: int) -> list[int]:
        """Up to ``n`` distinct member indexes for ``key``: its owner, then the next members
        clockwise on the ring."""
        part = self.partition(key)
        first = self._owner[part]
        out = [first]
        if n <= 1:
            return out
        want = min(n, len(self.members))
        point_owner = self._point_owner
        npoints = len(point_owner)
        pos = self._start[part]
        for k in range(npoints):
            member = point_owner[(pos + k) % npoints]
            if member not in out:
                out.append(member)
                if len(out) >= want:
                    break
        return out
