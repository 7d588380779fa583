"""The ``grpc`` provider: an exported service served by a local gRPC server.

Each Motan2 request becomes one unary gRPC call on ``/<M_p>/<M_m>`` to the address of
``proxy`` (``grpc:50051``; host ``proxy.host``, default 127.0.0.1, or ``unix:/path``) with
grpcio's asyncio channel. The body goes out as it came in: it must be a ``grpc-pb``
(serialization 1) body, one protobuf message, which nothing here decodes. The reply message
comes back as the body of a serialization-1 response.

* Attachments become gRPC metadata and the reply's initial and trailing metadata become
  response attachments (:mod:`motanmesh.grpcmap`); ``x-forwarded-for`` names the caller.
* The deadline is ``M_tmo`` (ms) when the request carries one, else ``requestTimeout``
  (default 1000 ms).
* A gRPC status other than OK becomes an exception response: ``errcode`` and ``errtype`` from
  the table in ``docs/grpc.md``, ``errmsg`` the status details, attachment ``grpc-status``
  the status code, plus the trailing metadata.
* A body of another serialization is refused with 400 (errtype 1); a closed provider answers
  503.

``maxContentLength`` (default 10 MiB) bounds the messages both ways.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import Any, Final

from motanmesh.agent.providers import ProviderError, elapsed_ms, error_answer
from motanmesh.config.values import service_proxy
from motanmesh.grpcmap import (
    GRPC_STATUS,
    attachments_to_metadata,
    metadata_to_attachments,
    motan_error_for,
)
from motanmesh.transport.server import Responder, ServerConnection
from motanmesh.url import URL
from motanmesh.wire.frame import (
    DEFAULT_MAX_CONTENT_LENGTH,
    FLAG_GZIP,
    M_METHOD,
    M_PATH,
    M_PROCESS_TIME,
    M_TIMEOUT,
    Frame,
    exception_frame,
    gunzip,
    gzip_body,
    response_frame,
)

try:
    import grpc
    import grpc.aio
except ImportError as e:  # pragma: no cover - exercised only without grpcio
    raise ProviderError("provider grpc needs grpcio: pip install 'motanmesh[grpc]'") from e

__all__ = ["GrpcProvider", "channel_target"]

log = logging.getLogger("motanmesh.agent")

GRPC_PB: Final = 1
E_BAD_REQUEST: Final = 400
E_INTERNAL: Final = 500
E_UNAVAILABLE: Final = 503
_X_FORWARDED_FOR: Final = "x-forwarded-for"
#: attachments that the call itself carries (path, method, deadline) or that are Motan's own
_NOT_SENT: Final = frozenset({M_PATH, M_METHOD, M_TIMEOUT, "M_e", "M_pt", "host"})
_MAX_CACHED_METHODS: Final = 4096


def channel_target(url: URL) -> str:
    """The gRPC target of a service's ``proxy``: ``host:port`` or ``unix:/path``."""
    target = service_proxy(url)
    if target is None:
        raise ProviderError(f"service {url.path}: provider grpc needs 'proxy' (grpc:PORT)")
    host = target.host
    if host.startswith("unix:"):
        path = host[5:].removeprefix("//")
        if not path:
            raise ProviderError(f"service {url.path}: proxy.host {host!r} has no path")
        return "unix:" + path
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{target.port}"
    return f"{host}:{target.port}"


class GrpcProvider:
    """Serves an exported service with a local gRPC server (see the module docs)."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.target = channel_target(url)
        self.timeout = max(1, url.request_timeout_ms) / 1000
        self.max_message = url.get_int("maxContentLength", DEFAULT_MAX_CONTENT_LENGTH)
        self.min_gzip_size = url.get_int("mingzSize", 0)
        self._channel: Any = None
        self._methods: dict[str, Any] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def pending(self) -> int:
        """Calls waiting for their gRPC answer."""
        return len(self._tasks)

    async def start(self) -> None:
        self._closed = False
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(
                self.target,
                options=[
                    ("grpc.max_receive_message_length", self.max_message),
                    ("grpc.max_send_message_length", self.max_message),
                    ("grpc.enable_http_proxy", 0),
                ],
            )

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        channel, self._channel = self._channel, None
        self._methods.clear()
        if channel is not None:
            await channel.close()

    def _method(self, path: str) -> Any:
        found = self._methods.get(path)
        if found is None:
            if len(self._methods) >= _MAX_CACHED_METHODS:
                self._methods.clear()
            # no serializers: the request and the reply are bytes, as they travel
            found = self._methods[path] = self._channel.unary_unary(path)
        return found

    # ------------------------------------------------------------------ per call

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        start = perf_counter()
        meta = frame.metadata
        if self._closed or self._channel is None:
            respond(error_answer(frame, start, E_UNAVAILABLE, "grpc provider is closed"))
            return
        if frame.serialization != GRPC_PB:
            respond(
                error_answer(
                    frame,
                    start,
                    E_BAD_REQUEST,
                    f"grpc provider takes grpc-pb (serialization 1) bodies, "
                    f"got serialization {frame.serialization}",
                )
            )
            return
        body = frame.body
        if frame.flags & FLAG_GZIP:
            try:
                body = gunzip(body, self.max_message)
            except Exception as e:
                message = f"grpc provider: bad gzip body: {e}"
                respond(error_answer(frame, start, E_BAD_REQUEST, message))
                return
        timeout = self.timeout
        tmo = meta.get(M_TIMEOUT)
        if tmo and tmo.isdigit() and int(tmo) > 0:
            timeout = int(tmo) / 1000
        metadata = attachments_to_metadata(meta, _NOT_SENT)
        if _X_FORWARDED_FOR not in meta and conn.peer_host:
            metadata.append((_X_FORWARDED_FOR, conn.peer_host))
        path = f"/{meta.get(M_PATH, '')}/{meta.get(M_METHOD, '')}"
        task = asyncio.get_running_loop().create_task(
            self._run(frame, respond, start, path, body, timeout, metadata)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self,
        frame: Frame,
        respond: Responder,
        start: float,
        path: str,
        body: bytes,
        timeout: float,
        metadata: list[tuple[str, str | bytes]],
    ) -> None:
        try:
            call = self._method(path)(body, timeout=timeout, metadata=metadata)
            reply = await call
            received = [*await call.initial_metadata(), *await call.trailing_metadata()]
        except asyncio.CancelledError:
            respond(error_answer(frame, start, E_UNAVAILABLE, "grpc provider is closed"))
            raise
        except grpc.aio.AioRpcError as e:
            respond(self._failure(frame, start, e))
            return
        except Exception as e:
            log.exception("grpc provider call %s failed", path)
            respond(error_answer(frame, start, E_INTERNAL, f"grpc provider failed: {e!r}"))
            return
        attachments = metadata_to_attachments(received)
        attachments[M_PROCESS_TIME] = elapsed_ms(start)
        response = response_frame(
            frame.request_id, attachments, reply, serialization=GRPC_PB, proxy=True
        )
        gzip_body(response, self.min_gzip_size)
        respond(response.encode())

    def _failure(self, frame: Frame, start: float, e: Any) -> bytes:
        code = int(e.code().value[0])
        errcode, errtype = motan_error_for(code)
        attachments = metadata_to_attachments([*e.initial_metadata(), *e.trailing_metadata()])
        attachments[GRPC_STATUS] = str(code)
        attachments[M_PROCESS_TIME] = elapsed_ms(start)
        details = e.details() or e.code().name
        return exception_frame(
            frame.request_id,
            errcode,
            str(details),
            errtype,
            serialization=frame.serialization,
            proxy=True,
            metadata=attachments,
        ).encode()
