"""``http-client``: the domains whose requests may travel as HTTP-over-Motan.

Config, one entry per domain (the key names the entry; ``domain`` is the HTTP host)::

    http-client:
      api.example.com:
        domain: api.example.com
        registry: zk
        group: api-http          # where the upstream services are registered
        preload: com.example.Users,com.example.Orders
        requestTimeout: 2000
        serialization: simple

An HTTP request for the domain whose path an ``http-locations`` entry maps to an upstream
service is sent to that service (``path`` = the upstream) through a cluster of its own, built
from this entry the first time it is needed (``preload`` builds them at start). A cluster
that finds no provider answers "no endpoints" and the request is proxied as plain HTTP, as
the Go agent does when the registry group does not hold the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from motanmesh.cluster.cluster import Cluster
from motanmesh.httpmotan.locations import LocationMatcher
from motanmesh.url import URL
from motanmesh.wire.serialization import serialization_id

__all__ = ["ClusterFactory", "HttpDomain", "HttpDomains", "domain_refer"]

log = logging.getLogger("motanmesh.ingress")

#: builds and starts the cluster of a refer (the agent's registries, filters, switchers)
ClusterFactory = Callable[[URL], Awaitable[Cluster]]
_URL_FIELDS: Final = frozenset({"protocol", "host", "port", "path", "group"})
READY_POLL: Final = 0.01


def domain_refer(key: str, entry: Mapping[str, Any]) -> URL:
    """The refer template of one ``http-client`` entry (``path`` is set per upstream)."""
    params = {
        str(k): ("true" if v is True else "false" if v is False else str(v))
        for k, v in entry.items()
        if k not in _URL_FIELDS and v is not None and not isinstance(v, Mapping | list)
    }
    params.setdefault("domain", key)
    params.setdefault("conf-id", key)
    port = entry.get("port") or 0
    return URL(
        str(entry.get("protocol") or "motan2"),
        str(entry.get("host") or ""),
        int(port),
        "",
        str(entry.get("group") or ""),
        params,
    )


class HttpDomain:
    """One ``http-client`` entry: its locations and its clusters by upstream service."""

    def __init__(self, refer: URL, matcher: LocationMatcher, factory: ClusterFactory) -> None:
        self.refer = refer
        self.name = refer.get("domain")
        self.matcher = matcher
        self.application = refer.application
        self.preload = refer.get_list("preload")
        #: the serialization of the HTTP-over-Motan requests (``serialization``, default simple)
        self.serialization = serialization_id(refer.get("serialization", "simple"))
        self._factory = factory
        self._clusters: dict[str, asyncio.Future[Cluster]] = {}
        self.connect_wait = refer.get_int("connectTimeout", 1000) / 1000

    def upstream(self, path: str) -> str:
        return self.matcher.upstream(path)

    @property
    def clusters(self) -> dict[str, Cluster]:
        return {
            name: fut.result()
            for name, fut in self._clusters.items()
            if fut.done() and not fut.cancelled() and fut.exception() is None
        }

    async def cluster(self, upstream: str) -> Cluster:
        """The cluster of ``upstream``, built (and given a moment to connect) on first use."""
        fut = self._clusters.get(upstream)
        if fut is not None and fut.done() and not fut.cancelled() and fut.exception() is None:
            return fut.result()
        if fut is None:
            fut = self._clusters[upstream] = asyncio.ensure_future(self._build(upstream))
        try:
            return await asyncio.shield(fut)
        except Exception:
            if self._clusters.get(upstream) is fut:  # the next request tries again
                del self._clusters[upstream]
            raise

    async def _build(self, upstream: str) -> Cluster:
        cluster = await self._factory(self.refer.copy(path=upstream))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_wait
        while not any(ep.available for ep in cluster.endpoints.values()):
            if loop.time() > deadline:
                break
            await asyncio.sleep(READY_POLL)
        return cluster

    async def close(self) -> None:
        futures = list(self._clusters.values())
        self._clusters.clear()
        for fut in futures:
            if not fut.done():
                fut.cancel()
            with contextlib.suppress(BaseException):
                await (await fut).close()


class HttpDomains:
    """Every ``http-client`` domain, by HTTP host."""

    def __init__(
        self,
        http_client: Mapping[str, Any],
        http_locations: Mapping[str, Any],
        factory: ClusterFactory,
    ) -> None:
        self.domains: dict[str, HttpDomain] = {}
        for key, entry in (http_client or {}).items():
            if not isinstance(entry, Mapping):
                log.warning("http-client.%s: expected a mapping; left out", key)
                continue
            try:
                refer = domain_refer(str(key), entry)
                name = refer.get("domain")
                matcher = LocationMatcher.from_config(http_locations, name)
                self.domains[name] = HttpDomain(refer, matcher, factory)
            except Exception as e:  # a bad entry must not stop the other domains
                log.warning("http-client.%s left out: %s", key, e)

    def get(self, host: str) -> HttpDomain | None:
        return self.domains.get(host)

    async def start(self) -> None:
        """Build the clusters of every ``preload`` service."""
        for domain in self.domains.values():
            for service in domain.preload:
                try:
                    await domain.cluster(service)
                except Exception as e:
                    log.error("http-client %s: preload of %s failed: %s", domain.name, service, e)

    async def close(self) -> None:
        for domain in self.domains.values():
            await domain.close()

    def all_clusters(self) -> list[Cluster]:
        return [c for d in self.domains.values() for c in d.clusters.values()]

    def runtime_info(self) -> dict[str, Any]:
        return {
            name: {
                "url": d.refer.to_ext_info(),
                "locations": len(d.matcher.locations),
                "clusters": sorted(d.clusters),
            }
            for name, d in self.domains.items()
        }
