"""Validated configuration objects. Treat them as immutable; derive new ones with
``dataclasses.replace`` (``apply_overrides`` does)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from motanmesh.config.errors import KeyPath
from motanmesh.url import URL

__all__ = ["AgentConfig", "Config"]


@dataclass(frozen=True)
class AgentConfig:
    """The ``motan-agent`` section.

    ``host`` (the bind address of the client-side port) defaults to loopback: the local
    application is the only intended caller. ``params`` holds every other key of the section
    as a string, the way it would appear as an agent URL parameter.
    """

    port: int = 9981
    eport: int = 9982
    hport: int = 9983
    mport: int = 8002
    host: str = "127.0.0.1"
    unix_sock: str = ""
    pidfile: str = "./agent.pid"
    runtime_dir: str = "./agent_runtime"
    snapshot_dir: str = "./snapshot"
    application: str = "default_agent_group"
    registry: str = ""
    log_dir: str = "."
    init_cluster_timeout_ms: int = 10000
    management_unix_sock: str = ""
    management_port_range: tuple[int, int] | None = None
    http_proxy_enable: bool = False
    grpc_port: int = 0
    """``grpcPort``: the gRPC ingress port on ``host``; 0 (the default) leaves it closed."""
    default_filter: list[str] = field(default_factory=list)
    global_filter: list[str] = field(default_factory=list)
    idc: str = ""
    """Value of ``-idc``; replaces ``${idc}`` in refer groups (done by the cluster layer)."""
    local_ip: str = ""
    """Value of ``-localIP``; empty means "detect"."""
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    """Everything the agent reads from its YAML, validated.

    * ``registries``: registry id → URL (``protocol``/``host``/``port`` fields; ``address``
      and the rest as parameters; ``conf-id`` = the id).
    * ``refers``: refer id → URL (``protocol`` defaults to ``motan2``; ``conf-id`` = the id;
      ``filter`` = the final filter set).
    * ``services``: service id → one URL per group (a comma-separated ``group`` fans out).
      ``protocol``/``port`` come from ``export``; ``provider`` is filled from ``proxy``.
    * ``raw``: the merged document after ``dynamic-param`` substitution (for ``/getConfig``).
    * ``files``: the files read, in merge order.
    """

    agent: AgentConfig
    registries: dict[str, URL]
    refers: dict[str, URL]
    services: dict[str, list[URL]]
    switchers: dict[str, bool]
    metrics: dict[str, Any]
    dynamic_params: dict[str, Any]
    http_client: dict[str, Any]
    http_locations: dict[str, Any]
    http_service: dict[str, Any]
    raw: dict[str, Any]
    files: list[str]
    source: str
    pool: str = ""
    application: str = ""
    warnings: list[str] = field(default_factory=list)
    key_files: dict[tuple[str | int, ...], str] = field(default_factory=dict, repr=False)

    def file_of(self, path: KeyPath) -> str:
        """The file that last set ``path`` (or its nearest parent)."""
        key = tuple(path)
        while key:
            found = self.key_files.get(key)
            if found is not None:
                return found
            key = key[:-1]
        return self.files[-1] if self.files else self.source
