"""The gRPC ingress of the client agent (``motan-agent.grpcPort``; see ``docs/grpc.md``).

A gRPC server (grpcio's asyncio API, one generic handler, bytes in and out) that an
application calls with its own generated stubs. A call to ``/<package.Service>/<Method>`` is
routed like a Motan2 request whose ``M_p`` is ``package.Service`` (the refer with that path;
``motan-g`` metadata chooses the group when several refers share it) and sent through the
refer's cluster as a Motan2 request:

* body: the request message as received, undecoded, with serialization 1 (``grpc-pb``);
* metadata: ``M_p``, ``M_m``, ``M_tmo`` (the call's deadline, in ms), ``M_rid``, ``M_s`` (the
  refer's or agent's application unless ``motan-s`` is given), ``host`` (the caller's IP) and
  the call's metadata as attachments (:func:`motanmesh.grpcmap.metadata_to_attachments`).

The answer's body is the reply message; its attachments come back as trailing metadata. An
exception answer ends the call with the gRPC status of its ``grpc-status`` attachment or, for
errors of the mesh itself, the status for its ``errcode`` (:func:`motanmesh.grpcmap.grpc_code_for`).
A path that no refer serves ends with ``UNIMPLEMENTED``.

Only unary calls are served. gRPC does not tell a server which kind of call it is, so every
call is read as a stream: exactly one request message, then the end of the client's stream.
A second message, or none, ends the call with ``UNIMPLEMENTED`` and nothing is sent on.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
from functools import partial
from typing import Any, Final, NoReturn

from motanmesh.agent.router import ClientRouter, signed_id
from motanmesh.cluster.errors import call_error_response
from motanmesh.grpcmap import (
    DEADLINE_EXCEEDED,
    GRPC_STATUS,
    INTERNAL,
    UNIMPLEMENTED,
    attachments_to_metadata,
    grpc_code_for,
    metadata_to_attachments,
    split_method,
    status_of,
)
from motanmesh.transport.endpoint import ReplyCallback
from motanmesh.transport.errors import RequestTimeout
from motanmesh.wire.frame import (
    DEFAULT_MAX_CONTENT_LENGTH,
    FLAG_GZIP,
    M_EXCEPTION,
    M_METHOD,
    M_PATH,
    M_REQUEST_ID,
    M_SOURCE,
    M_TIMEOUT,
    Frame,
    gunzip,
    parse_exception,
)

try:
    import grpc
    import grpc.aio
except ImportError as e:  # pragma: no cover - exercised only without grpcio
    raise ImportError("the gRPC ingress needs grpcio: pip install 'motanmesh[grpc]'") from e

__all__ = ["GrpcIngress", "GrpcIngressError"]

log = logging.getLogger("motanmesh.ingress")

GRPC_PB: Final = 1
#: attachments the ingress sets itself (a caller's ``motan-p`` and the like are ignored)
_SET_HERE: Final = frozenset({M_PATH, M_METHOD, "M_e", "M_pt", "host"})
_NOT_RETURNED: Final = frozenset({M_EXCEPTION, GRPC_STATUS})
_X_FORWARDED_FOR: Final = "x-forwarded-for"
_MAX_CACHED_METHODS: Final = 4096
#: deadlines further away than this (s) are no deadline (grpc reports "infinite" as huge)
_NO_DEADLINE: Final = 10 * 365 * 86400.0
_STATUS: Final[dict[int, Any]] = {int(code.value[0]): code for code in grpc.StatusCode}


class GrpcIngressError(Exception):
    """The gRPC port cannot be opened."""


class GrpcIngress:
    """A gRPC server in front of the agent's :class:`ClientRouter`."""

    def __init__(
        self,
        router: ClientRouter,
        *,
        application: str = "",
        max_message_size: int = DEFAULT_MAX_CONTENT_LENGTH,
    ) -> None:
        self.router = router
        self.application = application
        self.max_message_size = max_message_size
        self.address: tuple[str, int] | None = None
        self._server: Any = None
        self._handlers: dict[str, Any] = {}
        # M_rid values: a random 62-bit start, then counting
        self._ids = itertools.count(int.from_bytes(os.urandom(8)) >> 2)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host:port`` (0: a free port); returns the bound address."""
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self.max_message_size),
                ("grpc.max_send_message_length", self.max_message_size),
                # a port in use is an error, not a port shared with another process
                ("grpc.so_reuseport", 0),
            ]
        )
        server.add_generic_rpc_handlers((_Handler(self),))
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = server.add_insecure_port(where)
        except RuntimeError as e:
            raise GrpcIngressError(f"cannot listen on {where}: {e}") from e
        if not bound:
            raise GrpcIngressError(f"cannot listen on {where}")
        await server.start()
        self._server = server
        self.address = (host, int(bound))
        return self.address

    async def close(self, grace: float | None = None) -> None:
        """Stop taking calls; calls in flight may finish within ``grace`` seconds."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)

    def handler(self, path: str) -> Any:
        """The grpcio method handler for a method path (``None``: not a gRPC method path)."""
        found = self._handlers.get(path)
        if found is None:
            names = split_method(path)
            if names is None:
                return None
            if len(self._handlers) >= _MAX_CACHED_METHODS:
                self._handlers.clear()
            found = self._handlers[path] = grpc.stream_unary_rpc_method_handler(
                partial(self.serve, names[0], names[1])
            )
        return found

    async def serve(self, service: str, method: str, _requests: Any, context: Any) -> bytes:
        """One call: read its one message, send it through the mesh, answer."""
        message = await context.read()
        if message is grpc.aio.EOF:
            await _abort(context, UNIMPLEMENTED, "the mesh serves unary calls: no request message")
        if await context.read() is not grpc.aio.EOF:
            await _abort(
                context, UNIMPLEMENTED, "the mesh serves unary calls: a second request message"
            )
        meta = metadata_to_attachments(context.invocation_metadata(), _SET_HERE)
        meta[M_PATH] = service
        meta[M_METHOD] = method
        remaining = context.time_remaining()
        if remaining is not None and remaining < _NO_DEADLINE:
            meta[M_TIMEOUT] = str(max(1, math.ceil(remaining * 1000)))
        if M_REQUEST_ID not in meta:
            meta[M_REQUEST_ID] = signed_id(next(self._ids))
        peer = _peer_host(context.peer())
        if peer:
            meta["host"] = peer
        frame = Frame(0, 0, GRPC_PB, 0, meta, message)
        found = self.router.route(frame)
        if isinstance(found, str):
            await _abort(context, UNIMPLEMENTED, found)
        if not meta.get(M_SOURCE):
            source = found.refer.application or self.application
            if source:
                meta[M_SOURCE] = source
        done: asyncio.Future[tuple[Frame | None, BaseException | None]] = (
            asyncio.get_running_loop().create_future()
        )
        found.send(frame, ReplyCallback(partial(_settle, done)), None)
        response, exc = await done
        if response is None:
            if isinstance(exc, RequestTimeout):
                await _abort(context, DEADLINE_EXCEEDED, str(exc))
            response = call_error_response(frame, exc or RuntimeError("no response"))
        trailing = attachments_to_metadata(response.metadata, _NOT_RETURNED)
        if response.origin and _X_FORWARDED_FOR not in response.metadata:
            trailing.append((_X_FORWARDED_FOR, response.origin))
        if response.status:
            error = parse_exception(response.metadata.get(M_EXCEPTION, ""))
            code = status_of(response.metadata.get(GRPC_STATUS, ""))
            if code is None:
                code = grpc_code_for(error.errcode, error.errmsg)
            await _abort(context, code, error.errmsg, trailing)
        if response.serialization != GRPC_PB:
            await _abort(
                context,
                INTERNAL,
                f"{service} answered with serialization {response.serialization}, not grpc-pb (1)",
            )
        body = response.body
        if response.flags & FLAG_GZIP:
            try:
                body = gunzip(body, self.max_message_size)
            except Exception as e:
                await _abort(context, INTERNAL, f"{service} answered with a bad gzip body: {e}")
        if trailing:
            context.set_trailing_metadata(trailing)
        return body


class _Handler(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Every method path goes to the ingress."""

    def __init__(self, ingress: GrpcIngress) -> None:
        self._ingress = ingress

    def service(self, handler_call_details: Any) -> Any:
        return self._ingress.handler(handler_call_details.method)


def _settle(
    done: asyncio.Future[tuple[Frame | None, BaseException | None]],
    response: Frame | None,
    exc: BaseException | None,
) -> None:
    if not done.done():
        done.set_result((response, exc))


async def _abort(
    context: Any, code: int, message: str, trailing: list[tuple[str, str | bytes]] | None = None
) -> NoReturn:
    """End the call with a status: grpcio's ``abort`` raises to end the handler."""
    await context.abort(_STATUS.get(code, grpc.StatusCode.UNKNOWN), message, tuple(trailing or ()))
    raise AssertionError("grpc's abort returned")


def _peer_host(peer: str) -> str:
    """``ipv4:127.0.0.1:5000`` → ``127.0.0.1``; ``ipv6:[::1]:5000`` → ``::1``."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return ""
