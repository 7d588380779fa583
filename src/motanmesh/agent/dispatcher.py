"""The server side of the agent: export ports dispatching to providers by ``group_path``."""

from __future__ import annotations

import logging
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


class ServerDispatcher:
    """Transport request handler for an export port: ``M_g + "_" + M_p`` → provider."""

    def __init__(self) -> None:
        self.providers: dict[str, Provider] = {}
        #: requests that found no provider (the Go agent's ``not_found_provider_count``)
        self.not_found_count = 0
        #: records each provider's answers when the dependency graph is on
        self.graph: DependencyGraph | None = None

    def add(self, provider: Provider) -> None:
        self.providers[provider.url.group_path] = provider

    def remove(self, url: URL) -> Provider | None:
        return self.providers.pop(url.group_path, None)

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        meta = frame.metadata
        key = f"{meta.get(M_GROUP, '')}_{meta.get(M_PATH, '')}"
        provider = self.providers.get(key)
        if provider is not None:
            graph = self.graph
            if graph is not None:
                respond = graph.server_responder(frame, respond)
            provider(frame, respond, conn)
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
