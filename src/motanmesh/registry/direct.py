"""The ``direct`` registry: a fixed provider list written in the configuration.

The list comes from the registry URL's own host and port when both are set (the Go agent's
precedence), else from the ``address`` parameter (``ip:port,ip:port``), else from a
``unix:`` host. A registry naming nothing is valid and empty, as in the Go agent: services
registered there register nowhere, and refers using it have no providers (their calls are
answered ``E_NO_ENDPOINTS``). ``address`` entries may be:

* ``ip:port`` or ``host:port`` (IPv6 in brackets: ``[::1]:8002``);
* ``unix:///path/to.sock`` — a unix socket (port 0);
* ``group@<entry>`` — the provider serves another group than the refer's.

``discover`` and ``subscribe`` answer copies of the refer URL, one per entry, with the entry's
address (and group when given). Registration, agent nodes and commands are accepted and do
nothing; command writes raise ``RegistryError`` since there is nowhere to store them.
"""

from __future__ import annotations

from typing import ClassVar

from motanmesh.registry.base import (
    CommandListener,
    NotifyListener,
    Registry,
    RegistryError,
    call_listener,
)
from motanmesh.url import URL

__all__ = ["REGISTRY_TYPE", "DirectAddress", "DirectRegistry", "parse_direct_addresses"]

DirectAddress = tuple[str, str, int]
"""``(group, host, port)``; ``group`` is empty when the entry does not set one."""


def _parse_entry(entry: str) -> DirectAddress:
    group = ""
    if not entry.startswith("unix:") and "@" in entry:
        group, _, entry = entry.partition("@")
        if not group:
            raise RegistryError(f"direct registry entry {entry!r} has an empty group before '@'")
    if entry.startswith("unix:"):
        if entry.rstrip("/") == "unix:":
            raise RegistryError(f"direct registry entry {entry!r} has no socket path")
        return group, entry, 0
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise RegistryError(f"direct registry entry {entry!r} is not [ipv6]:port")
        port_text = rest[1:]
    else:
        host, colon, port_text = entry.partition(":")
        if not colon or ":" in port_text:
            raise RegistryError(f"direct registry entry {entry!r} is not ip:port")
    if not host or not (port_text.isascii() and port_text.isdigit()):
        raise RegistryError(f"direct registry entry {entry!r} is not ip:port")
    port = int(port_text)
    if not 0 < port <= 65535:
        raise RegistryError(f"direct registry entry {entry!r}: port out of range")
    return group, host, port


def _entry_text(group: str, host: str, port: int) -> str:
    if not port:
        text = host
    elif ":" in host:
        text = f"[{host}]:{port}"
    else:
        text = f"{host}:{port}"
    return f"{group}@{text}" if group else text


def parse_direct_addresses(url: URL) -> list[DirectAddress]:
    """The provider addresses a ``direct`` registry URL names (maybe none).

    ``RegistryError`` for an ``address`` entry that is not an address.
    """
    text = url.get("address")
    if url.host and url.port and not url.host.startswith("unix:"):
        return [("", url.host, url.port)]
    if text:
        entries = [part.strip() for part in text.split(",")]
        return [_parse_entry(entry) for entry in entries if entry]
    if url.host.startswith("unix:"):
        return [("", url.host, 0)]
    return []


class DirectRegistry(Registry):
    """A static provider list; nothing is ever watched or written."""

    supports_commands: ClassVar[bool] = False

    def __init__(self, url: URL) -> None:
        super().__init__(url)
        self.addresses: list[DirectAddress] = parse_direct_addresses(url)

    @property
    def name(self) -> str:
        return "direct://" + ",".join(_entry_text(*address) for address in self.addresses)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def providers(self, refer: URL) -> list[URL]:
        """Copies of ``refer`` pointing at each configured address."""
        return [
            refer.copy(host=host, port=port, group=group or refer.group)
            for group, host, port in self.addresses
        ]

    async def discover(self, url: URL) -> list[URL]:
        return self.providers(url)

    async def subscribe(self, url: URL, listener: NotifyListener) -> None:
        call_listener(listener, self.providers(url))

    async def unsubscribe(self, url: URL, listener: NotifyListener) -> None:
        return None

    async def register(self, url: URL) -> None:
        return None

    async def unregister(self, url: URL) -> None:
        return None

    async def available(self, url: URL | None = None) -> None:
        return None

    async def unavailable(self, url: URL | None = None) -> None:
        return None

    async def register_agent(self, url: URL) -> None:
        return None

    async def unregister_agent(self, url: URL) -> None:
        return None

    async def subscribe_command(self, group: str, listener: CommandListener) -> None:
        return None

    async def unsubscribe_command(self, group: str, listener: CommandListener) -> None:
        return None

    async def subscribe_agent_command(self, application: str, listener: CommandListener) -> None:
        return None

    async def unsubscribe_agent_command(self, application: str, listener: CommandListener) -> None:
        return None

    async def get_command(self, group: str) -> str | None:
        return None

    async def get_agent_command(self, application: str) -> str | None:
        return None

    async def set_command(self, group: str, data: str | None) -> None:
        raise RegistryError("the direct registry does not store commands")

    async def set_agent_command(self, application: str, data: str | None) -> None:
        raise RegistryError("the direct registry does not store commands")


REGISTRY_TYPE = DirectRegistry
"""What ``create_registry`` builds for this protocol."""
