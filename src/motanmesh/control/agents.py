"""Talking to running agents through their management API (switchers, refers, config).

Addresses are ``host:port`` (the agent's ``mport``), ``http://host:port``, or
``unix:///path.sock`` for an agent listening on ``managementUnixSock``. A token for agents that
listen beyond loopback is sent as the ``Token`` header.

:class:`AgentUnreachableError` means no answer at all (connection refused, timeout);
:class:`ManagementError` means the agent answered with an error status.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from motanmesh.cluster.command import EffectiveCommand, effective_command
from motanmesh.cluster.patterns import PatternMode
from motanmesh.config.loader import load_config
from motanmesh.registry.base import Registry
from motanmesh.url import URL

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "AgentStatus",
    "AgentUnreachableError",
    "ConfigRegistries",
    "ManagementClient",
    "ManagementError",
    "ReferStatus",
    "attach_commands",
    "collect_status",
    "parse_bool",
    "registries_from_config",
    "registries_from_text",
]

_TRUE = frozenset({"1", "t", "true", "yes", "on"})
_FALSE = frozenset({"0", "f", "false", "no", "off"})


class AgentUnreachableError(Exception):
    """The agent's management API did not answer."""


class ManagementError(Exception):
    """The agent answered with an error status."""

    def __init__(self, status: int, body: str, what: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {body.strip()}")
        self.status = status
        self.body = body


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{text!r} is not true or false")


class ManagementClient:
    """An HTTP client for one agent's management API (use ``async with``)."""

    def __init__(self, address: str, *, token: str = "", timeout: float = 5.0) -> None:
        self.address = address
        self.token = token
        self.timeout = timeout
        if address.startswith("unix://"):
            self._unix: str | None = address[len("unix://") :]
            self._base = "http://localhost"
        else:
            self._unix = None
            self._base = address if "://" in address else f"http://{address}"
            self._base = self._base.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        # imported here: the registry side of ``ctl`` starts without loading aiohttp
        import aiohttp  # noqa: PLC0415

        connector = aiohttp.UnixConnector(path=self._unix) if self._unix else None
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout)
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, path: str, params: dict[str, str] | None = None) -> tuple[int, str]:
        """``GET path``: the status and the body text."""
        if self._session is None:
            raise RuntimeError("ManagementClient used outside 'async with'")
        import aiohttp  # noqa: PLC0415 - already loaded by __aenter__

        headers = {"Token": self.token} if self.token else {}
        try:
            async with self._session.get(self._base + path, params=params, headers=headers) as resp:
                return resp.status, await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            detail = str(exc) or type(exc).__name__
            raise AgentUnreachableError(f"agent {self.address} does not answer: {detail}") from None

    async def text(self, path: str, params: dict[str, str] | None = None) -> str:
        status, body = await self.request(path, params)
        if status >= 300:
            raise ManagementError(status, body, f"agent {self.address} {path}")
        return body

    async def json(self, path: str, params: dict[str, str] | None = None) -> Any:
        body = await self.text(path, params)
        try:
            return json.loads(body)
        except ValueError:
            raise ManagementError(
                200, body[:200], f"agent {self.address} {path}: not JSON"
            ) from None

    async def switchers(self) -> dict[str, bool]:
        data = await self.json("/switcher/getAll")
        if not isinstance(data, dict):
            raise ManagementError(200, str(data)[:200], f"agent {self.address}: bad switcher list")
        return {str(k): bool(v) for k, v in data.items()}

    async def set_switcher(self, name: str, value: bool) -> str:
        params = {"name": name, "value": "true" if value else "false"}
        return (await self.text("/switcher/set", params)).strip()


# ---------------------------------------------------------------------------- status


def _command_lines(info: Mapping[str, Any], indent: str) -> list[str]:
    """An effective command (``EffectiveCommand.to_info()`` form) for people."""
    source = info.get("source") or {}
    out = [f"{indent}{part}: {applied}" for part, applied in source.items()]
    if not out:
        out.append(f"{indent}no command applies")
    if info.get("mergeGroups"):
        weights = info.get("weights") or "-"
        out.append(f"{indent}  groups {', '.join(info['mergeGroups'])}, weights {weights}")
    if info.get("routeRules"):
        out.append(f"{indent}  route rules: {'; '.join(info['routeRules'])}")
    if info.get("switchers"):
        values = ", ".join(f"{k}={'true' if v else 'false'}" for k, v in info["switchers"].items())
        out.append(f"{indent}  switchers: {values}")
    out.extend(f"{indent}  note: {note}" for note in info.get("notes") or ())
    return out


@dataclass(slots=True)
class ReferStatus:
    """One refer of an agent: its providers, the commands the agent applies (``applied``,
    from its runtime info, when it reports them) and the commands the registry holds for it
    (``effective``, worked out here)."""

    id: str
    refer: URL
    available: bool
    endpoints: list[dict[str, Any]]
    applied: dict[str, Any] | None = None
    effective: EffectiveCommand | None = None
    note: str = ""

    @property
    def in_sync(self) -> bool | None:
        """Whether the agent applies what the registry holds (``None``: cannot tell)."""
        if self.applied is None or self.effective is None:
            return None
        return self.applied == self.effective.to_info()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.refer.path,
            "group": self.refer.group,
            "available": self.available,
            "providers": self.endpoints,
            "applied": self.applied,
            "commands": None if self.effective is None else self.effective.to_info(),
            "inSync": self.in_sync,
            "note": self.note,
        }

    def lines(self) -> list[str]:
        state = "available" if self.available else "NOT AVAILABLE (degraded)"
        out = [f"refer {self.id}: {self.refer.path} group {self.refer.group} - {state}"]
        out.append(f"  providers ({len(self.endpoints)}):")
        for ep in self.endpoints:
            up = "up" if ep.get("available", True) else "down"
            out.append(f"    {ep.get('address', '?')} ({ep.get('group', '')}) {up}")
        if self.applied is not None:
            out.append("  applied by the agent:")
            out.extend(_command_lines(self.applied, "    "))
        if self.effective is not None:
            if self.in_sync:
                out.append("  the registry holds the same commands")
            else:
                out.append("  commands in the registry:")
                out.extend(_command_lines(self.effective.to_info(), "    "))
                if self.in_sync is False:
                    out.append("  note: the agent has not applied the registry's commands (yet)")
        if self.applied is None and self.effective is None:
            out.append("  commands: unknown")
        if self.note:
            out.append(f"  note: {self.note}")
        return out


@dataclass(slots=True)
class AgentStatus:
    address: str
    refers: list[ReferStatus] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"agent": self.address, "refers": [r.to_dict() for r in self.refers]}

    def lines(self) -> list[str]:
        out = [f"agent {self.address}: {len(self.refers)} refer(s)"]
        for refer in self.refers:
            out.extend(refer.lines())
        return out


def _refer_status(
    rid: str, cluster: Mapping[str, Any], availability: Mapping[str, bool]
) -> ReferStatus | None:
    try:
        refer = URL.parse(str(cluster.get("url", "")))
    except ValueError:
        return None
    endpoints = []
    for ep in cluster.get("endpoints") or []:
        if isinstance(ep, dict):
            entry = dict(ep)
            if "group" not in entry:
                try:
                    entry["group"] = URL.parse(str(ep.get("url", ""))).group
                except ValueError:
                    entry["group"] = ""
            endpoints.append(entry)
    available = availability.get(refer.cluster_key, bool(cluster.get("available", True)))
    commands = cluster.get("commands")
    applied = commands.get("effective") if isinstance(commands, dict) else None
    return ReferStatus(
        rid, refer, available, endpoints, applied if isinstance(applied, dict) else None
    )


async def collect_status(client: ManagementClient) -> AgentStatus:
    """The refers of an agent (``/runtime/info`` clusters, ``/getReferService`` status)."""
    info = await client.json("/runtime/info", {"keys": "clusters"})
    services = await client.json("/getReferService")
    availability: dict[str, bool] = {}
    body = services.get("body") if isinstance(services, dict) else None
    for item in body.get("service") or [] if isinstance(body, dict) else []:
        if isinstance(item, dict) and "name" in item:
            availability[str(item["name"])] = bool(item.get("status", True))
    status = AgentStatus(client.address)
    clusters = info.get("clusters") if isinstance(info, dict) else None
    for rid, cluster in sorted((clusters or {}).items()):
        if isinstance(cluster, dict):
            refer = _refer_status(str(rid), cluster, availability)
            if refer is not None:
                status.refers.append(refer)
    return status


async def attach_commands(
    refer: ReferStatus,
    registry: Registry,
    *,
    agent_registry: Registry | None = None,
    application: str = "",
    pattern_mode: PatternMode = "auto",
) -> None:
    """Work out the commands the registries hold for ``refer``: the service command from
    ``registry``, the agent command of ``application`` from ``agent_registry`` (default
    ``registry``)."""
    holder = agent_registry or registry
    agent_text = await holder.get_agent_command(application) if application else None
    service_text = await registry.get_command(refer.refer.group)
    refer.effective = effective_command(
        refer.refer, agent_text, service_text, pattern_mode=pattern_mode
    )


# ---------------------------------------------------------------------------- agent configs


@dataclass(frozen=True, slots=True)
class ConfigRegistries:
    """The registries of an agent config, which one holds agent commands, and the app name."""

    registries: dict[str, URL]
    agent_registry: str
    application: str

    @property
    def agent_registry_url(self) -> URL | None:
        """The registry that holds the agent command (``motan-agent.registry``)."""
        return self.registries.get(self.agent_registry)

    def for_refer(self, refer: URL) -> URL | None:
        """The first registry of ``refer`` that keeps commands."""
        for rid in refer.registry:
            url = self.registries.get(rid)
            if url is not None and url.protocol not in ("direct", "local", "mesh"):
                return url
        return None

    def pick(self, registry_id: str = "") -> URL:
        """The registry named ``registry_id``; else the agent's ``registry``; else the only
        command-capable one. ``ValueError`` says why none fits."""
        if registry_id:
            if registry_id not in self.registries:
                known = ", ".join(self.registries) or "none"
                raise ValueError(f"no registry {registry_id!r} in the config (known: {known})")
            return self.registries[registry_id]
        if self.agent_registry in self.registries:
            return self.registries[self.agent_registry]
        capable = [
            rid for rid, u in self.registries.items() if u.protocol not in ("direct", "local")
        ]
        if len(capable) == 1:
            return self.registries[capable[0]]
        listed = ", ".join(capable) or "none"
        raise ValueError(f"pick a registry with --registry-id (command registries: {listed})")


def registries_from_config(path: str) -> ConfigRegistries:
    """Read an agent config file (``ConfigError`` when it is invalid)."""
    config = load_config(path)
    return ConfigRegistries(
        dict(config.registries), config.agent.registry, config.agent.application
    )


def registries_from_text(text: str) -> ConfigRegistries:
    """An agent's merged config as served by ``/getConfig`` (YAML text)."""
    fd, path = tempfile.mkstemp(prefix="motanmesh-ctl-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        return registries_from_config(path)
    finally:
        os.unlink(path)
