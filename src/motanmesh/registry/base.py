"""The registry interface shared by every discovery backend.

A registry knows service URL lists and command strings, nothing else. Every backend
(``direct``, ``embedded``, ``zookeeper``, ``etcd``) speaks the same logical node layout::

    /motan/<group>/<service>/server/<ip:port>             available providers (ephemeral)
    /motan/<group>/<service>/unavailableServer/<ip:port>  registered but offline (ephemeral)
    /motan/<group>/<service>/client/<ip:port>             subscribers (ephemeral, nodeType=referer)
    /motan/<group>/<service>/auth                         access policy JSON (persistent)
    /motan/<group>/command                                service command JSON (persistent)
    /motan/agent/<application>/node/<ip:mport>            agent nodes (ephemeral)
    /motan/agent/<application>/command                    agent command JSON (persistent)

Node data is the URL text form (``URL.to_ext_info``).

Keep last known good
--------------------
A subscriber is never told "there are no providers" because providers *vanished* (a lease or
session expired, a process died, the backend is unreachable): an empty list is swallowed and
listeners keep the last non-empty list they received. The one exception is a backend that can
tell that every provider of the last notified list left on purpose, through ``unregister``; then
the empty list is notified, so clients stop calling services that were deliberately removed.
Going offline through ``unavailable`` (``/503``) does not count: it is a soft signal and the
last list is kept, exactly as for a vanished provider. Partial changes are always notified.
``ProviderView`` implements this rule for all backends.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import ClassVar, Protocol, Self, TypeVar

from motanmesh.url import URL

__all__ = [
    "NODE_AGENT",
    "NODE_CLIENT",
    "NODE_SERVER",
    "NODE_UNAVAILABLE_SERVER",
    "ROOT",
    "CommandListener",
    "CommandView",
    "NodeRegistry",
    "NotifyListener",
    "ProviderView",
    "Registration",
    "RegistrationStatus",
    "Registry",
    "RegistryError",
    "RegistryStatus",
    "agent_command_path",
    "agent_node_path",
    "agent_node_url",
    "auth_policy_path",
    "call_listener",
    "command_path",
    "node_path",
    "node_url",
    "registrations_to_move",
    "service_dir",
    "statuses_of",
]

log = logging.getLogger("motanmesh.registry")

NotifyListener = Callable[[list[URL]], None]
"""Receives the full list of available provider URLs of one subscribed service."""
CommandListener = Callable[[str | None], None]
"""Receives a command string; ``None`` when the command was removed."""

ROOT = "/motan"
NODE_SERVER = "server"
NODE_UNAVAILABLE_SERVER = "unavailableServer"
NODE_CLIENT = "client"
NODE_AGENT = "agent"


class RegistryError(Exception):
    """A registry could not be created, reached, read or written."""


class RegistryStatus(StrEnum):
    """Registration state of one service URL, as reported by ``/registry/status``."""

    REGISTER_SUCCESS = "register-success"
    REGISTER_FAILED = "register-failed"
    UNREGISTER_SUCCESS = "unregister-success"
    UNREGISTER_FAILED = "unregister-failed"
    NOT_REGISTER = "not-register"


@dataclass(frozen=True, slots=True)
class RegistrationStatus:
    """One row of ``/registry/status``: a registered service URL in one registry."""

    group: str
    service: str
    registry: str
    status: RegistryStatus
    err_msg: str = ""
    is_check: bool = False

    def to_dict(self) -> dict[str, str | bool]:
        """The JSON object of the management API."""
        return {
            "group": self.group,
            "service": self.service,
            "registry": self.registry,
            "status": self.status.value,
            "errMsg": self.err_msg,
            "isCheck": self.is_check,
        }


# ---------------------------------------------------------------------------- layout


def service_dir(group: str, path: str) -> str:
    """``/motan/<group>/<service>``; both parts must be non-empty."""
    if not group or not path:
        raise RegistryError(f"a registry node needs a group and a service (got {group!r}/{path!r})")
    return f"{ROOT}/{group}/{path}"


def node_path(url: URL, node_type: str) -> str:
    """``/motan/<group>/<service>/<node_type>/<address>`` for a service or refer URL."""
    return f"{service_dir(url.group, url.path)}/{node_type}/{url.address}"


def command_path(group: str) -> str:
    """The persistent command node of a service group."""
    if not group:
        raise RegistryError("a command node needs a group")
    return f"{ROOT}/{group}/command"


def auth_policy_path(group: str, path: str) -> str:
    """``/motan/<group>/<service>/auth``: the persistent access policy of a service (the
    ``auth`` filter; JSON, :mod:`motanmesh.filters.auth_policy`)."""
    return f"{service_dir(group, path)}/auth"


def _agent_dir(application: str) -> str:
    if not application:
        raise RegistryError("an agent node needs an application name")
    return f"{ROOT}/agent/{application}"


def agent_command_path(application: str) -> str:
    """The persistent agent-level command node of an application."""
    return f"{_agent_dir(application)}/command"


def agent_node_path(url: URL) -> str:
    """``/motan/agent/<application>/node/<ip:mport>`` for an agent URL.

    The port is the ``mport`` parameter (the management port) when set, else the URL's port.
    """
    mport = url.get_int("mport", url.port)
    return f"{_agent_dir(url.application)}/node/{url.host}:{mport}"


def node_url(name: str, data: str, refer: URL) -> URL | None:
    """The provider URL of one ``server`` child node, or ``None`` if it cannot be read.

    ``data`` is the URL text form; when it is empty the address comes from the node name
    (``ip:port``, port 80 when missing) on a copy of ``refer``.
    """
    if data:
        try:
            return URL.parse(data)
        except ValueError:
            log.warning("registry node %s holds an unreadable URL: %r", name, data)
            return None
    host, _, port_text = name.rpartition(":")
    if not host:
        host, port_text = name, ""
    if port_text and not (port_text.isdigit() and int(port_text) <= 65535):
        log.warning("registry node name %r is not ip:port", name)
        return None
    return refer.copy(host=host, port=int(port_text) if port_text else 80)


# ---------------------------------------------------------------------------- listeners


_T = TypeVar("_T")


def call_listener(listener: Callable[[_T], None], value: _T) -> None:
    """Call a listener; an exception it raises is logged, never propagated."""
    try:
        listener(value)
    except Exception:
        log.exception("registry listener %r failed", listener)


class ProviderView:
    """The listeners of one subscribed service and the provider list they last received.

    ``offer`` applies the keep-last-known-good rule described in the module docstring.
    """

    __slots__ = ("_key", "listeners", "urls")

    def __init__(self, urls: list[URL] | None = None) -> None:
        self.listeners: list[NotifyListener] = []
        self.urls: list[URL] = []
        self._key: tuple[str, ...] = ()
        if urls:
            self.urls = sorted(urls, key=URL.to_ext_info)
            self._key = tuple(u.to_ext_info() for u in self.urls)

    def offer(self, urls: list[URL], *, all_withdrawn: bool = False) -> bool:
        """Take a fresh provider list; notify every listener if it must. True if notified.

        ``all_withdrawn`` tells that every provider of the current list was unregistered on
        purpose; only then is an empty list passed on.
        """
        ordered = sorted(urls, key=URL.to_ext_info)
        key = tuple(u.to_ext_info() for u in ordered)
        if key == self._key:
            return False
        if not ordered and not all_withdrawn:
            log.info("registry reports no providers; keeping the last %d", len(self.urls))
            return False
        self.urls, self._key = ordered, key
        for listener in list(self.listeners):
            call_listener(listener, list(ordered))
        return True

    def add(self, listener: NotifyListener) -> None:
        """Add a listener and hand it the current list right away when there is one."""
        self.listeners.append(listener)
        if self.urls:
            call_listener(listener, list(self.urls))

    def remove(self, listener: NotifyListener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)


class CommandView:
    """The listeners of one command node and the value they last received."""

    __slots__ = ("listeners", "value")

    def __init__(self, value: str | None = None) -> None:
        self.listeners: list[CommandListener] = []
        self.value = value or None

    def offer(self, value: str | None) -> bool:
        """Take a fresh value (empty counts as ``None``); notify on change. True if notified."""
        value = value or None
        if value == self.value:
            return False
        self.value = value
        for listener in list(self.listeners):
            call_listener(listener, value)
        return True

    def add(self, listener: CommandListener) -> None:
        """Add a listener and hand it the current command right away when there is one."""
        self.listeners.append(listener)
        if self.value is not None:
            call_listener(listener, self.value)

    def remove(self, listener: CommandListener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)


# ---------------------------------------------------------------------------- interface


@dataclass
class Registration:
    """One URL registered through a registry instance, with its wanted state."""

    url: URL
    available: bool = False
    status: RegistryStatus = RegistryStatus.NOT_REGISTER
    err_msg: str = ""


def registrations_to_move(
    registrations: dict[str, Registration], url: URL | None
) -> list[Registration]:
    """The registrations an ``available``/``unavailable`` call acts on: every one for
    ``None``, else the one of ``url`` (recorded first when it is new or changed)."""
    if url is None:
        return list(registrations.values())
    server = node_path(url, NODE_SERVER)
    reg = registrations.get(server)
    if reg is None or reg.url != url:
        reg = registrations[server] = Registration(url)
    return [reg]


class _RegistrationLike(Protocol):
    url: URL
    status: RegistryStatus
    err_msg: str


def statuses_of(
    registry: str, registrations: Iterable[_RegistrationLike]
) -> list[RegistrationStatus]:
    """``/registry/status`` rows for the registrations of one registry."""
    return [
        RegistrationStatus(
            group=reg.url.group,
            service=reg.url.path,
            registry=registry,
            status=reg.status,
            err_msg=reg.err_msg,
            is_check=reg.url.get_bool("check"),
        )
        for reg in registrations
    ]


class Registry(ABC):
    """A discovery backend. All methods run on the event loop and never block it.

    ``register`` puts a service into ``unavailableServer`` (the agent starts in 503);
    ``available``/``unavailable`` move it between ``server`` and ``unavailableServer``
    (``/200`` and ``/503`` pass ``None``: every URL registered here). Listeners are plain
    callables invoked on the event loop; an exception in one is logged and ignored.
    """

    supports_commands: ClassVar[bool] = False

    def __init__(self, url: URL) -> None:
        self.url = url

    @property
    def name(self) -> str:
        """How this registry appears in status reports and logs."""
        return f"{self.url.protocol}://{self.url.address}"

    @property
    def reachable(self) -> bool:
        """Whether the backend answers right now (backends with a connection override it)."""
        return True

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def start(self) -> None:
        """Connect; raise ``RegistryError`` with a clear message when the backend is unusable."""

    @abstractmethod
    async def close(self) -> None:
        """Stop watching and drop this instance's ephemeral nodes."""

    async def refresh(self) -> None:  # noqa: B027 - optional hook
        """Re-read every watched node now and notify changes (backends that poll)."""

    # -- services

    @abstractmethod
    async def register(self, url: URL) -> None:
        """Register a service URL as unavailable."""

    @abstractmethod
    async def unregister(self, url: URL) -> None:
        """Remove a service URL (both ``server`` and ``unavailableServer`` nodes)."""

    @abstractmethod
    async def available(self, url: URL | None = None) -> None:
        """Move one URL, or every registered URL, to ``server``."""

    @abstractmethod
    async def unavailable(self, url: URL | None = None) -> None:
        """Move one URL, or every registered URL, to ``unavailableServer``."""

    @abstractmethod
    async def subscribe(self, url: URL, listener: NotifyListener) -> None:
        """Watch the providers of a refer URL's group and path.

        The listener receives the full available list on every change, and the current list
        right away when it is not empty. Also records a ``client`` node for the refer.
        """

    @abstractmethod
    async def unsubscribe(self, url: URL, listener: NotifyListener) -> None: ...

    @abstractmethod
    async def discover(self, url: URL) -> list[URL]:
        """The available providers of a refer URL's group and path, read now."""

    def status(self) -> list[RegistrationStatus]:
        """One entry per service URL registered here."""
        return []

    # -- commands and agents

    @abstractmethod
    async def subscribe_command(self, group: str, listener: CommandListener) -> None: ...

    @abstractmethod
    async def unsubscribe_command(self, group: str, listener: CommandListener) -> None: ...

    @abstractmethod
    async def subscribe_agent_command(self, application: str, listener: CommandListener) -> None:
        """Watch ``/motan/agent/<application>/command``."""

    @abstractmethod
    async def unsubscribe_agent_command(
        self, application: str, listener: CommandListener
    ) -> None: ...

    @abstractmethod
    async def get_command(self, group: str) -> str | None: ...

    @abstractmethod
    async def set_command(self, group: str, data: str | None) -> None:
        """Write a group's command; ``None`` deletes the node."""

    @abstractmethod
    async def get_agent_command(self, application: str) -> str | None: ...

    @abstractmethod
    async def set_agent_command(self, application: str, data: str | None) -> None: ...

    @abstractmethod
    async def register_agent(self, url: URL) -> None:
        """Record the agent node ``/motan/agent/<application>/node/<ip:mport>``."""

    @abstractmethod
    async def unregister_agent(self, url: URL) -> None: ...

    # -- access policies (registries without commands have none)

    async def subscribe_auth_policy(  # noqa: B027 (optional: no policies here)
        self, group: str, path: str, listener: CommandListener
    ) -> None:
        """Watch ``/motan/<group>/<service>/auth``: the listener receives its text now and on
        every change, ``None`` when it is removed."""

    async def unsubscribe_auth_policy(  # noqa: B027 (optional: no policies here)
        self, group: str, path: str, listener: CommandListener
    ) -> None:
        """Stop watching a service's access policy."""

    async def get_auth_policy(self, group: str, path: str) -> str | None:
        """A service's access policy as stored; ``None`` when there is none."""
        return None

    async def set_auth_policy(self, group: str, path: str, data: str | None) -> None:
        """Write a service's access policy; ``None`` deletes it."""
        raise RegistryError(f"{self.name} cannot store access policies")

    async def agent_nodes(self) -> list[URL]:
        """Every live agent node (``/motan/agent/<application>/node/<ip:mport>``) of every
        application, read now. Backends that cannot list nodes return ``[]``."""
        return []


def agent_node_url(path: str, data: str) -> URL | None:
    """The agent URL of one node under ``/motan/agent/``, or ``None`` when ``path`` is not an
    agent node (``/motan/agent/<application>/node/<ip:mport>``) or cannot be read."""
    parts = path[len(ROOT) + 1 :].split("/") if path.startswith(ROOT + "/") else []
    if len(parts) != 4 or parts[0] != NODE_AGENT or parts[2] != "node" or not parts[1]:
        return None
    host, _, port = parts[3].rpartition(":")
    if data:
        try:
            return URL.parse(data)
        except ValueError:
            log.warning("agent node %s holds an unreadable URL: %r", path, data)
            return None
    if not host or not port.isdigit():
        return None
    return URL("motan2", host, int(port), "", parts[1], {"application": parts[1]})


class NodeRegistry(Registry):
    """A registry that stores commands as nodes of the Motan layout: the command API maps
    groups and applications to node paths over four primitives a backend implements."""

    supports_commands: ClassVar[bool] = True

    @abstractmethod
    async def _watch_node(self, path: str, listener: CommandListener) -> None:
        """Notify ``listener`` with the node's data now and on every change."""

    @abstractmethod
    async def _unwatch_node(self, path: str, listener: CommandListener) -> None: ...

    @abstractmethod
    async def _get_node(self, path: str) -> str | None: ...

    @abstractmethod
    async def _set_node(self, path: str, data: str | None) -> None:
        """Write a persistent node; ``None`` deletes it."""

    async def subscribe_command(self, group: str, listener: CommandListener) -> None:
        await self._watch_node(command_path(group), listener)

    async def unsubscribe_command(self, group: str, listener: CommandListener) -> None:
        await self._unwatch_node(command_path(group), listener)

    async def subscribe_agent_command(self, application: str, listener: CommandListener) -> None:
        await self._watch_node(agent_command_path(application), listener)

    async def unsubscribe_agent_command(self, application: str, listener: CommandListener) -> None:
        await self._unwatch_node(agent_command_path(application), listener)

    async def get_command(self, group: str) -> str | None:
        return await self._get_node(command_path(group))

    async def set_command(self, group: str, data: str | None) -> None:
        await self._set_node(command_path(group), data)

    async def get_agent_command(self, application: str) -> str | None:
        return await self._get_node(agent_command_path(application))

    async def set_agent_command(self, application: str, data: str | None) -> None:
        await self._set_node(agent_command_path(application), data)

    async def subscribe_auth_policy(self, group: str, path: str, listener: CommandListener) -> None:
        await self._watch_node(auth_policy_path(group, path), listener)

    async def unsubscribe_auth_policy(
        self, group: str, path: str, listener: CommandListener
    ) -> None:
        await self._unwatch_node(auth_policy_path(group, path), listener)

    async def get_auth_policy(self, group: str, path: str) -> str | None:
        return await self._get_node(auth_policy_path(group, path))

    async def set_auth_policy(self, group: str, path: str, data: str | None) -> None:
        await self._set_node(auth_policy_path(group, path), data)
