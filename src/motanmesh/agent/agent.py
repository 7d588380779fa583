"""The agent: client side, server side, registries and management, wired from a config.

Lifecycle, as the Go agent: the agent starts at status 503 (services registered but
unavailable) unless ``-recover`` finds ``200`` in ``runtime_dir/status``; ``/200`` and
``/503`` move every registered service; the status is persisted. Beyond the Go agent:
SIGTERM drains (unavailable in the registries, serve in-flight and late requests for the
drain period, then exit 0) and SIGHUP reloads refers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final

from motanmesh.agent.auth_policies import AuthPolicies
from motanmesh.agent.dispatcher import Provider, ServerDispatcher
from motanmesh.agent.filtering import with_filters
from motanmesh.agent.management import ManagementServer
from motanmesh.agent.providers import create_provider, register_provider
from motanmesh.agent.router import ClientRouter
from motanmesh.agent.state import (
    STATUS_AVAILABLE,
    STATUS_UNAVAILABLE,
    VERSION,
    AgentError,
)
from motanmesh.cluster.cluster import ENDPOINT_CLOSE_DELAY, Cluster, EndpointFactory, endpoint_for
from motanmesh.cluster.commands_live import SwitcherCommands
from motanmesh.config.errors import ConfigError
from motanmesh.config.loader import load_config
from motanmesh.config.model import Config
from motanmesh.config.overrides import apply_overrides
from motanmesh.filters.base import FilterContext
from motanmesh.filters.chain import resolve_filters
from motanmesh.graph import DEFAULT_MAX_EDGES, DependencyGraph
from motanmesh.registry.base import Registry
from motanmesh.registry.factory import create_registry
from motanmesh.registry.snapshot import IdcGroups, SnapshotStore
from motanmesh.registry.starter import keep_starting
from motanmesh.switcher import SwitcherManager
from motanmesh.telemetry.reporter import Telemetry, TelemetryConfigError
from motanmesh.telemetry.runtime import RuntimeSample
from motanmesh.tracing.config import PREFIX as TRACING_PREFIX
from motanmesh.tracing.config import TracingConfig, TracingConfigError
from motanmesh.transport.limits import LimitError, ServerLimits
from motanmesh.transport.server import MotanServer
from motanmesh.url import URL

log = logging.getLogger("motanmesh.agent")

DEFAULT_DRAIN_SECONDS: Final = 5.0


class Agent:
    """One agent process: both roles, as configured."""

    def __init__(self, config: Config, *, recover: bool = False) -> None:
        self.config = config
        self.recover = recover
        a = config.agent
        self.application = config.application or a.application
        self.local_ip = a.local_ip or "127.0.0.1"
        self.status = STATUS_UNAVAILABLE
        self.switchers = SwitcherManager()
        for name, value in config.switchers.items():
            self.switchers.register(name, value)
        #: switcher commands from the registry, over ``switchers`` (shared by every cluster)
        self.switcher_commands = SwitcherCommands(self.switchers)
        #: what the filters of every refer and service share
        self.filter_context = FilterContext(
            application=self.application,
            switchers=self.switchers,
            local_ip=self.local_ip,
            log_dir=a.log_dir,
            default_filter=list(a.default_filter),
            global_filter=list(a.global_filter),
            params=dict(a.params),
        )
        self.start_time = time.time()
        #: metrics: the store the ``metrics`` filters fill, the reporter and its readers
        try:
            self.telemetry = Telemetry(
                self.application, config.metrics, self.filter_context.services, self.start_time
            )
        except TelemetryConfigError as e:
            raise AgentError(str(e)) from e
        self.telemetry.add_source(self._runtime_samples)
        #: who calls what through this agent (``/debug/graph``); ``None`` when switched off
        self.graph: DependencyGraph | None = None
        if a.params.get("dependencyGraph", "false") == "true":
            self.graph = DependencyGraph(
                self.application,
                int(a.params.get("dependencyGraph.maxEdges", DEFAULT_MAX_EDGES)),
            )
        if any(k.startswith(TRACING_PREFIX) for k in a.params):
            try:  # checked now (OpenTelemetry is imported only by a trace filter)
                TracingConfig.from_params(a.params, self.application)
            except TracingConfigError as e:
                raise AgentError(str(e)) from e
        #: the agent command (``/motan/agent/<application>/command``) last received
        self.agent_command: str | None = None
        self.registries: dict[str, Registry] = {}
        #: registries whose start failed, started again in the background (by id)
        self._registry_starts: dict[str, asyncio.Future[None]] = {}
        self.clusters: dict[str, Cluster] = {}
        #: discovery snapshots (``snapshot_dir``) and the ``${idc}`` groups chosen
        self.snapshots = SnapshotStore(a.snapshot_dir) if a.snapshot_dir else None
        self.idc_groups = IdcGroups(a.idc)
        self.router = ClientRouter(self.application)
        self.router.graph = self.graph
        self.client_server: MotanServer | None = None
        self.dispatchers: dict[int, ServerDispatcher] = {}
        self.export_servers: dict[int, MotanServer] = {}
        self.providers: list[Provider] = []
        #: access policies from the registry for services with an ``auth`` filter
        self.auth_policies = AuthPolicies()
        self.services: list[URL] = []
        self.dynamic_services: list[URL] = []
        #: refers subscribed through the management API (``/registry/subscribe``), by id
        self.dynamic_refers: dict[str, URL] = {}
        self.client_address: tuple[str, int] | None = None
        #: the gRPC ingress (``grpcPort``) and its address, when configured
        self.grpc_ingress: Any = None
        self.grpc_address: tuple[str, int] | None = None
        #: the HTTP forward proxy (``httpProxyEnable``; :mod:`motanmesh.ingress.http`)
        self.http_proxy: Any = None
        self.http_proxy_address: tuple[str, int] | None = None
        self.export_addresses: dict[int, tuple[str, int]] = {}
        self.management: Any = None
        self.management_address: tuple[str, int] | None = None
        self.drain_seconds = float(a.params.get("drainTime", DEFAULT_DRAIN_SECONDS))
        #: the limits of the client port and of every export port (``motan-agent`` keys)
        self.server_limits = ServerLimits()
        #: TLS (``tls.*`` keys; :mod:`motanmesh.security.tls`): the certificate files, the
        #: export ports' policy and the provider endpoints' policy, when configured
        self.tls_material: Any = None
        self.tls_server: Any = None
        self.endpoint_factory: EndpointFactory = endpoint_for
        self._stopped = asyncio.Event()
        self._draining = False
        #: clusters of refers removed by a reload, closed after a grace period
        self._retired: dict[asyncio.Future[None], Cluster] = {}

    # ------------------------------------------------------------------ paths

    @property
    def runtime_dir(self) -> Path:
        return Path(self.config.agent.runtime_dir)

    @property
    def agent_url(self) -> URL:
        a = self.config.agent
        return URL(
            "motan2",
            self.local_ip,
            self.management_address[1] if self.management_address else a.mport,
            "",
            self.application,
            {"application": self.application, "nodeType": "agent"},
        )

    # ------------------------------------------------------------------ start

    async def start(self) -> None:
        """Start everything; raise :class:`AgentError` (nothing left running) on failure."""
        try:
            await self._start()
        except BaseException:
            await self.stop(drain=False)
            raise

    async def _start(self) -> None:
        try:
            self.server_limits = ServerLimits.from_params(self.config.agent.params)
        except LimitError as e:
            raise AgentError(f"motan-agent.{e}") from e
        if any(k.startswith("tls.") for k in self.config.agent.params):
            self._start_tls()
        self.status = self._initial_status()
        await self._start_registries()
        await self._subscribe_agent_command()
        await self._start_clusters(self.config.refers)
        await self._start_services()
        await self._start_client_port()
        await self._start_grpc_port()
        if self.config.agent.http_proxy_enable:
            await self._start_http_proxy()
        await self._start_management()
        await self.telemetry.start()
        await self._register_agent()
        self._write_pidfile()
        if self.status == STATUS_AVAILABLE:
            await self.set_status(STATUS_AVAILABLE)
        log.info(
            "agent started: client %s, grpc %s, exports %s, management %s, status %d",
            self.client_address,
            self.grpc_address,
            sorted(self.export_addresses),
            self.management_address,
            self.status,
        )

    def _start_tls(self) -> None:
        # imported only by agents that configure TLS
        from motanmesh.security.tls import (  # noqa: PLC0415
            ClientPolicy,
            ServerPolicy,
            TlsConfig,
            TlsConfigError,
            TlsMaterial,
        )

        try:
            tls = TlsConfig.from_params(self.config.agent.params)
            if not tls.enabled:
                return
            self.tls_material = material = TlsMaterial(tls)
        except TlsConfigError as e:
            raise AgentError(f"motan-agent.{e}") from e
        if tls.server_enabled:
            self.tls_server = ServerPolicy(material)
        if tls.client_enabled:
            self.endpoint_factory = partial(endpoint_for, tls=ClientPolicy(material))
        log.info(
            "tls: export ports %s, towards providers %s",
            tls.mode,
            "on (tls=true providers)" if tls.client_enabled else "off",
        )

    def _initial_status(self) -> int:
        if not self.recover:
            return STATUS_UNAVAILABLE
        try:
            text = (self.runtime_dir / "status").read_text().strip()
        except OSError:
            return STATUS_UNAVAILABLE
        return STATUS_AVAILABLE if text == "200" else STATUS_UNAVAILABLE

    def _used_registries(self) -> set[str]:
        used = {self.config.agent.registry} if self.config.agent.registry else set()
        for url in self.config.refers.values():
            used.update(url.registry)
        for urls in self.config.services.values():
            for url in urls:
                used.update(url.registry)
        return used

    async def _start_registries(self) -> None:
        used = self._used_registries()
        for rid, url in self.config.registries.items():
            try:
                registry = create_registry(url)
            except Exception as e:
                if rid in used:
                    raise AgentError(f"motan-registry.{rid}: {e}") from e
                # the Go agent builds a registry only when something uses it
                log.warning("motan-registry.%s is not used and cannot be built: %s", rid, e)
                continue
            try:
                await registry.start()
            except Exception as e:  # a dead registry must not stop the agent
                log.error(
                    "registry %s (%s) did not start, trying again in the background: %s",
                    rid,
                    url.to_ext_info(),
                    e,
                )
                self._registry_starts[rid] = asyncio.ensure_future(keep_starting(rid, registry, e))
            self.registries[rid] = registry

    def _registries_of(self, url: URL, what: str) -> list[Registry]:
        out = []
        for rid in url.registry:
            registry = self.registries.get(rid)
            if registry is None:
                raise AgentError(f"{what} {url.conf_id or url.path}: unknown registry {rid!r}")
            out.append(registry)
        return out

    def _resolve_refer(self, refer: URL) -> URL:
        """The refer as subscribed: ``${idc}`` resolved, this host as the client address."""
        idc = self.config.agent.idc
        if "${idc}" in refer.group and idc:
            refer = refer.copy(group=self.idc_groups.group(refer.group))
        if not refer.host:
            refer = refer.copy(host=self.local_ip)
        if not refer.application:
            refer = refer.with_params(application=self.application)
        return refer

    async def _start_clusters(self, refers: dict[str, URL]) -> None:
        new: dict[str, Cluster] = {}
        for rid, configured in refers.items():
            registries = self._registries_of(configured, "motan-refer")
            await self.idc_groups.resolve(configured, registries, self.snapshots)
            refer = self._resolve_refer(configured)
            new[rid] = cluster = Cluster(
                refer,
                self._registries_of(refer, "motan-refer"),
                local_ip=self.local_ip,
                switchers=self.switcher_commands,
                filters=resolve_filters(refer, self.filter_context),
                endpoint_factory=self.endpoint_factory,
            )
            if self.snapshots is not None:
                cluster.snapshot = self.snapshots.for_refer(refer, cluster.registries)
            cluster.on_agent_command(self.agent_command)
        timeout = self.config.agent.init_cluster_timeout_ms / 1000
        starts = [asyncio.ensure_future(c.start()) for c in new.values()]
        if starts:
            done, _pending = await asyncio.wait(starts, timeout=timeout)
            for task in done:
                if task.exception() is not None:
                    log.error("refer subscription failed: %s", task.exception())
        self.clusters.update(new)
        for cluster in new.values():  # a command that came while they started
            cluster.on_agent_command(self.agent_command)
        self.router.set_clusters(self.clusters.values())

    async def _subscribe_agent_command(self) -> None:
        """Follow the agent command in the agent registry; every cluster receives it."""
        rid = self.config.agent.registry
        registry = self.registries.get(rid) if rid else None
        if registry is None or not registry.supports_commands or not self.application:
            return
        try:
            await registry.subscribe_agent_command(self.application, self._on_agent_command)
        except Exception as e:
            log.error("agent command subscription failed: %s", e)

    def _on_agent_command(self, command: str | None) -> None:
        self.agent_command = command
        clusters = list(self.clusters.values())
        if self.http_proxy is not None:
            clusters += self.http_proxy.domains.all_clusters()
        for cluster in clusters:
            cluster.on_agent_command(command)

    async def _start_services(self) -> None:
        register_provider(
            "http",
            partial(
                _http_provider,
                http_service=self.config.http_service,
                http_locations=self.config.http_locations,
            ),
        )
        register_provider("grpc", _grpc_provider)
        for sid, urls in self.config.services.items():
            for url in urls:
                await self.export_service(url, what=f"motan-service.{sid}")

    async def export_service(
        self, url: URL, *, what: str = "service", dynamic: bool = False
    ) -> URL:
        """Export one service on its port and register it (as unavailable, or available
        when the agent's status is 200). Returns the registered URL."""
        try:
            provider = with_filters(create_provider(url), url, self.filter_context)
        except Exception as e:
            raise AgentError(f"{what}: {e}") from e
        port = url.port or self.config.agent.eport
        await provider.start()
        dispatcher = self.dispatchers.get(port)
        if dispatcher is None:
            dispatcher = ServerDispatcher()
            dispatcher.graph = self.graph
            server = MotanServer(dispatcher, limits=self.server_limits, tls=self.tls_server)
            host = url.get("host") or self.local_ip
            try:
                self.export_addresses[port] = await server.listen_tcp(host, port)
            except OSError as e:
                await provider.close()
                raise AgentError(f"{what}: cannot listen on {host}:{port}: {e}") from e
            unix = url.get("unixSock")
            if unix:
                await server.listen_unix(unix)
            self.dispatchers[port] = dispatcher
            self.export_servers[port] = server
        dispatcher.add(provider)
        self.providers.append(provider)
        bound_port = self.export_addresses[port][1]
        registered = url.copy(host=self.local_ip, port=bound_port).with_params(
            nodeType="service", application=self.application
        )
        if self.export_servers[port].tls is not None:
            # clients with TLS connect with it; others (the Go agent) ignore the parameter
            registered = registered.with_params(tls="true")
        (self.dynamic_services if dynamic else self.services).append(registered)
        registries = self._registries_of(url, what)
        # the registry's access policy is in force before the service is announced
        await self.auth_policies.follow(provider, registered, registries)
        for registry in registries:
            try:
                await registry.register(registered)
                if self.status == STATUS_AVAILABLE:
                    await registry.available(registered)
            except Exception as e:
                log.error("%s: register in %s failed: %s", what, registry.name, e)
        return registered

    async def unexport_service(self, registered: URL) -> bool:
        """Undo a dynamic :meth:`export_service` (``registered`` is the URL it returned):
        remove it from its registries, stop dispatching to it and close its provider. The
        export port keeps listening. Returns False when the URL is not dynamically exported."""
        if registered not in self.dynamic_services:
            return False
        self.dynamic_services.remove(registered)
        for rid in registered.registry:
            registry = self.registries.get(rid)
            if registry is None:
                continue
            try:
                await registry.unregister(registered)
            except Exception as e:
                log.error("unregister %s in %s failed: %s", registered.path, registry.name, e)
        for port, (_host, bound) in self.export_addresses.items():
            if bound == registered.port:
                provider = self.dispatchers[port].remove(registered)
                if provider is not None:
                    self.providers.remove(provider)
                    await self.auth_policies.unfollow(provider)
                    await provider.close()
                break
        return True

    async def subscribe_refer(self, rid: str, refer: URL) -> None:
        """Add a refer at run time (``/registry/subscribe``); it survives reloads."""
        self.dynamic_refers[rid] = refer
        await self._start_clusters({rid: refer})

    async def _start_client_port(self) -> None:
        a = self.config.agent
        self.client_server = MotanServer(self.router, limits=self.server_limits)
        try:
            self.client_address = await self.client_server.listen_tcp(a.host, a.port)
        except OSError as e:
            raise AgentError(f"motan-agent.port: cannot listen on {a.host}:{a.port}: {e}") from e
        if a.unix_sock:
            await self.client_server.listen_unix(a.unix_sock)

    async def _start_grpc_port(self) -> None:
        a = self.config.agent
        if not a.grpc_port:
            return
        try:
            from motanmesh.ingress.grpc import GrpcIngress  # noqa: PLC0415
        except ImportError as e:
            raise AgentError(f"motan-agent.grpcPort: {e}") from e
        ingress = GrpcIngress(self.router, application=self.application)
        try:
            self.grpc_address = await ingress.start(a.host, a.grpc_port)
        except Exception as e:
            raise AgentError(f"motan-agent.grpcPort: {e}") from e
        self.grpc_ingress = ingress

    async def _start_http_proxy(self) -> None:
        from motanmesh.ingress.http import HttpDomains, HttpProxyServer  # noqa: PLC0415

        a = self.config.agent
        domains = HttpDomains(self.config.http_client, self.config.http_locations, self._cluster)
        self.http_proxy = HttpProxyServer(
            host=a.host,
            port=a.hport,
            params=a.params,
            route=self.router.route,
            domains=domains,
            local_ip=self.local_ip,
            application=self.application,
        )
        try:
            self.http_proxy_address = await self.http_proxy.start()
        except OSError as e:
            raise AgentError(f"motan-agent.hport: cannot listen on {a.host}:{a.hport}: {e}") from e

    async def _cluster(self, configured: URL) -> Cluster:
        """A started cluster for a refer built at run time (the HTTP proxy's upstreams)."""
        refer = self._resolve_refer(configured)
        cluster = Cluster(
            refer,
            self._registries_of(refer, "http-client"),
            local_ip=self.local_ip,
            switchers=self.switcher_commands,
            filters=resolve_filters(refer, self.filter_context),
            endpoint_factory=self.endpoint_factory,
        )
        cluster.on_agent_command(self.agent_command)
        await cluster.start()
        return cluster

    async def _start_management(self) -> None:
        self.management = ManagementServer(self)
        self.management_address = await self.management.start()

    async def _register_agent(self) -> None:
        rid = self.config.agent.registry
        registry = self.registries.get(rid) if rid else None
        if registry is None:
            return
        try:
            await registry.register_agent(self.agent_url)
        except Exception as e:
            log.error("agent node registration failed: %s", e)

    def _write_pidfile(self) -> None:
        pidfile = self.config.agent.pidfile
        if pidfile:
            with contextlib.suppress(OSError):
                Path(pidfile).write_text(str(os.getpid()))

    # ------------------------------------------------------------------ status

    def _runtime_samples(self) -> list[RuntimeSample]:
        """The Go agent's server-side gauges: connections and requests for no provider."""
        servers = [s for s in [self.client_server, *self.export_servers.values()] if s]
        return [
            RuntimeSample(
                "motan_server_connections",
                "gauge",
                sum(s.connection_count for s in servers),
                "Open connections to the agent's client and export ports",
                go_name="motan_server_connection_count",
            ),
            RuntimeSample(
                "motan_not_found_provider_total",
                "counter",
                sum(d.not_found_count for d in self.dispatchers.values()),
                "Requests to an export port that named no exported service",
                go_name="not_found_provider_count",
            ),
            *self._tls_samples(),
        ]

    def _tls_samples(self) -> list[RuntimeSample]:
        """Refused and accepted connections of the TLS export ports, certificate reloads."""
        if self.tls_material is None:
            return []
        out: list[RuntimeSample] = []
        for port, server in sorted(self.export_servers.items()):
            if server.tls is None:
                continue
            bound = str(self.export_addresses.get(port, ("", port))[1])
            for reason, n in server.tls_refused.items():
                out.append(
                    RuntimeSample(
                        "motan_tls_refused_total",
                        "counter",
                        n,
                        "Connections to a TLS export port refused, by reason",
                        labels=(("port", bound), ("reason", reason)),
                    )
                )
            for kind, n in server.tls_connections.items():
                out.append(
                    RuntimeSample(
                        "motan_tls_connections_total",
                        "counter",
                        n,
                        "Connections made on a TLS export port, TLS or plain (permissive)",
                        labels=(("port", bound), ("kind", kind)),
                    )
                )
        material = self.tls_material
        out.append(
            RuntimeSample(
                "motan_tls_reloads_total",
                "counter",
                material.reloads,
                "Certificate reloads (files changed on disk)",
            )
        )
        out.append(
            RuntimeSample(
                "motan_tls_reload_errors_total",
                "counter",
                material.reload_errors,
                "Certificate reloads that failed (the previous certificates stay)",
            )
        )
        return out

    async def set_status(self, status: int) -> None:
        """``/200`` and ``/503``: every registered service available or unavailable in every
        registry; the status is persisted to ``runtime_dir/status``."""
        self.status = status
        for registry in self._service_registries():
            try:
                if status == STATUS_AVAILABLE:
                    await registry.available(None)
                else:
                    await registry.unavailable(None)
            except Exception as e:
                log.error("status %d in registry %s failed: %s", status, registry.name, e)
        with contextlib.suppress(OSError):
            self.runtime_dir.mkdir(parents=True, exist_ok=True)
            (self.runtime_dir / "status").write_text(str(status))

    def _service_registries(self) -> Sequence[Registry]:
        seen: dict[int, Registry] = {}
        for url in self.services + self.dynamic_services:
            for rid in url.registry:
                registry = self.registries.get(rid)
                if registry is not None:
                    seen[id(registry)] = registry
        return list(seen.values())

    # ------------------------------------------------------------------ reload

    async def reload_clusters(self, config: Config | None = None) -> dict[str, str]:
        """Re-read the refers: build new ones, keep unchanged ones (same URL), close removed
        ones. Services and registries are not reloaded (as the Go agent)."""
        if config is None:
            config = reload_config(self.config)
        wanted = {rid: self._resolve_refer(u) for rid, u in config.refers.items()}
        keep: dict[str, Cluster] = {}
        stale: list[Cluster] = []
        for rid, cluster in self.clusters.items():
            if rid in self.dynamic_refers:
                keep[rid] = cluster
                continue
            url = wanted.get(rid)
            if url is not None and url.to_ext_info() == cluster.refer.to_ext_info():
                keep[rid] = cluster
            else:
                stale.append(cluster)
        fresh = {rid: u for rid, u in config.refers.items() if rid not in keep}
        self.clusters = keep
        await self._start_clusters(fresh)
        self.config = _replace_refers(self.config, config.refers)
        # the router no longer sees the removed refers; their calls in flight may finish
        for cluster in stale:
            task = asyncio.ensure_future(_close_later(cluster, ENDPOINT_CLOSE_DELAY))
            self._retired[task] = cluster
            task.add_done_callback(self._retired.pop)
        return {rid: c.refer.to_ext_info() for rid, c in self.clusters.items()}

    # ------------------------------------------------------------------ stop

    async def drain(self) -> None:
        """SIGTERM: unavailable in the registries, keep serving for the drain period
        (in-flight and late requests), then stop."""
        if self._draining:
            return
        self._draining = True
        log.info("draining for %.1f s", self.drain_seconds)
        await self.set_status(STATUS_UNAVAILABLE)
        await asyncio.sleep(self.drain_seconds)
        await self.stop(drain=True)

    async def stop(self, *, drain: bool = True) -> None:
        deadline = self.drain_seconds if drain else 0.5
        servers = [s for s in [self.client_server, *self.export_servers.values()] if s]
        closing = [s.close(deadline) for s in servers]
        if self.grpc_ingress is not None:
            closing.append(self.grpc_ingress.close(deadline))
        await asyncio.gather(*closing, return_exceptions=True)
        if self.http_proxy is not None:
            with contextlib.suppress(Exception):
                await self.http_proxy.close()
        with contextlib.suppress(Exception):
            await self.auth_policies.close()
        for provider in self.providers:
            with contextlib.suppress(Exception):
                await provider.close()
        for task in list(self._retired):
            task.cancel()
        for cluster in [*self.clusters.values(), *self._retired.values()]:
            with contextlib.suppress(Exception):
                await cluster.close()
        if self.snapshots is not None:
            with contextlib.suppress(Exception):
                await self.snapshots.close()
        for url in self.services + self.dynamic_services:
            for rid in url.registry:
                registry = self.registries.get(rid)
                if registry is not None:
                    with contextlib.suppress(Exception):
                        await registry.unregister(url)
        with contextlib.suppress(Exception):
            await self.telemetry.close()
        with contextlib.suppress(Exception):
            await self.filter_context.close()
        if self.management is not None:
            with contextlib.suppress(Exception):
                await self.management.close()
        for task in self._registry_starts.values():
            task.cancel()
        await asyncio.gather(*self._registry_starts.values(), return_exceptions=True)
        for registry in self.registries.values():
            with contextlib.suppress(Exception):
                await registry.close()
        pidfile = self.config.agent.pidfile
        if pidfile:
            with contextlib.suppress(OSError):
                Path(pidfile).unlink()
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


def _http_provider(
    url: URL, *, http_service: dict[str, Any], http_locations: dict[str, Any]
) -> Provider:
    # imported on first use: the HTTP client costs memory only to agents that need it
    from motanmesh.agent.http_provider import HttpProvider  # noqa: PLC0415

    return HttpProvider(url, http_service=http_service, http_locations=http_locations)


def _grpc_provider(url: URL) -> Provider:
    # imported on first use: grpcio is an optional dependency (the ``grpc`` extra); without
    # it the import raises ProviderError, which names the extra
    from motanmesh.agent.grpc_provider import GrpcProvider  # noqa: PLC0415

    return GrpcProvider(url)


async def _close_later(cluster: Cluster, delay: float) -> None:
    await asyncio.sleep(delay)
    await cluster.close()


def reload_config(current: Config) -> Config:
    """Load the config again from the same source, with the same command-line overrides."""
    fresh = load_config(current.source, pool=current.pool, application=current.application)
    a = current.agent
    return apply_overrides(fresh, idc=a.idc or None, local_ip=a.local_ip or None)


def _replace_refers(config: Config, refers: dict[str, URL]) -> Config:
    import dataclasses  # noqa: PLC0415

    return dataclasses.replace(config, refers=dict(refers))


__all__ = [
    "STATUS_AVAILABLE",
    "STATUS_UNAVAILABLE",
    "VERSION",
    "Agent",
    "AgentError",
    "ConfigError",
    "reload_config",
]
