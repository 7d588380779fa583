"""A multiplexed Motan2 client of one address (``host:port`` or ``unix:///path``).

An :class:`Endpoint` keeps a small pool of connections and hands requests to them round
robin. Each request gets a fresh stream id in its header (the caller's id is put back on the
response), a place in a coarse deadline wheel (no timer of its own), and a Future; there is
no Task per request.

Health, as the Go agent does it: ``error_count_threshold`` consecutive non-biz errors
(timeouts, lost connections, exception responses whose errtype is not biz) mark the endpoint
unavailable; it then sends a heartbeat every ``keepalive_interval`` and is available again
after the first answered one. When the error that crossed the threshold was a
``404 provider not exist`` answer, the endpoint enters *profile* mode instead: it stays
unavailable, without heartbeats, until :meth:`Endpoint.reset` (the registry re-announcing
the node). Lost connections are re-made with a backoff capped at ``connect_retry_interval``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from collections.abc import Callable
from typing import Final, Protocol, cast

from motanmesh.transport.clock import Clock, DeadlineBuckets, LoopClock, TimerHandle
from motanmesh.transport.errors import (
    ConnectError,
    ConnectionLost,
    EndpointUnavailable,
    RequestTimeout,
    TransportError,
)
from motanmesh.transport.reads import GetBuffer, shared_read_buffer
from motanmesh.transport.tls import ClientTls, TlsRefused
from motanmesh.transport.writes import write_batch
from motanmesh.wire.decoder import FrameDecoder
from motanmesh.wire.errors import WireError
from motanmesh.wire.frame import (
    DEFAULT_MAX_CONTENT_LENGTH,
    ERRTYPE_BIZ,
    FLAG_PROXY,
    M_EXCEPTION,
    M_TIMEOUT,
    Frame,
    heartbeat_request,
    parse_exception,
)
from motanmesh.wire.passthrough import forward_into

__all__ = ["DEFAULT_CLIENT_CONNECTIONS", "Endpoint", "Reply", "ReplyCallback", "parse_address"]

_log = logging.getLogger("motanmesh.transport")

_MAX_ID: Final = (1 << 64) - 1
#: first reconnect delay after a failed attempt; doubles up to ``connect_retry_interval``
_BACKOFF_START: Final = 0.1
#: connection attempts one event loop makes at a time. An agent that refers to thousands of
#: providers starts thousands of endpoints at once; unbounded, their attempts outlast the
#: connect timeout while the loop works through the others, fail, and are made again
#: (measured: 6.5 connections made per endpoint for 10,000 endpoints)
MAX_CONCURRENT_CONNECTS: Final = 128
_connect_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _connect_gate(loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
    gate = _connect_gates.get(loop)
    if gate is None:
        gate = _connect_gates[loop] = asyncio.Semaphore(MAX_CONCURRENT_CONNECTS)
    return gate


_PROVIDER_NOT_EXIST: Final = "provider not exist"

#: connections per endpoint when ``clientConnection`` is not configured. One multiplexed
#: connection lets a single-threaded agent write every request of a loop iteration in one
#: syscall; more connections add no parallelism here (the Go agent's default is 3).
DEFAULT_CLIENT_CONNECTIONS: Final = 1

#: request timeouts are checked in slots this wide (a timeout fires up to this much late)
TIMEOUT_RESOLUTION: Final = 0.005


class Reply(Protocol):
    """Where the outcome of one request goes: an ``asyncio.Future[Frame]`` or a
    :class:`ReplyCallback`."""

    def done(self) -> bool: ...

    def set_result(self, result: Frame, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class ReplyCallback:
    """A :class:`Reply` that calls ``callback(response, error)`` synchronously, once: from
    the read of the response (``error`` None) or from the failure (``response`` None)."""

    __slots__ = ("_done", "callback")

    def __init__(self, callback: Callable[[Frame | None, BaseException | None], None]) -> None:
        self.callback = callback
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, result: Frame, /) -> None:
        if not self._done:
            self._done = True
            self._call(result, None)

    def set_exception(self, exception: BaseException, /) -> None:
        if not self._done:
            self._done = True
            self._call(None, exception)

    def _call(self, result: Frame | None, exception: BaseException | None) -> None:
        try:
            self.callback(result, exception)
        except Exception:  # must not break the read loop that delivered the response
            _log.exception("reply callback failed")


#: a pending request: (reply, caller's request id); heartbeats have no reply
_Pending = tuple[Reply | None, int]


def parse_address(address: str) -> tuple[str, int] | str:
    """``(host, port)`` for ``host:port`` / ``[v6]:port``; the path for ``unix://...``."""
    if address.startswith("unix:"):
        path = address[5:]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError(f"unix address without a path: {address!r}")
        return path
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"endpoint address must be host:port or unix:///path: {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class _Connection(asyncio.BufferedProtocol):
    """One pooled connection: writes requests, matches responses by stream id (reads as
    :mod:`motanmesh.transport.reads` describes)."""

    get_buffer: GetBuffer

    __slots__ = (
        "_decoder",
        "_endpoint",
        "error",
        "flush",
        "get_buffer",
        "paused",
        "pending",
        "seen",
        "slot",
        "transport",
        "wbuf",
    )

    def __init__(self, endpoint: Endpoint, slot: int) -> None:
        self._endpoint = endpoint
        self._decoder = FrameDecoder(endpoint.max_content_length)
        self._decoder.use_read_buffer(shared_read_buffer())
        #: the loop reads where the decoder says (its method itself: no call in between)
        self.get_buffer = self._decoder.get_buffer
        self.slot = slot
        self.transport: asyncio.Transport | None = None
        self.pending: dict[int, _Pending] = {}
        self.paused = False
        #: a frame arrived on this connection (it is not just accepted and dropped)
        self.seen = False
        self.error: BaseException | None = None
        #: request bytes written during this loop iteration, sent together by ``flush``
        self.wbuf: list[bytes] = []
        self.flush = self._flush

    def _flush(self) -> None:
        wbuf = self.wbuf
        if not wbuf:
            return
        transport = self.transport
        if transport is not None and not transport.is_closing():
            write_batch(transport, wbuf)
        wbuf.clear()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def buffer_updated(self, nbytes: int) -> None:
        error: WireError | None = None
        try:
            frames = self._decoder.buffer_updated(nbytes)
        except WireError as e:
            frames = list(e.frames)
            error = e
        pending = self.pending
        endpoint = self._endpoint
        origin = endpoint.address
        self.seen = True
        for frame in frames:
            if type(frame) is not Frame:
                continue  # a Motan v1 answer: nothing here sends v1 requests
            entry = pending.pop(frame.request_id, None)
            if entry is None:
                continue  # answered after its timeout
            fut, rid = entry
            if fut is None:
                endpoint._heartbeat_answered()
                continue
            if fut.done():
                continue  # the caller gave up (cancelled)
            frame.request_id = rid
            frame.origin = origin
            if frame.status:
                endpoint._exception_response(frame)
            elif endpoint.error_count:
                endpoint.error_count = 0
            fut.set_result(frame)
        if error is not None:
            self.error = error
            _log.warning("bad frame from %s: %s", endpoint.address, error)
            if self.transport is not None:
                self.transport.abort()

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        self._endpoint._connection_lost(self, self.error or exc)


class Endpoint:
    """A pool of multiplexed connections to one Motan2 server."""

    def __init__(
        self,
        address: str,
        *,
        connections: int = 3,
        request_timeout: float = 1.0,
        min_request_timeout: float | None = None,
        max_request_timeout: float | None = None,
        connect_timeout: float = 1.0,
        connect_retry_interval: float = 5.0,
        error_count_threshold: int = 10,
        keepalive_interval: float = 1.0,
        max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH,
        proxy: bool = False,
        clock: Clock | None = None,
        tls: ClientTls | None = None,
    ) -> None:
        """``tls``: connect with TLS (its newest context for each new connection); unix
        addresses stay plaintext."""
        if connections < 1:
            raise ValueError("an endpoint needs at least one connection")
        self.address = address
        self._target = parse_address(address)
        self.connections = connections
        self.request_timeout = request_timeout
        self.min_request_timeout = (
            request_timeout / 2 if min_request_timeout is None else min_request_timeout
        )
        self.max_request_timeout = (
            request_timeout * 2 if max_request_timeout is None else max_request_timeout
        )
        self.connect_timeout = connect_timeout
        self.connect_retry_interval = connect_retry_interval
        self.error_count_threshold = error_count_threshold
        self.keepalive_interval = keepalive_interval
        self.max_content_length = max_content_length
        self.proxy = proxy
        self.tls = tls
        self._set_flags = FLAG_PROXY if proxy else 0
        self.clock: Clock = clock if clock is not None else LoopClock()
        self._deadlines: DeadlineBuckets[tuple[_Connection, int]] = DeadlineBuckets(
            self.clock, TIMEOUT_RESOLUTION, self._timed_out
        )
        #: consecutive non-biz errors
        self.error_count = 0
        self._healthy = True
        self._profile = False
        self._closed = False
        self._live: list[_Connection] = []
        self._rr = 0
        self._next_id = 0
        self._failures = [0] * connections
        self._retry_timers: dict[int, TimerHandle] = {}
        self._connecting: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._keepalive_timer: TimerHandle | None = None
        self._last_connect_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ state

    @property
    def available(self) -> bool:
        """True when requests may be sent: connected, not marked down, not closed."""
        return self._healthy and bool(self._live) and not self._closed

    @property
    def profile(self) -> bool:
        """True when marked down by ``provider not exist`` answers (see :meth:`reset`)."""
        return self._profile

    @property
    def connected(self) -> int:
        """How many pooled connections are up."""
        return len(self._live)

    @property
    def in_flight(self) -> int:
        """Requests (and keepalive heartbeats) written and not answered yet."""
        return sum(len(c.pending) for c in self._live)

    def reset(self) -> None:
        """Forget the error history and leave profile mode (the node was re-announced)."""
        self._profile = False
        self._healthy = True
        self.error_count = 0
        self._stop_keepalive()

    # ------------------------------------------------------------------ connecting

    async def connect(self) -> None:
        """Open the pool. Connections that cannot be made are retried in the background;
        this never raises for them (see :attr:`available`)."""
        if self._closed:
            raise EndpointUnavailable(f"endpoint {self.address} is closed")
        if self._loop is None:
            self._bind_loop()
        missing = set(range(self.connections)) - {c.slot for c in self._live}
        missing -= self._connecting
        for slot in missing & self._retry_timers.keys():  # try those now rather than later
            self._retry_timers.pop(slot).cancel()
        await asyncio.gather(*(self._connect_slot(slot) for slot in sorted(missing)))

    async def _open(self, slot: int) -> _Connection:
        loop = asyncio.get_running_loop()
        target = self._target

        def factory() -> _Connection:
            return _Connection(self, slot)

        tls = self.tls
        async with _connect_gate(loop), asyncio.timeout(self.connect_timeout):
            if isinstance(target, str):
                _t, conn = await loop.create_unix_connection(factory, target)
            elif tls is None:
                _t, conn = await loop.create_connection(factory, target[0], target[1])
            else:
                _t, conn = await loop.create_connection(
                    factory,
                    target[0],
                    target[1],
                    ssl=tls.context(),
                    ssl_handshake_timeout=self.connect_timeout,
                )
                ssl_object = _t.get_extra_info("ssl_object")
                try:
                    tls.check_server(None if ssl_object is None else ssl_object.getpeercert())
                except TlsRefused as e:
                    _t.abort()
                    raise ConnectionRefusedError(f"TLS server refused: {e}") from e
        return conn

    async def _connect_slot(self, slot: int) -> None:
        if slot in self._connecting:
            return
        self._connecting.add(slot)
        try:
            conn = await self._open(slot)
        except (OSError, TimeoutError) as e:
            self._last_connect_error = e
            if not self._closed:
                delay = self._backoff(slot)
                _log.info("connect to %s failed (%s); retry in %.2fs", self.address, e, delay)
                self._retry_timers[slot] = self.clock.call_later(delay, self._retry, slot)
            return
        finally:
            self._connecting.discard(slot)
        if self._closed:
            assert conn.transport is not None
            conn.transport.close()
            return
        self._live.append(conn)

    def _backoff(self, slot: int) -> float:
        """The delay before the next attempt for ``slot``: doubles with each failure in a
        row, capped at ``connect_retry_interval``."""
        n = self._failures[slot] = self._failures[slot] + 1
        return min(self.connect_retry_interval, _BACKOFF_START * (1 << min(n - 1, 30)))

    def _retry(self, slot: int) -> None:
        self._retry_timers.pop(slot, None)
        if self._closed or self._loop is None:
            return
        task = self._loop.create_task(self._connect_slot(slot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _connection_lost(self, conn: _Connection, exc: BaseException | None) -> None:
        if conn in self._live:
            self._live.remove(conn)
        pending = conn.pending
        conn.pending = {}
        why = f"connection to {self.address} lost" + (f": {exc}" if exc else "")
        errors = 0
        for fut, _rid in pending.values():
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionLost(why))
                errors += 1
        if self._closed:
            return
        _log.info("%s", why)
        for _ in range(errors):
            self._record_error(False)
        slot = conn.slot
        if conn.seen:  # a working connection: re-make it at once
            self._failures[slot] = 0
            self._retry(slot)
        else:  # closed before answering anything: do not hammer the server
            self._retry_timers[slot] = self.clock.call_later(self._backoff(slot), self._retry, slot)

    # ------------------------------------------------------------------ requests

    def request(
        self, frame: Frame, changes: dict[str, str] | None = None, timeout: float | None = None
    ) -> asyncio.Future[Frame]:
        """Send ``frame`` and return a Future of its response.

        The response's ``request_id`` is ``frame.request_id``. Exception responses resolve
        the Future normally (inspect ``status``); a timeout, a lost connection or an
        unavailable endpoint set a :class:`TransportError`. ``M_tmo`` (milliseconds) in the
        request overrides the timeout when it lies within the endpoint's bounds.
        """
        loop = self._loop
        if loop is None:
            loop = self._bind_loop()
        fut: asyncio.Future[Frame] = loop.create_future()
        self.send(frame, fut, changes, timeout)
        return fut

    def send(
        self,
        frame: Frame,
        reply: Reply,
        changes: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> None:
        """:meth:`request` for the hot path: the outcome goes to ``reply`` (a Future or a
        :class:`ReplyCallback`, called synchronously when the response is read) instead of a
        new Future, which saves a loop iteration per call."""
        loop = self._loop
        if loop is None:
            loop = self._bind_loop()
        live = self._live
        if not self._healthy or not live or self._closed:
            reply.set_exception(self._unavailable())
            return
        i = self._rr + 1
        if i >= len(live):
            i = 0
        self._rr = i
        conn = live[i]
        if conn.paused:
            conn = self._least_busy()
        sid = self._next_id + 1
        if sid > _MAX_ID:
            sid = 1
        self._next_id = sid
        if timeout is None:
            timeout = self.request_timeout
        tmo = frame.metadata.get(M_TIMEOUT)
        if tmo:
            try:
                seconds = int(tmo) / 1000
            except ValueError:
                pass
            else:
                if self.min_request_timeout <= seconds <= self.max_request_timeout:
                    timeout = seconds
        self._deadlines.add(timeout, (conn, sid))
        conn.pending[sid] = (reply, frame.request_id)
        wbuf = conn.wbuf
        if not wbuf:
            loop.call_soon(conn.flush)
        forward_into(wbuf, frame, sid, changes, set_flags=self._set_flags)

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop = asyncio.get_running_loop()
        self._deadlines.bind(self.clock)
        return loop

    async def call(
        self, frame: Frame, changes: dict[str, str] | None = None, timeout: float | None = None
    ) -> Frame:
        """Await :meth:`request`."""
        return await self.request(frame, changes, timeout)

    def _least_busy(self) -> _Connection:
        live = self._live
        for conn in live:
            if not conn.paused:
                return conn
        return min(live, key=lambda c: c.transport.get_write_buffer_size() if c.transport else 0)

    def _unavailable(self) -> TransportError:
        if self._closed:
            return EndpointUnavailable(f"endpoint {self.address} is closed")
        if not self._live:
            cause = self._last_connect_error
            return ConnectError(
                f"endpoint {self.address} has no connection" + (f": {cause}" if cause else "")
            )
        if self._profile:
            return EndpointUnavailable(
                f"endpoint {self.address} is unavailable: provider does not exist there"
            )
        return EndpointUnavailable(
            f"endpoint {self.address} is unavailable after {self.error_count} errors"
        )

    def _timed_out(self, expired: list[tuple[_Connection, int]]) -> None:
        errors = 0
        for conn, sid in expired:
            entry = conn.pending.pop(sid, None)
            if entry is None:
                continue  # answered in time
            fut = entry[0]
            if fut is None or fut.done():
                continue  # an unanswered heartbeat (the next one follows), or a cancelled call
            fut.set_exception(RequestTimeout(f"request to {self.address} timed out"))
            errors += 1
        for _ in range(errors):
            self._record_error(False)

    # ------------------------------------------------------------------ health

    def _exception_response(self, frame: Frame) -> None:
        raw = frame.metadata.get(M_EXCEPTION)
        if not raw:
            self.error_count = 0  # status 1 without M_e carries no exception
            return
        exc = parse_exception(raw)
        if exc.errtype == ERRTYPE_BIZ:
            self.error_count = 0
            return
        self._record_error(exc.errcode == 404 and exc.errmsg.startswith(_PROVIDER_NOT_EXIST))

    def _record_error(self, provider_missing: bool) -> None:
        self.error_count += 1
        threshold = self.error_count_threshold
        if threshold <= 0 or self.error_count < threshold or not self._healthy:
            return
        self._healthy = False
        if provider_missing:
            self._profile = True
            _log.warning("endpoint %s: provider does not exist; marked down", self.address)
            return
        _log.warning("endpoint %s: %d errors; marked down", self.address, self.error_count)
        self._keepalive_timer = self.clock.call_later(self.keepalive_interval, self._keepalive)

    def _keepalive(self) -> None:
        self._keepalive_timer = None
        if self._closed or self._healthy or self._profile:
            return
        if self._live:
            conn = self._live[0] if len(self._live) == 1 else self._least_busy()
            sid = self._next_id + 1
            if sid > _MAX_ID:
                sid = 1
            self._next_id = sid
            self._deadlines.add(self.request_timeout, (conn, sid))
            conn.pending[sid] = (None, 0)
            assert conn.transport is not None
            conn.transport.write(heartbeat_request(sid))
        self._keepalive_timer = self.clock.call_later(self.keepalive_interval, self._keepalive)

    def _heartbeat_answered(self) -> None:
        if self._healthy or self._profile or self._closed:
            return
        _log.info("endpoint %s answers heartbeats again; marked up", self.address)
        self._healthy = True
        self.error_count = 0
        self._stop_keepalive()

    def _stop_keepalive(self) -> None:
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
            self._keepalive_timer = None

    # ------------------------------------------------------------------ shutdown

    async def close(self) -> None:
        """Close every connection; pending requests fail with :class:`ConnectionLost`."""
        if self._closed:
            return
        self._closed = True
        self._stop_keepalive()
        self._deadlines.clear()
        for timer in self._retry_timers.values():
            timer.cancel()
        self._retry_timers.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        live, self._live = self._live, []
        for conn in live:
            pending, conn.pending = conn.pending, {}
            for fut, _rid in pending.values():
                if fut is not None and not fut.done():
                    fut.set_exception(ConnectionLost(f"endpoint {self.address} closed"))
            if conn.transport is not None:
                conn.transport.close()
        await asyncio.sleep(0)  # let the transports run connection_lost
