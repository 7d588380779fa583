"""What the management API may see and do of an agent: its status constants, its error type,
and the narrow :class:`ManagedAgent` interface. The management server depends on this module
only, never on :mod:`motanmesh.agent.agent`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Protocol

from motanmesh import __version__
from motanmesh.agent.dispatcher import ServerDispatcher
from motanmesh.agent.router import ClientRouter
from motanmesh.cluster.cluster import Cluster
from motanmesh.config.model import Config
from motanmesh.filters.base import FilterContext
from motanmesh.graph import DependencyGraph
from motanmesh.registry.base import Registry
from motanmesh.switcher import SwitcherManager
from motanmesh.telemetry.reporter import Telemetry
from motanmesh.transport.server import MotanServer
from motanmesh.url import URL

__all__ = ["STATUS_AVAILABLE", "STATUS_UNAVAILABLE", "VERSION", "AgentError", "ManagedAgent"]

STATUS_AVAILABLE: Final = 200
STATUS_UNAVAILABLE: Final = 503
VERSION: Final = __version__


class AgentError(Exception):
    """The agent cannot start as configured (bad provider, port in use, ...)."""


class ManagedAgent(Protocol):
    """The agent as the management API sees it."""

    config: Config
    application: str
    local_ip: str
    status: int
    recover: bool
    start_time: float
    switchers: SwitcherManager
    registries: dict[str, Registry]
    clusters: dict[str, Cluster]
    dispatchers: dict[int, ServerDispatcher]
    export_addresses: dict[int, tuple[str, int]]
    services: list[URL]
    dynamic_services: list[URL]
    client_address: tuple[str, int] | None
    #: the servers of the client port and of each export port (their connections and limits)
    client_server: MotanServer | None
    export_servers: dict[int, MotanServer]
    #: the client port's request handler (``notFoundServiceCount``)
    router: ClientRouter
    filter_context: FilterContext
    #: call metrics and runtime gauges (``/metrics``, ``/status``)
    telemetry: Telemetry
    #: the HTTP forward proxy when enabled (``motanmesh.ingress.http.HttpProxyServer``)
    http_proxy: Any
    #: who calls what (``/debug/graph``); ``None`` when ``dependencyGraph`` is off
    graph: DependencyGraph | None

    @property
    def runtime_dir(self) -> Path: ...

    async def set_status(self, status: int) -> None: ...

    async def export_service(
        self, url: URL, *, what: str = "service", dynamic: bool = False
    ) -> URL: ...

    async def unexport_service(self, registered: URL) -> bool: ...

    async def subscribe_refer(self, rid: str, refer: URL) -> None: ...

    async def reload_clusters(self, config: Config | None = None) -> Mapping[str, str]: ...
