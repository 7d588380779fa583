"""The Motan2 server: many requests in flight per connection, answered in any order.

One :class:`ServerConnection` (an ``asyncio.BufferedProtocol``, reading as
:mod:`motanmesh.transport.reads` describes) per accepted socket, one
:class:`~motanmesh.wire.decoder.FrameDecoder` per connection. Every non-heartbeat Motan2
request goes to the :class:`RequestHandler` synchronously from the read; the handler
answers through a :data:`Responder` whenever it likes. Answers given while a read is being
processed are written together, once per read.

The connection layer answers by itself:

* heartbeats (any Motan2 frame with the heartbeat bit) with the motan-go response form, or
  closes the connection when :attr:`MotanServer.heartbeat_enabled` is off;
* a Motan v1 heartbeat with the v1 heartbeat answer; any other v1 request with a v1 exception
  response (the connection stays usable);
* a frame over ``max_content_length`` with an exception response for its request id (when
  readable), then closes; any other undecodable input closes the connection.

Each port and connection is bounded by :class:`~motanmesh.transport.limits.ServerLimits`:
a connection whose peer does not read its responses stops being read once its transport's
write buffer passes ``write_buffer_size`` (read again below a quarter of it); one with too many
requests or request bytes unanswered stops being read until half of them are answered;
connections over ``max_connections`` are refused; a partial frame older than ``read_timeout``
and a peer that reads nothing for ``write_timeout`` close their connection. Every limit hit is
counted in :attr:`MotanServer.limit_hits` and logged at most once per
``LIMIT_LOG_INTERVAL`` seconds per kind.

Given a :class:`~motanmesh.transport.tls.ServerTls`, the TCP listeners accept TLS (and, in
permissive mode, plain Motan2 on the same port; :mod:`motanmesh.transport.tls`); a TLS
connection's :attr:`ServerConnection.identity` is the caller's verified workload identity.
Without one, nothing on the accept or request path changes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

from motanmesh.transport.clock import Clock, LoopClock, TimerHandle
from motanmesh.transport.limits import LIMIT_COUNTERS, ServerLimits
from motanmesh.transport.memory import release_memory
from motanmesh.transport.reads import GetBuffer, shared_read_buffer
from motanmesh.transport.tls import (
    REFUSAL_REASONS,
    ServerTls,
    TlsListener,
    TlsRefused,
    tcp_socket,
)
from motanmesh.transport.writes import write_batch
from motanmesh.wire.decoder import FrameDecoder
from motanmesh.wire.errors import FrameTooLargeError, V1Error, WireError
from motanmesh.wire.frame import (
    ERRTYPE_SERVICE,
    FLAG_HEARTBEAT,
    FLAG_RESPONSE,
    Frame,
    exception_frame,
    heartbeat_response,
)
from motanmesh.wire.v1 import (
    V1Frame,
    parse_v1_request,
    v1_exception_response,
    v1_heartbeat_response,
)

__all__ = ["MotanServer", "RequestHandler", "Responder", "ServerConnection", "ServerLimits"]

_log = logging.getLogger("motanmesh.transport")

#: seconds between two log lines about the same kind of limit hit on one server
LIMIT_LOG_INTERVAL = 10.0
#: "no partial frame" / "not paused" for the connection's time stamps
_NEVER = -1.0
#: seconds after a connection that was held back closes before freed memory is returned
#: to the system (several such closes share one release)
RELEASE_DELAY = 1.0

#: writes one encoded response frame; a no-op once the connection is gone
Responder = Callable[[bytes], None]


class RequestHandler(Protocol):
    """Serves one Motan2 request; may call ``respond`` at once or later."""

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None: ...


def format_address(addr: object) -> str:
    """``ip:port`` (``[ip]:port`` for IPv6) for socket addresses, the path for unix ones."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = str(addr[0])
        return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
    if isinstance(addr, bytes):
        return addr.decode("utf-8", "surrogateescape")
    return str(addr) if addr else ""


def host_of(address: str) -> str:
    """The host of ``ip:port`` / ``[ip]:port`` (a unix path is returned as it is)."""
    host = address.rsplit(":", 1)[0] if ":" in address else address
    return host.strip("[]")


class ServerConnection(asyncio.BufferedProtocol):
    """One accepted connection of a :class:`MotanServer`."""

    get_buffer: GetBuffer

    __slots__ = (
        "_batch",
        "_clock",
        "_closed",
        "_decoder",
        "_flush_cb",
        "_handler",
        "_held_back",
        "_idle_timer",
        "_last_read",
        "_loop",
        "_max_pending",
        "_max_pending_bytes",
        "_partial_since",
        "_pause_pending",
        "_pause_write",
        "_pending_bytes",
        "_server",
        "_transport",
        "_wbuf",
        "_write_paused_since",
        "get_buffer",
        "identity",
        "in_flight",
        "local",
        "peer",
        "peer_host",
        "reading_paused",
        "respond",
    )

    def __init__(self, server: MotanServer) -> None:
        self._server = server
        self._handler = server.handler
        self._clock = server.clock
        limits = server.limits
        self._decoder = FrameDecoder(
            server.max_content_length,
            max_metadata_size=limits.max_metadata_size,
            max_metadata_entries=limits.max_metadata_entries,
        )
        self._decoder.use_read_buffer(shared_read_buffer())
        #: the loop reads where the decoder says (its method itself: no call in between)
        self.get_buffer = self._decoder.get_buffer
        self._max_pending = limits.max_pending_requests
        self._max_pending_bytes = limits.max_pending_bytes
        #: body bytes of the requests not answered yet (estimated as answers come)
        self._pending_bytes = 0
        #: when the partial frame in the decoder began (``_NEVER``: none)
        self._partial_since = _NEVER
        self._pause_pending = False
        self._pause_write = False
        self._write_paused_since = _NEVER
        #: reading was paused at least once (the connection held large buffers)
        self._held_back = False
        self._transport: asyncio.Transport | None = None
        self._batch: list[bytes] | None = None
        #: answers given outside ``data_received``, written together at the end of the
        #: loop iteration
        self._wbuf: list[bytes] = []
        self._flush_cb = self._flush
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._idle_timer: TimerHandle | None = None
        self._last_read = 0.0
        #: requests handed to the handler and not answered yet
        self.in_flight = 0
        #: the remote address: ``ip:port``, or the socket path for unix connections
        self.peer = ""
        #: the peer's IP (the unix path for unix sockets), for metadata such as ``host``
        self.peer_host = ""
        #: the local address: ``ip:port`` or the socket path
        self.local = ""
        #: the caller's verified workload identity (the SPIFFE URI of its TLS client
        #: certificate); "" on plaintext connections
        self.identity = ""
        #: True while reading is paused because the peer does not read its responses
        self.reading_paused = False
        #: the :data:`Responder` given to the handler (bound once per connection)
        self.respond: Responder = self._respond

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._transport = transport
        server = self._server
        if len(server._connections) >= server.limits.max_connections:
            self._closed = True
            server.hit(
                "connectionsRefused",
                f"refusing connections over maxConnections={server.limits.max_connections}",
            )
            transport.abort()
            return
        local = transport.get_extra_info("sockname")
        self.local = format_address(local)
        self.peer = format_address(transport.get_extra_info("peername")) or self.local
        self.peer_host = host_of(self.peer)
        if server.tls is not None and not self._verify_peer(server.tls, transport):
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        high = self._server.write_high_water
        transport.set_write_buffer_limits(high=high, low=high // 4)
        self._server._connection_made(self)
        idle = self._server.idle_timeout
        if idle is not None:
            self._last_read = self._clock.time()
            self._idle_timer = self._clock.call_later(idle, self._check_idle)

    def _verify_peer(self, tls: ServerTls, transport: asyncio.Transport) -> bool:
        """Set :attr:`identity` from the TLS peer's certificate; False (connection aborted,
        refusal counted) when the port does not accept it."""
        server = self._server
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            server.tls_connections["plain"] += 1
            return True
        try:
            self.identity = tls.identity(ssl_object.getpeercert())
        except TlsRefused as e:
            self._closed = True
            server.tls_refuse(e.reason, f"refusing TLS from {self.peer}: {e}")
            transport.abort()
            return False
        server.tls_connections["tls"] += 1
        return True

    def buffer_updated(self, nbytes: int) -> None:
        if self._idle_timer is not None:
            self._last_read = self._clock.time()
        error: WireError | None = None
        try:
            frames = self._decoder.buffer_updated(nbytes)
        except WireError as e:
            frames = list(e.frames)
            error = e
        if frames:
            self._serve(frames)
        if error is not None:
            if not self._closed:
                self._on_wire_error(error)
        elif self._decoder.buffered:
            if frames or self._partial_since == _NEVER:
                self._partial_since = self._clock.time()
        elif self._partial_since != _NEVER:
            self._partial_since = _NEVER

    def eof_received(self) -> bool:
        # a client that closes (or half-closes) is gone, as for motan-go: answers still
        # pending are dropped
        return False

    def pause_writing(self) -> None:
        self._pause_write = True
        self._write_paused_since = self._clock.time()
        self._server.hit("writePaused")
        self._pause()

    def resume_writing(self) -> None:
        self._pause_write = False
        self._write_paused_since = _NEVER
        self._resume()

    def _pause(self) -> None:
        transport = self._transport
        if not self.reading_paused and transport is not None and not transport.is_closing():
            self.reading_paused = True
            self._held_back = True
            transport.pause_reading()

    def _resume(self) -> None:
        transport = self._transport
        if (
            self.reading_paused
            and not self._pause_write
            and not self._pause_pending
            and transport is not None
            and not transport.is_closing()
        ):
            self.reading_paused = False
            if self._partial_since != _NEVER:
                self._partial_since = self._clock.time()  # the peer was not waited for
            transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        unanswered = self.in_flight
        self.in_flight = 0
        server = self._server
        server._connection_lost(self, unanswered)
        if self._held_back:
            server._schedule_release()

    # ------------------------------------------------------------------ serving

    def _serve(self, frames: list[Frame | V1Frame]) -> None:
        server = self._server
        handler = self._handler
        respond = self.respond
        batch: list[bytes] = []
        self._batch = batch
        close_after = False
        try:
            for frame in frames:
                if type(frame) is Frame:
                    flags = frame.flags
                    if flags & FLAG_HEARTBEAT:
                        if not server.heartbeat_enabled:
                            close_after = True
                            break
                        batch.append(heartbeat_response(frame.request_id))
                    elif not flags & FLAG_RESPONSE:
                        self.in_flight += 1
                        server._in_flight += 1
                        self._pending_bytes += len(frame.body)
                        try:
                            handler(frame, respond, self)
                        except Exception as e:
                            _log.exception("request handler failed (peer %s)", self.peer)
                            respond(
                                exception_frame(
                                    frame.request_id,
                                    500,
                                    f"request handler failed: {e!r}",
                                    ERRTYPE_SERVICE,
                                    serialization=frame.serialization,
                                ).encode()
                            )
                    # a response sent to a server answers nothing: dropped
                elif type(frame) is V1Frame and not self._serve_v1(frame, batch):
                    close_after = True  # a v1 heartbeat with heartbeats switched off
                    break
        finally:
            self._batch = None
            transport = self._transport
            if batch and transport is not None and not transport.is_closing():
                write_batch(transport, batch)
        if (
            self.in_flight >= self._max_pending or self._pending_bytes >= self._max_pending_bytes
        ) and not self._pause_pending:
            self._pause_pending = True
            server.hit("pendingPaused")
            self._pause()
        if close_after:
            _log.debug("heartbeat with heartbeats switched off: closing %s", self.peer)
            self.close()

    def _serve_v1(self, frame: V1Frame, batch: list[bytes]) -> bool:
        """Answer a Motan v1 message; False when the connection must close instead."""
        if not frame.is_request:
            return True
        rid = frame.request_id
        try:
            req = parse_v1_request(frame)
        except V1Error as e:
            batch.append(v1_exception_response(rid, f"unreadable motan v1 request: {e}"))
            return True
        if req.is_heartbeat:
            if not self._server.heartbeat_enabled:
                return False
            batch.append(v1_heartbeat_response(rid))
        else:
            batch.append(
                v1_exception_response(
                    rid,
                    f"motan v1 requests are not served here ({req.service}.{req.method}); "
                    "use the motan2 protocol",
                )
            )
        return True

    def _respond(self, data: bytes) -> None:
        if self._closed:
            return
        if self.in_flight > 0:
            self.in_flight -= 1
            pending = self._pending_bytes
            if pending:
                self._pending_bytes = pending - pending // (self.in_flight + 1)
            if self._pause_pending:
                self._pending_answered()
            server = self._server
            server._in_flight -= 1
            if server._drain_waiter is not None and server._in_flight == 0:
                server._wake_drain()
        batch = self._batch
        if batch is not None:
            batch.append(data)
        else:
            wbuf = self._wbuf
            if not wbuf:
                self._loop.call_soon(self._flush_cb)
            wbuf.append(data)

    def respond_pieces(self, pieces: list[bytes]) -> None:
        """Answer with the frame made of ``pieces`` in order (a header and a large body, as
        :func:`~motanmesh.wire.passthrough.forward_into` makes them): written as they are,
        not joined."""
        self._respond(pieces[0])
        if self._closed or len(pieces) == 1:
            return
        batch = self._batch
        (batch if batch is not None else self._wbuf).extend(pieces[1:])

    def _pending_answered(self) -> None:
        if (
            self.in_flight <= self._max_pending >> 1
            and self._pending_bytes <= self._max_pending_bytes >> 1
        ):
            self._pause_pending = False
            self._resume()

    def _flush(self) -> None:
        wbuf = self._wbuf
        if not wbuf:
            return
        transport = self._transport
        if transport is not None and not transport.is_closing():
            write_batch(transport, wbuf)
        wbuf.clear()

    def _on_wire_error(self, error: WireError) -> None:
        transport = self._transport
        too_large = error if isinstance(error, FrameTooLargeError) else None
        rid = None if too_large is None else too_large.request_id
        if too_large is not None and rid is not None and transport is not None:
            if too_large.part == "v1 message":
                transport.write(v1_exception_response(rid, str(error)))
            else:
                transport.write(exception_frame(rid, 500, str(error), ERRTYPE_SERVICE).encode())
        kind = "malformed" if too_large is None else "frameTooLarge"
        self._server.hit(kind, f"closing connection from {self.peer}: {error}")
        self.close()

    def check_timeouts(self, now: float) -> None:
        """Close the connection when its partial frame is older than the read timeout or its
        peer has read nothing for the write timeout (called by the server's sweep)."""
        transport = self._transport
        if self._closed or transport is None or transport.is_closing():
            return
        limits = self._server.limits
        since = self._partial_since
        if (
            since != _NEVER
            and limits.read_timeout is not None
            and not self.reading_paused
            and now - since >= limits.read_timeout
        ):
            self._server.hit(
                "readTimeout",
                f"closing {self.peer}: a frame incomplete after {limits.read_timeout:g} s",
            )
            self.abort()
            return
        since = self._write_paused_since
        timeout = limits.write_timeout
        if since != _NEVER and timeout is not None and now - since >= timeout:
            self._server.hit(
                "writeTimeout", f"closing {self.peer}: answers unread for {timeout:g} s"
            )
            self.abort()

    def _check_idle(self) -> None:
        self._idle_timer = None
        idle = self._server.idle_timeout
        if self._closed or idle is None:
            return
        quiet = self._clock.time() - self._last_read
        if self.in_flight == 0 and quiet >= idle:
            self._server.hit("idleTimeout")
            self.close()
            return
        delay = idle if self.in_flight else idle - quiet
        self._idle_timer = self._clock.call_later(delay, self._check_idle)

    # ------------------------------------------------------------------ control

    @property
    def write_buffer_size(self) -> int:
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close after the buffered answers are written."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            self._flush()
            transport.close()

    def abort(self) -> None:
        """Close at once, dropping buffered answers."""
        transport = self._transport
        if transport is not None:
            transport.abort()


class MotanServer:
    """Serves Motan2 requests on any number of TCP and unix-socket listeners."""

    def __init__(
        self,
        handler: RequestHandler,
        *,
        limits: ServerLimits | None = None,
        max_content_length: int | None = None,
        idle_timeout: float | None = None,
        heartbeat_enabled: bool = True,
        write_high_water: int | None = None,
        clock: Clock | None = None,
        tls: ServerTls | None = None,
    ) -> None:
        """``max_content_length``, ``idle_timeout`` and ``write_high_water`` (the write
        buffer size), when given, override those of ``limits`` (default: ServerLimits()).
        ``tls``: TLS on the TCP listeners (unix sockets stay plaintext)."""
        limits = limits or ServerLimits()
        if max_content_length is not None:
            limits = limits.with_(max_content_length=max_content_length)
        if idle_timeout is not None:
            limits = limits.with_(idle_timeout=idle_timeout)
        if write_high_water is not None:
            limits = limits.with_(write_buffer_size=write_high_water)
        self.limits = limits
        self.handler = handler
        self.max_content_length = limits.max_content_length
        self.idle_timeout = limits.idle_timeout
        #: off: a heartbeat closes its connection, so clients mark this node down
        self.heartbeat_enabled = heartbeat_enabled
        self.write_high_water = limits.write_buffer_size
        self.clock: Clock = clock if clock is not None else LoopClock()
        #: how many times each limit was hit (see ``motanmesh.transport.limits``)
        self.limit_hits: dict[str, int] = dict.fromkeys(LIMIT_COUNTERS, 0)
        self._limit_logged: dict[str, float] = {}
        self._sweep_timer: TimerHandle | None = None
        self._release_timer: TimerHandle | None = None
        #: TLS of the TCP listeners (None: plaintext only)
        self.tls = tls
        #: refused TLS port connections by reason (``motanmesh.transport.tls``)
        self.tls_refused: dict[str, int] = dict.fromkeys(REFUSAL_REASONS, 0)
        #: connections made on a TLS port, by kind (``tls``, ``plain``: permissive mode)
        self.tls_connections: dict[str, int] = {"tls": 0, "plain": 0}
        self._listeners: list[_Listener] = []
        self._unix_paths: list[str] = []
        self._connections: set[ServerConnection] = set()
        self._in_flight = 0
        self._closing = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._gone_waiter: asyncio.Future[None] | None = None
        self._closed: asyncio.Event | None = None

    # ------------------------------------------------------------------ listeners

    async def listen_tcp(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on ``host:port`` (0 picks a free port); return the bound address."""
        self._check_open()
        listener: _Listener
        if self.tls is not None:
            listener = TlsListener(self, tcp_socket(host, port), self.tls)
        else:
            loop = asyncio.get_running_loop()
            listener = await loop.create_server(self._new_connection, host, port, backlog=1024)
        self._listeners.append(listener)
        self._start_sweep()
        bound = listener.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    async def listen_unix(self, path: str) -> None:
        """Listen on the unix socket ``path`` (a stale socket file there is replaced)."""
        self._check_open()
        loop = asyncio.get_running_loop()
        listener = await loop.create_unix_server(self._new_connection, path, backlog=1024)
        self._listeners.append(listener)
        self._unix_paths.append(path)
        self._start_sweep()

    def _check_open(self) -> None:
        if self._closing:
            raise RuntimeError("server is closed")

    def _new_connection(self) -> ServerConnection:
        return ServerConnection(self)

    # ------------------------------------------------------------------ limits

    @property
    def tls_waiting(self) -> int:
        """Accepted sockets of TLS listeners that are not connections yet."""
        return sum(lst.waiting for lst in self._listeners if isinstance(lst, TlsListener))

    def tls_refuse(self, reason: str, message: str) -> None:
        """Count one refused TLS port connection; log ``message`` at most once per
        ``LIMIT_LOG_INTERVAL`` seconds per reason."""
        refused = self.tls_refused
        refused[reason] = refused.get(reason, 0) + 1
        now = time.monotonic()
        key = "tls:" + reason
        last = self._limit_logged.get(key)
        if last is None or now - last >= LIMIT_LOG_INTERVAL:
            self._limit_logged[key] = now
            _log.warning("%s (tls %s so far: %d)", message, reason, refused[reason])

    def hit(self, kind: str, message: str = "") -> None:
        """Count one hit of the limit ``kind``; log ``message`` unless this kind was logged
        less than ``LIMIT_LOG_INTERVAL`` seconds ago (the count says how many there were)."""
        hits = self.limit_hits
        hits[kind] = hits.get(kind, 0) + 1
        if not message:
            return
        now = time.monotonic()
        last = self._limit_logged.get(kind)
        if last is None or now - last >= LIMIT_LOG_INTERVAL:
            self._limit_logged[kind] = now
            _log.warning("%s (%s so far: %d)", message, kind, hits[kind])

    def _schedule_release(self) -> None:
        if self._release_timer is None and not self._closing:
            self._release_timer = self.clock.call_later(RELEASE_DELAY, self._release)

    def _release(self) -> None:
        self._release_timer = None
        release_memory()

    def _sweep_period(self) -> float | None:
        timeouts = [t for t in (self.limits.read_timeout, self.limits.write_timeout) if t]
        if not timeouts:
            return None
        return max(0.01, min(1.0, min(timeouts) / 4))

    def _start_sweep(self) -> None:
        period = self._sweep_period()
        if period is not None and self._sweep_timer is None:
            self._sweep_timer = self.clock.call_later(period, self._sweep)

    def _sweep(self) -> None:
        """Apply the read and write timeouts to every connection, then come back."""
        self._sweep_timer = None
        if self._closing:
            return
        now = self.clock.time()
        for conn in list(self._connections):
            conn.check_timeouts(now)
        self._start_sweep()

    # ------------------------------------------------------------------ state

    @property
    def in_flight(self) -> int:
        """Requests handed to the handler and not answered yet, over all connections."""
        return self._in_flight

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def connections(self) -> list[ServerConnection]:
        return list(self._connections)

    @property
    def closing(self) -> bool:
        return self._closing

    def _connection_made(self, conn: ServerConnection) -> None:
        self._connections.add(conn)

    def _connection_lost(self, conn: ServerConnection, unanswered: int) -> None:
        self._connections.discard(conn)
        if unanswered:
            self._in_flight -= unanswered
            if self._drain_waiter is not None and self._in_flight == 0:
                self._wake_drain()
        if not self._connections and self._gone_waiter is not None:
            _set_done(self._gone_waiter)

    def _wake_drain(self) -> None:
        if self._drain_waiter is not None:
            _set_done(self._drain_waiter)

    # ------------------------------------------------------------------ shutdown

    async def close(self, deadline: float = 5.0) -> None:
        """Stop accepting, let in-flight requests finish (up to ``deadline`` seconds), then
        close every connection. Requests that arrive on open connections meanwhile are still
        served. Safe to call more than once."""
        if self._closed is not None:
            await self._closed.wait()
            return
        self._closing = True
        self._closed = asyncio.Event()
        loop = asyncio.get_running_loop()
        clock = self.clock
        end = clock.time() + deadline
        for timer in (self._sweep_timer, self._release_timer):
            if timer is not None:
                timer.cancel()
        self._sweep_timer = self._release_timer = None
        for listener in self._listeners:
            listener.close()
        _unlink_sockets(self._unix_paths)
        await asyncio.sleep(0)  # serve what was already read by the loop
        while self._in_flight > 0 and clock.time() < end:
            await self._wait(loop, "_drain_waiter", end)
        for conn in list(self._connections):
            conn.close()
        if self._connections:
            await self._wait(loop, "_gone_waiter", end)
            for conn in list(self._connections):
                conn.abort()
            while self._connections:  # aborts complete on the next loop iterations
                await asyncio.sleep(0)
        for listener in self._listeners:
            await listener.wait_closed()
        self._listeners.clear()
        self._closed.set()

    async def _wait(self, loop: asyncio.AbstractEventLoop, attr: str, end: float) -> None:
        remaining = end - self.clock.time()
        if remaining <= 0:
            return
        waiter: asyncio.Future[None] = loop.create_future()
        setattr(self, attr, waiter)
        timer = self.clock.call_later(remaining, _set_done, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            setattr(self, attr, None)


class _Listener(Protocol):
    """A TCP or unix listener: ``asyncio.Server`` or a :class:`TlsListener`."""

    @property
    def sockets(self) -> Any: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _unlink_sockets(paths: list[str]) -> None:
    for path in paths:
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)
        except OSError:
            pass
