"""A refer's live view: provider endpoints that follow the registries and the commands, an HA
strategy and a load balancer in front of them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from typing import Any, Final

from motanmesh.cluster.command import ReferCommands
from motanmesh.cluster.commands_live import GroupSubscriptions, SwitcherCommands
from motanmesh.cluster.errors import error_response
from motanmesh.cluster.group_weights import GroupWeightedLoadBalancer
from motanmesh.cluster.ha import FailoverHa, HaStrategy, create_ha
from motanmesh.cluster.patterns import PatternMode
from motanmesh.filters.base import ROLE_CLIENT, Call, Filter, Handler, status_filters
from motanmesh.filters.chain import FilterSet, build_chain
from motanmesh.filters.direct import WatchedCall, Watchers, direct_watchers
from motanmesh.registry.base import CommandListener, NotifyListener, Registry
from motanmesh.registry.snapshot import SNAPSHOT_SOURCE, ReferSnapshot
from motanmesh.transport.endpoint import (
    DEFAULT_CLIENT_CONNECTIONS,
    Endpoint,
    Reply,
)
from motanmesh.transport.tls import ClientTls
from motanmesh.url import URL
from motanmesh.wire.frame import ERRTYPE_SERVICE, M_GROUP, Frame

log = logging.getLogger("motanmesh.cluster")

#: removed endpoints are closed this long after they left the list (in-flight calls finish)
ENDPOINT_CLOSE_DELAY: Final = 2.0
DEGRADE_MESSAGE: Final = "cluster not available, maybe caused by degrade"


class ProviderEndpoint:
    """A transport endpoint bound to its provider URL.

    Every request it sends carries ``M_g`` = the provider's group, so the remote server agent
    finds ``group_path`` whichever group the caller asked for. With endpoint filters, each
    attempt runs through them (:class:`~motanmesh.filters.base.Call` with the provider's
    address as ``peer``); when they are only the built-in watchers (``metrics``,
    ``accessLog``), an attempt's reply is a :class:`~motanmesh.filters.direct.WatchedCall`
    instead (``direct=False``: the chain all the same).
    """

    __slots__ = (
        "_address",
        "_chain",
        "_gates",
        "_group",
        "_refer",
        "_watchers",
        "endpoint",
        "url",
    )

    def __init__(
        self,
        url: URL,
        endpoint: Endpoint,
        refer: URL | None = None,
        filters: Sequence[Filter] = (),
        *,
        direct: bool = True,
    ) -> None:
        self.url = url
        self.endpoint = endpoint
        self._group = {M_GROUP: url.group} if url.group else {}
        self._refer = refer or url
        self._address = url.address
        self._chain: Handler | None = build_chain(filters, self._deliver) if filters else None
        self._watchers: Watchers | None = direct_watchers(filters) if direct else None
        #: endpoint filters that may take this provider out of load balancing
        self._gates = status_filters(filters) if filters else ()

    @property
    def available(self) -> bool:
        if not self.endpoint.available:
            return False
        if self._gates:
            address = self._address
            for gate in self._gates:
                if not gate.is_available(address):
                    return False
        return True

    @property
    def in_flight(self) -> int:
        return self.endpoint.in_flight

    def request(
        self, frame: Frame, changes: dict[str, str] | None = None, timeout: float | None = None
    ) -> asyncio.Future[Frame]:
        if self._chain is None:
            return self.endpoint.request(frame, self._with_group(changes), timeout)
        fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.send(frame, fut, changes, timeout)
        return fut

    def send(
        self,
        frame: Frame,
        reply: Reply,
        changes: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> None:
        """:meth:`request` with the outcome going to ``reply`` (no Future on the hot path)."""
        if self._chain is None:
            self.endpoint.send(frame, reply, self._with_group(changes), timeout)
            return
        watchers = self._watchers
        if watchers is not None:
            watched = WatchedCall(watchers, frame, self._address, reply)
            self.endpoint.send(frame, watched, self._with_group(changes), timeout)
            return
        mine = {**changes, **self._group} if changes else dict(self._group)
        call = Call(frame, self._refer, ROLE_CLIENT, self._address, mine, None, timeout, reply)
        self._chain(call)

    def _deliver(self, call: Call) -> None:
        # the call is the reply: the endpoint completes it when the answer is read
        self.endpoint.send(call.request, call, call.changes, call.timeout)

    def _with_group(self, changes: dict[str, str] | None) -> dict[str, str]:
        """The caller's changes plus ``M_g`` (a new dict: one changes dict may go to
        endpoints of several groups)."""
        if not changes:
            return self._group
        return {**changes, **self._group}


def endpoint_for(refer: URL, provider: URL, *, tls: ClientTls | None = None) -> Endpoint:
    """A transport endpoint configured from the refer's parameters (Go agent defaults).
    With ``tls`` (the agent has TLS towards providers), it connects with TLS when the
    provider was registered with ``tls=true`` (its export port speaks TLS) or the refer says
    ``tls: true``."""
    if tls is not None and "true" not in (provider.get("tls"), refer.get("tls")):
        tls = None
    timeout = refer.request_timeout_ms / 1000
    min_tmo = refer.get_int("minRequestTimeout", 0)
    max_tmo = refer.get_int("maxRequestTimeout", 0)
    return Endpoint(
        provider.address,
        connections=max(1, refer.get_int("clientConnection", DEFAULT_CLIENT_CONNECTIONS)),
        request_timeout=timeout,
        min_request_timeout=min_tmo / 1000 if min_tmo else None,
        max_request_timeout=max_tmo / 1000 if max_tmo else None,
        connect_timeout=refer.get_int("connectTimeout", 1000) / 1000,
        connect_retry_interval=refer.get_int("connectRetryInterval", 5000) / 1000,
        error_count_threshold=refer.get_int("errorCountThreshold", 10),
        keepalive_interval=refer.get_int("keepaliveInterval", 1000) / 1000,
        max_content_length=refer.get_int("maxContentLength", 10 * 1024 * 1024),
        proxy=True,
        tls=tls,
    )


EndpointFactory = Callable[[URL, URL], Endpoint]


class Cluster:
    """One refer: follows its registries and commands, keeps endpoints, and serves calls.

    Providers come from the refer's own group in every registry and, when a traffic-control
    command (or the refer's ``mixGroups``) names other merge groups, from those groups in the
    registries that support commands. Commands are the service command of the own group (from
    the first command-capable registry that has one) and the agent command the agent hands in
    (:meth:`on_agent_command`); a cluster without a command-capable registry ignores both, as
    the Go agent does.

    Every change recomputes the provider list (merge groups, then route rules against
    ``local_ip``: :meth:`EffectiveCommand.providers`) and the group weights. Switching loses
    no call: while the current endpoints serve, a list that brings new endpoints reaches the
    load balancer only once they have connected (or ``connectTimeout`` passed); endpoints
    that leave are closed :data:`ENDPOINT_CLOSE_DELAY` later. A degrade command makes every
    call fail fast; switcher commands go through ``switchers``.
    """

    def __init__(
        self,
        refer: URL,
        registries: Sequence[Registry],
        *,
        endpoint_factory: EndpointFactory = endpoint_for,
        rng: random.Random | None = None,
        local_ip: str = "",
        switchers: SwitcherCommands | None = None,
        pattern_mode: PatternMode = "auto",
        filters: FilterSet | None = None,
        direct: bool = True,
    ) -> None:
        self.refer = refer
        #: the refer's filters: cluster filters run around every call, endpoint filters
        #: around each attempt on a provider
        self.filters = filters or FilterSet()
        self._chain: Handler | None = (
            build_chain(self.filters.cluster, self._deliver) if self.filters.cluster else None
        )
        #: the built-in watchers, when they are all the cluster filters (no chain per call);
        #: ``direct=False`` keeps the chain (to compare the two paths)
        self._direct = direct
        self._watchers: Watchers | None = direct_watchers(self.filters.cluster) if direct else None
        self.registries = list(registries)
        self._endpoint_factory = endpoint_factory
        self._rng = rng or random.Random()
        self.lb = GroupWeightedLoadBalancer(refer)
        self.ha: HaStrategy = create_ha(refer)
        self.timeout = refer.request_timeout_ms / 1000
        #: the client address route rules are matched against
        self.local_ip = local_ip or refer.host
        #: False while a degrade command applies: every call fails fast
        self.available = True
        self.commands = ReferCommands(refer, pattern_mode=pattern_mode)
        self.switchers = switchers
        #: the endpoints the load balancer serves, by address and group
        self.endpoints: dict[str, ProviderEndpoint] = {}
        #: how long a new provider list waits for its new endpoints to connect
        self.connect_wait = refer.get_int("connectTimeout", 1000) / 1000 + 0.1
        self._pending: dict[str, tuple[ProviderEndpoint, asyncio.Task[None]]] = {}
        self._wanted: dict[str, URL] = {}
        self._applier: asyncio.Task[None] | None = None
        #: group -> registry index -> last non-empty provider list
        self._lists: dict[str, dict[int, list[URL]]] = {}
        self._listeners: list[tuple[Registry, NotifyListener]] = []
        self._command_registries = [
            (i, r) for i, r in enumerate(self.registries) if r.supports_commands
        ]
        self._command_listeners: list[tuple[Registry, CommandListener]] = []
        self._service_commands: dict[int, str | None] = {}
        self._groups = GroupSubscriptions(
            refer, self._command_registries, self.on_notify, self._drop_group
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self._closed = False
        self.notify_count = 0
        #: discovery snapshot (set by the agent): saves every list, read back at start
        self.snapshot: ReferSnapshot | None = None

    @property
    def key(self) -> str:
        return self.refer.cluster_key

    @property
    def accepts_commands(self) -> bool:
        """Whether any registry of this refer carries commands."""
        return bool(self._command_registries)

    # ------------------------------------------------------------------ registry side

    async def start(self) -> None:
        """Subscribe the service command, the own group, and the merge groups in force."""
        for index, registry in self._command_registries:
            command_listener = partial(self._on_service_command, index)
            self._command_listeners.append((registry, command_listener))
            try:
                await registry.subscribe_command(self.refer.group, command_listener)
            except Exception as e:  # providers still work without commands
                log.warning("%s: command subscription failed: %s", self.key, e)
        self._started = True
        for i, registry in enumerate(self.registries):

            def listener(urls: list[URL], index: int = i) -> None:
                self.on_notify(index, urls)

            self._listeners.append((registry, listener))
            await registry.subscribe(self.refer, listener)
        self._groups.want(self.commands.effective.other_groups)
        await self._groups.sync()
        self._command_changed()
        if self.snapshot is not None:  # registries silent: serve the saved list meanwhile
            await self.snapshot.read_back(self.registries, self.on_notify)

    def on_notify(self, source: int, urls: list[URL], group: str = "") -> None:
        """Take registry ``source``'s full provider list of ``group`` (default: the own
        group). An empty list is ignored: it never wipes a working cluster (keep last known
        good)."""
        if self._closed:
            return
        group = group or self.refer.group
        if group != self.refer.group and group not in self._groups.groups:
            return
        if not urls:
            log.warning(
                "%s: registry %d notified an empty provider list for group %s; keeping it",
                self.key,
                source,
                group,
            )
            return
        self._lists.setdefault(group, {})[source] = list(urls)
        if self.snapshot is not None and source != SNAPSHOT_SOURCE:  # a real list replaces it
            self._lists[group].pop(SNAPSHOT_SOURCE, None)
            self.snapshot.save(group, self._lists[group].values())
        self.notify_count += 1
        self._refresh()

    def on_agent_command(self, command: str | None) -> None:
        """The agent command (``/motan/agent/<application>/command``) changed."""
        if self._closed or not self._command_registries:
            return
        if self.commands.update("agent", command):
            self._command_changed()

    def _on_service_command(self, source: int, command: str | None) -> None:
        if self._closed:
            return
        self._service_commands[source] = command or None
        texts = (self._service_commands.get(i) for i, _r in self._command_registries)
        chosen = next((t for t in texts if t), None)
        if self.commands.update("service", chosen):
            self._command_changed()

    def _command_changed(self) -> None:
        effective = self.commands.effective
        if self.available == effective.degraded:
            log.info("%s: %s", self.key, "degraded" if effective.degraded else "available again")
        self.available = not effective.degraded
        if self.switchers is not None:
            self.switchers.apply(self, effective.switchers)
        if self._groups.want(effective.other_groups) and self._started:
            self._spawn(self._sync_groups())
        self._refresh()

    async def _sync_groups(self) -> None:
        try:
            await self._groups.sync()
        except Exception:
            log.exception("%s: merge group subscriptions failed", self.key)

    def _drop_group(self, group: str) -> None:
        if self._lists.pop(group, None) is not None:
            self._refresh()

    def providers_by_group(self) -> dict[str, list[URL]]:
        """Each followed group's providers (merged over the registries)."""
        out: dict[str, list[URL]] = {}
        for group, lists in self._lists.items():
            seen: dict[str, URL] = {}
            for urls in lists.values():
                for url in urls:
                    seen.setdefault(_endpoint_key(url), url)
            out[group] = list(seen.values())
        return out

    def provider_urls(self) -> list[URL]:
        """The providers the commands in force select."""
        return self.commands.effective.providers(self.providers_by_group(), self.local_ip)

    # ------------------------------------------------------------------ endpoints

    def _refresh(self) -> None:
        if not self._started or self._closed:
            return
        wanted = {_endpoint_key(u): u for u in self.provider_urls()}
        self._wanted = wanted
        for key, url in wanted.items():
            if key not in self.endpoints and key not in self._pending:
                ep = ProviderEndpoint(
                    url,
                    self._endpoint_factory(self.refer, url),
                    self.refer,
                    self.filters.endpoint,
                    direct=self._direct,
                )
                self._pending[key] = (ep, self._spawn(self._connect(ep)))
        if self._must_wait():
            if self._applier is None:
                self._applier = self._spawn(self._apply_when_ready())
            return
        if self._applier is not None:
            self._applier.cancel()
            self._applier = None
        self._apply()

    def _waiting(self) -> list[asyncio.Task[None]]:
        wanted = self._wanted
        return [t for k, (_ep, t) in self._pending.items() if k in wanted and not t.done()]

    def _must_wait(self) -> bool:
        """New endpoints are still connecting while the current ones can serve."""
        if not self._waiting():
            return False
        return any(ep.available for ep in self.endpoints.values())

    async def _connect(self, ep: ProviderEndpoint) -> None:
        try:
            await ep.endpoint.connect()
        except Exception as e:
            log.info("%s: connect to %s failed: %s", self.key, ep.url.address, e)

    async def _apply_when_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_wait
        while True:
            waiting = self._waiting()
            remaining = deadline - loop.time()
            if not waiting or remaining <= 0:
                break
            await asyncio.wait(waiting, timeout=remaining)
        self._applier = None
        self._apply()

    def _apply(self) -> None:
        """Hand the wanted endpoints and the weights in force to the load balancer."""
        current = self.endpoints
        fresh: dict[str, ProviderEndpoint] = {}
        for key in self._wanted:
            ep = current.get(key)
            fresh[key] = ep if ep is not None else self._pending.pop(key)[0]
        for key, ep in current.items():
            if key not in fresh:
                self._spawn(_close_later(ep.endpoint, ENDPOINT_CLOSE_DELAY))
        for key in [k for k in self._pending if k not in fresh]:
            self._spawn(self._pending.pop(key)[0].endpoint.close())
        self.endpoints = fresh
        ordered = list(fresh.values())
        self._rng.shuffle(ordered)
        effective = self.commands.effective
        self.lb.on_refresh(ordered)
        self.lb.set_weight(effective.weights)
        self.commands.history.record_notify(effective, [ep.url for ep in ordered])

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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

    def send(self, frame: Frame, reply: Reply, changes: dict[str, str] | None = None) -> None:
        """:meth:`request` for the hot path: the outcome (a response frame, or on the
        single-attempt path possibly a transport error) goes to ``reply``; a single attempt
        costs no Future and no Task. Cluster filters, when there are any, run around it."""
        if self._chain is not None:
            watchers = self._watchers
            if watchers is not None:
                self._send(frame, WatchedCall(watchers, frame, "", reply), changes)
                return
            mine = changes if changes is not None else {}
            self._chain(Call(frame, self.refer, ROLE_CLIENT, "", mine, None, None, reply))
            return
        self._send(frame, reply, changes)

    def _deliver(self, call: Call) -> None:
        self._send(call.request, call, call.changes)

    def _send(self, frame: Frame, reply: Reply, changes: dict[str, str] | None) -> None:
        if self.available:
            ha = self.ha
            if type(ha) is FailoverHa and not self.lb.records_latency and ha.retries(frame) == 0:
                ep = self.lb.select(frame)
                if isinstance(ep, ProviderEndpoint):
                    ep.send(frame, reply, changes, self.timeout)
                    return
        fut = self.request(frame, changes)
        fut.add_done_callback(partial(_to_reply, reply))

    async def close(self) -> None:
        self._closed = True
        self.filters.close()
        if self.switchers is not None:
            self.switchers.release(self)
        for registry, command_listener in self._command_listeners:
            try:
                await registry.unsubscribe_command(self.refer.group, command_listener)
            except Exception as e:  # a dead registry must not stop the shutdown
                log.warning("%s: command unsubscribe failed: %s", self.key, e)
        self._command_listeners.clear()
        await self._groups.close()
        for registry, listener in self._listeners:
            try:
                await registry.unsubscribe(self.refer, listener)
            except Exception as e:
                log.warning("%s: unsubscribe failed: %s", self.key, e)
        self._listeners.clear()
        for task in list(self._tasks):
            task.cancel()
        endpoints = [*self.endpoints.values(), *(ep for ep, _t in self._pending.values())]
        await asyncio.gather(*(ep.endpoint.close() for ep in endpoints), return_exceptions=True)
        self.endpoints.clear()
        self._pending.clear()

    def runtime_info(self) -> dict[str, Any]:
        groups: dict[str, int] = {}
        for ep in self.endpoints.values():
            groups[ep.url.group] = groups.get(ep.url.group, 0) + 1
        commands = self.commands
        return {
            "url": self.refer.to_ext_info(),
            "available": self.available,
            "endpoints": [
                {
                    "url": ep.url.to_ext_info(),
                    "address": ep.url.address,
                    "group": ep.url.group,
                    "available": ep.available,
                    "errorCount": ep.endpoint.error_count,
                    "inFlight": ep.in_flight,
                    "tls": ep.endpoint.tls is not None,
                }
                for ep in self.endpoints.values()
            ],
            "commands": {
                "agent": commands.agent_command,
                "service": commands.service_command,
                "effective": commands.effective.to_info(),
                "subscribedGroups": self._groups.groups,
            },
            "weights": self.lb.weights or {},
            "filters": self.filters.info(),
            "groups": groups,
            **commands.history.to_info(),
        }


def _endpoint_key(url: URL) -> str:
    return f"{url.address}/{url.group}"


async def _close_later(endpoint: Endpoint, delay: float) -> None:
    await asyncio.sleep(delay)
    await endpoint.close()


def _to_reply(reply: Reply, fut: asyncio.Future[Frame]) -> None:
    if fut.cancelled():
        reply.set_exception(asyncio.CancelledError())
    elif (exc := fut.exception()) is not None:
        reply.set_exception(exc)
    else:
        reply.set_result(fut.result())
