"""The server side of the agent: export ports dispatching to providers by ``group_path``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, Protocol

from motanmesh.cluster.errors import error_response
from motanmesh.graph import DependencyGraph
from motanmesh.transport.server import Responder, ServerConnection
from motanmesh.url import URL
from motanmesh.wire.frame import (
    ERRTYPE_SERVICE,
    FLAG_PROXY,
    M_FRAMEWORK_SERVICE,
    M_GROUP,
    M_PATH,
    Frame,
)
from motanmesh.wire.passthrough import forward

log = logging.getLogger("motanmesh.agent")

E_PROVIDER_NOT_EXIST: Final = 404
E_NOT_SUPPORTED: Final = 501
PROVIDER_NOT_EXIST: Final = "provider not exist serviceKey="


class Provider(Protocol):
    """Serves the requests of one exported service (one group and path)."""

    url: URL

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        """Answer ``frame`` through ``respond`` (now or later), with the request's id."""
        ...


#: what serves one request of a provider: the provider itself, or its ``entry`` attribute when
#: it has one (a compiled callable, so the request path skips the provider's own ``__call__``)
Entry = Callable[[Frame, Responder, ServerConnection], None]


class ServerDispatcher:
    """Transport request handler for an export port: ``M_g + "_" + M_p`` → provider."""

    def __init__(self) -> None:
        self.providers: dict[str, Provider] = {}
        self._entries: dict[str, Entry] = {}
        #: requests that found no provider (the Go agent's ``not_found_provider_count``)
        self.not_found_count = 0
        #: records each provider's answers when the dependency graph is on
        self.graph: DependencyGraph | None = None

    def add(self, provider: Provider) -> None:
        key = provider.url.group_path
        self.providers[key] = provider
        self._entries[key] = getattr(provider, "entry", None) or provider

    def remove(self, url: URL) -> Provider | None:
        self._entries.pop(url.group_path, None)
        return self.providers.pop(url.group_path, None)

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        meta = frame.metadata
        key = f"{meta.get(M_GROUP, '')}_{meta.get(M_PATH, '')}"
        entry = self._entries.get(key)
        if entry is not None:
            graph = self.graph
            if graph is not None:
                respond = graph.server_responder(frame, respond)
            entry(frame, respond, conn)
            return
        if meta.get(M_FRAMEWORK_SERVICE):
            msg = f"service not support: {meta.get(M_PATH, '')}"
            code = E_NOT_SUPPORTED
        else:
            self.not_found_count += 1
            msg = PROVIDER_NOT_EXIST + key
            code = E_PROVIDER_NOT_EXIST
        response = error_response(frame, code, msg, ERRTYPE_SERVICE)
        respond(forward(response, frame.request_id, {"M_pt": "0"}, set_flags=FLAG_PROXY))
