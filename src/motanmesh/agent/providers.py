"""Providers of the server agent: what serves an exported service.

* ``motan2`` (and ``motan``): a reverse proxy to the local Motan2 service named by ``proxy``
  (``motan2:8100``, host ``proxy.host``, default 127.0.0.1, or a unix socket), through a
  connection-pooled endpoint in proxy mode that is never marked down by errors.
* ``python``: an in-process service built with :mod:`motanmesh.sdk`; the service URL names a
  factory ``pythonService: package.module:function`` returning a ``ServiceRegistry``.
* ``http``: see :mod:`motanmesh.agent.http_provider`.
* ``cgi``: a FastCGI server such as php-fpm; see :mod:`motanmesh.agent.cgi_provider`.
* ``default``: what a service with neither ``provider`` nor ``proxy`` gets, as in the Go
  agent (whose ``default`` provider calls methods of an object registered in-process; an agent
  has none). It is exported and registered, and answers every call with the Go agent's
  service exception: errcode 500, ``method <m> is not found in provider.``
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import partial
from time import perf_counter
from typing import Any, Final

from motanmesh.agent.dispatcher import Provider
from motanmesh.agent.router import signed_id
from motanmesh.cluster.errors import call_error_response, error_response
from motanmesh.config.values import service_proxy
from motanmesh.sdk.service import ServiceRegistry
from motanmesh.transport.endpoint import (
    DEFAULT_CLIENT_CONNECTIONS,
    Endpoint,
    Reply,
    ReplyCallback,
)
from motanmesh.transport.server import Responder, ServerConnection
from motanmesh.url import URL
from motanmesh.wire.frame import (
    ERRTYPE_SERVICE,
    FLAG_PROXY,
    M_METHOD,
    M_PROCESS_TIME,
    M_REQUEST_ID,
    Frame,
    encode_frame,
    exception_frame,
)
from motanmesh.wire.passthrough import forward, respond_forwarded

_X_FORWARDED_FOR: Final = "x-forwarded-for"


class ProviderError(Exception):
    """A service whose provider cannot be built (bad ``proxy``, unknown provider...)."""


class Motan2Provider:
    """Reverse proxy to a local Motan2 service."""

    def __init__(self, url: URL) -> None:
        self.url = url
        target = service_proxy(url)
        if target is None:
            raise ProviderError(f"service {url.path}: provider motan2 needs 'proxy' (motan2:PORT)")
        host = target.host
        address = host if host.startswith("unix:") else f"{host}:{target.port}"
        self.endpoint = Endpoint(
            address,
            connections=max(1, url.get_int("clientConnection", DEFAULT_CLIENT_CONNECTIONS)),
            request_timeout=url.request_timeout_ms / 1000,
            connect_retry_interval=url.get_int("connectRetryInterval", 5000) / 1000,
            error_count_threshold=url.get_int("errorCountThreshold", 0),
            max_content_length=url.get_int("maxContentLength", 10 * 1024 * 1024),
            proxy=True,
        )

    async def start(self) -> None:
        await self.endpoint.connect()

    async def close(self) -> None:
        await self.endpoint.close()

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        if respond is conn.respond:  # nothing wraps the answer: written in pieces
            reply = ReplyCallback(partial(_relay_to, frame, conn))
        else:
            reply = ReplyCallback(partial(_relay, frame, respond))
        self.endpoint.send(frame, reply, self._changes(frame, conn))

    def serve_frame(self, frame: Frame, conn: ServerConnection, done: FrameDone) -> None:
        """Forward ``frame`` and hand the response frame (or the error) to ``done``; the
        answer's bytes are then :func:`answer_bytes` (used by filters around the provider)."""
        self.endpoint.send(frame, ReplyCallback(done), self._changes(frame, conn))

    def serve_reply(self, frame: Frame, conn: ServerConnection, reply: Reply) -> None:
        """:meth:`serve_frame` with the outcome going to ``reply`` (the filtered call itself:
        no callback object per call)."""
        self.endpoint.send(frame, reply, self._changes(frame, conn))

    @staticmethod
    def _changes(frame: Frame, conn: ServerConnection) -> dict[str, str]:
        meta = frame.metadata
        ip = conn.peer_host
        changes = {_X_FORWARDED_FOR: ip}
        if "host" not in meta:
            changes["host"] = ip
        if M_REQUEST_ID not in meta:
            changes[M_REQUEST_ID] = signed_id(frame.request_id)
        return changes


#: receives a provider's response frame, or the error that replaced it
FrameDone = Callable[[Frame | None, BaseException | None], None]


def answer_bytes(request: Frame, response: Frame | None, exc: BaseException | None) -> bytes:
    """What the server agent writes back for ``response`` (or ``exc``) to ``request``."""
    if response is None:
        response = call_error_response(request, exc or RuntimeError("no response"))
    changes = None if M_PROCESS_TIME in response.metadata else {M_PROCESS_TIME: "0"}
    return forward(response, request.request_id, changes, set_flags=FLAG_PROXY)


def elapsed_ms(start: float) -> str:
    """``M_pt``: milliseconds since ``start`` (a ``perf_counter()`` reading)."""
    return str(int((perf_counter() - start) * 1000))


def error_answer(frame: Frame, start: float, code: int, message: str) -> bytes:
    """The bytes of a service exception answer to ``frame`` from a provider that began
    serving it at ``start``."""
    return exception_frame(
        frame.request_id,
        code,
        message,
        ERRTYPE_SERVICE,
        serialization=frame.serialization,
        proxy=True,
        metadata={M_PROCESS_TIME: elapsed_ms(start)},
    ).encode()


def _relay(
    request: Frame, respond: Responder, response: Frame | None, exc: BaseException | None
) -> None:
    respond(answer_bytes(request, response, exc))


def _relay_to(
    request: Frame, conn: ServerConnection, response: Frame | None, exc: BaseException | None
) -> None:
    """:func:`_relay` straight to the caller's connection: a large body is written as it
    is, after its header, instead of being copied into one buffer with it."""
    if response is None:
        response = call_error_response(request, exc or RuntimeError("no response"))
    changes = None if M_PROCESS_TIME in response.metadata else {M_PROCESS_TIME: "0"}
    respond_forwarded(conn, response, request.request_id, changes, FLAG_PROXY)


class PythonProvider:
    """An in-process service written with the SDK."""

    def __init__(self, url: URL) -> None:
        self.url = url
        spec = url.get("pythonService")
        if not spec:
            raise ProviderError(
                f"service {url.path}: provider python needs 'pythonService: module:function'"
            )
        registry = load_factory(spec)()
        if not isinstance(registry, ServiceRegistry):
            raise ProviderError(f"{spec} did not return a ServiceRegistry")
        self.handler = registry.as_handler()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self.handler.close()

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        self.handler(frame, respond, conn)


class DefaultProvider:
    """A service without a backend: every call is a "method not found" service exception."""

    def __init__(self, url: URL) -> None:
        self.url = url

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        method = frame.metadata.get(M_METHOD, "")
        answer = error_response(frame, 500, f"method {method} is not found in provider.")
        respond(encode_frame(answer))


def load_factory(spec: str) -> Callable[[], Any]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ProviderError(f"pythonService {spec!r} is not 'module:function'")
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, attr)
    except (ImportError, AttributeError) as e:
        raise ProviderError(f"pythonService {spec!r} cannot be loaded: {e}") from e
    if not callable(factory):
        raise ProviderError(f"pythonService {spec!r} is not callable")
    return factory  # type: ignore[no-any-return]


def _cgi_provider(url: URL) -> Provider:
    # imported on first use, as the http provider
    from motanmesh.agent.cgi_provider import CgiProvider  # noqa: PLC0415

    return CgiProvider(url)


ProviderFactory = Callable[[URL], Provider]
_FACTORIES: dict[str, ProviderFactory] = {
    "cgi": _cgi_provider,
    "motan2": Motan2Provider,
    "motan": Motan2Provider,
    "python": PythonProvider,
    "default": DefaultProvider,
}


def register_provider(name: str, factory: ProviderFactory) -> None:
    _FACTORIES[name] = factory


def create_provider(url: URL) -> Provider:
    """The provider named by ``provider``, else by the protocol of ``proxy``."""
    name = url.get("provider")
    if not name:
        target = service_proxy(url)
        name = target.protocol if target else "default"
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ProviderError(
            f"service {url.path}: unknown provider {name!r} "
            f"(known: {', '.join(sorted(_FACTORIES))})"
        )
    return factory(url)
