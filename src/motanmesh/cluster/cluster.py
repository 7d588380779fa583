"""A refer's live view: provider endpoints that follow the registries, an HA strategy and a
load balancer in front of them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any, Final

from motanmesh.cluster.errors import error_response
from motanmesh.cluster.group_weights import GroupWeightedLoadBalancer
from motanmesh.cluster.ha import FailoverHa, HaStrategy, create_ha
from motanmesh.registry.base import Registry
from motanmesh.transport.endpoint import Endpoint
from motanmesh.url import URL
from motanmesh.wire.frame import ERRTYPE_SERVICE, M_GROUP, Frame

log = logging.getLogger("motanmesh.cluster")

#: removed endpoints are closed this long after they left the list (in-flight calls finish)
ENDPOINT_CLOSE_DELAY: Final = 2.0
DEGRADE_MESSAGE: Final = "cluster not available, maybe caused by degrade"


class ProviderEndpoint:
    """A transport endpoint bound to its provider URL.

    Every request it sends carries ``M_g`` = the provider's group, so the remote server agent
    finds ``group_path`` whichever group the caller asked for.
    """

    __slots__ = ("_group", "endpoint", "url")

    def __init__(self, url: URL, endpoint: Endpoint) -> None:
        self.url = url
        self.endpoint = endpoint
        self._group = {M_GROUP: url.group} if url.group else {}

    @property
    def available(self) -> bool:
        return self.endpoint.available

    @property
    def in_flight(self) -> int:
        return self.endpoint.in_flight

    def request(
        self, frame: Frame, changes: dict[str, str] | None = None, timeout: float | None = None
    ) -> asyncio.Future[Frame]:
        if changes:
            merged = dict(changes)
            merged.update(self._group)
            return self.endpoint.request(frame, merged, timeout)
        return self.endpoint.request(frame, self._group, timeout)


def endpoint_for(refer: URL, provider: URL) -> Endpoint:
    """A transport endpoint configured from the refer's parameters (Go agent defaults)."""
    timeout = refer.request_timeout_ms / 1000
    min_tmo = refer.get_int("minRequestTimeout", 0)
    max_tmo = refer.get_int("maxRequestTimeout", 0)
    return Endpoint(
        provider.address,
        connections=max(1, refer.get_int("clientConnection", 3)),
        request_timeout=timeout,
        min_request_timeout=min_tmo / 1000 if min_tmo else None,
        max_request_timeout=max_tmo / 1000 if max_tmo else None,
        connect_timeout=refer.get_int("connectTimeout", 1000) / 1000,
        connect_retry_interval=refer.get_int("connectRetryInterval", 5000) / 1000,
        error_count_threshold=refer.get_int("errorCountThreshold", 10),
        keepalive_interval=refer.get_int("keepaliveInterval", 1000) / 1000,
        max_content_length=refer.get_int("maxContentLength", 10 * 1024 * 1024),
        proxy=True,
    )


EndpointFactory = Callable[[URL, URL], Endpoint]


class Cluster:
    """One refer: subscribes its registries, keeps endpoints, and serves calls."""

    def __init__(
        self,
        refer: URL,
        registries: Sequence[Registry],
        *,
        endpoint_factory: EndpointFactory = endpoint_for,
        rng: random.Random | None = None,
    ) -> None:
        self.refer = refer
        self.registries = list(registries)
        self._endpoint_factory = endpoint_factory
        self._rng = rng or random.Random()
        self.lb = GroupWeightedLoadBalancer(refer)
        self.ha: HaStrategy = create_ha(refer)
        self.timeout = refer.request_timeout_ms / 1000
        #: False while a degrade command applies: every call fails fast
        self.available = True
        self.endpoints: dict[str, ProviderEndpoint] = {}
        self._lists: dict[int, list[URL]] = {}
        self._listeners: list[tuple[Registry, Callable[[list[URL]], None]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.notify_count = 0

    @property
    def key(self) -> str:
        return self.refer.cluster_key

    # ------------------------------------------------------------------ registry side

    async def start(self) -> None:
        for i, registry in enumerate(self.registries):

            def listener(urls: list[URL], index: int = i) -> None:
                self.on_notify(index, urls)

            self._listeners.append((registry, listener))
            await registry.subscribe(self.refer, listener)

    def on_notify(self, source: int, urls: list[URL]) -> None:
        """Take a registry's full provider list. An empty list is ignored: it never wipes a
        working cluster (keep last known good)."""
        if self._closed:
            return
        if not urls:
            log.warning(
                "%s: registry %d notified an empty provider list; keeping %d endpoints",
                self.key,
                source,
                len(self.endpoints),
            )
            return
        self._lists[source] = list(urls)
        self.notify_count += 1
        self._refresh()

    def provider_urls(self) -> list[URL]:
        seen: dict[str, URL] = {}
        for urls in self._lists.values():
            for url in urls:
                seen.setdefault(_endpoint_key(url), url)
        return list(seen.values())

    def _refresh(self) -> None:
        wanted = {_endpoint_key(u): u for u in self.provider_urls()}
        removed = [k for k in self.endpoints if k not in wanted]
        for key, url in wanted.items():
            if key not in self.endpoints:
                ep = ProviderEndpoint(url, self._endpoint_factory(self.refer, url))
                self.endpoints[key] = ep
                self._spawn(ep.endpoint.connect())
        for key in removed:
            ep = self.endpoints.pop(key)
            self._spawn(_close_later(ep.endpoint, ENDPOINT_CLOSE_DELAY))
        ordered = list(self.endpoints.values())
        self._rng.shuffle(ordered)
        self.lb.on_refresh(ordered)

    def set_weights(self, weights: str) -> None:
        """Group weights from a traffic-control command (``"g1:8,g2:2"``; ``""`` = none)."""
        self.lb.set_weight(weights)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ calls

    def request(self, frame: Frame, changes: dict[str, str] | None = None) -> asyncio.Future[Frame]:
        """Serve one request. The future resolves with a response frame (an exception
        response when every attempt failed) or, on the single-attempt fast path, may carry a
        transport error: turn it into a response with
        :func:`motanmesh.cluster.errors.call_error_response`."""
        if not self.available:
            fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
            fut.set_result(error_response(frame, 500, DEGRADE_MESSAGE, ERRTYPE_SERVICE))
            return fut
        ha = self.ha
        if type(ha) is FailoverHa and not self.lb.records_latency and ha.retries(frame) == 0:
            ep = self.lb.select(frame)
            if ep is not None:
                return ep.request(frame, changes, self.timeout)
        return asyncio.ensure_future(ha.call(frame, self.lb, self.timeout, changes))

    async def close(self) -> None:
        self._closed = True
        for registry, listener in self._listeners:
            try:
                await registry.unsubscribe(self.refer, listener)
            except Exception as e:  # a dead registry must not stop the shutdown
                log.warning("%s: unsubscribe failed: %s", self.key, e)
        self._listeners.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(
            *(ep.endpoint.close() for ep in self.endpoints.values()), return_exceptions=True
        )
        self.endpoints.clear()

    def runtime_info(self) -> dict[str, Any]:
        return {
            "url": self.refer.to_ext_info(),
            "available": self.available,
            "endpoints": [
                {
                    "url": ep.url.to_ext_info(),
                    "address": ep.url.address,
                    "available": ep.available,
                    "errorCount": ep.endpoint.error_count,
                    "inFlight": ep.in_flight,
                }
                for ep in self.endpoints.values()
            ],
        }


def _endpoint_key(url: URL) -> str:
    return f"{url.address}/{url.group}"


async def _close_later(endpoint: Endpoint, delay: float) -> None:
    await asyncio.sleep(delay)
    await endpoint.close()
