"""The service library: Python callables served over Motan2.

Register callables per service path and method, then serve them::

    registry = ServiceRegistry()
    hello = registry.service("com.example.HelloService", group="demo")

    @hello.method("hello")
    def say_hello(name: str) -> str:
        return "hello " + name

    server = await registry.serve("127.0.0.1", 8100)

Three kinds of handlers:

* plain functions run in a bounded thread pool, off the event loop;
* ``async def`` functions run on the event loop;
* plain functions registered with ``inline=True`` run on the event loop right away (for
  handlers that never block: no thread hop, the fastest path).

A handler receives the decoded request arguments; registered with ``context=True`` it gets a
:class:`CallContext` first (request metadata, and metadata to send back).

Failures become exception responses (``M_e``), in motan-go's words: an unknown service is
``404 provider not exist serviceKey=<group>_<path>``; an unknown method, a body that does not
decode and an exception raised by the handler are errtype 1, errcode 500; a
:class:`~motanmesh.sdk.errors.MotanRemoteError` raised by the handler (a
:class:`~motanmesh.sdk.errors.MotanBizError` most often) is sent with its own errcode and
errtype.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, TypeVar

from motanmesh.sdk.errors import DEFAULT_ERRCODE, MotanRemoteError
from motanmesh.wire.frame import (
    ERRTYPE_SERVICE,
    FLAG_GZIP,
    FLAG_RESPONSE,
    HEAD,
    M_GROUP,
    M_METHOD,
    M_PATH,
    M_PROCESS_TIME,
    MAGIC,
    STATUS_NORMAL,
    VERSION_V2,
    Frame,
    encode_metadata,
    exception_frame,
    gunzip,
)
from motanmesh.wire.serialization import SIMPLE, Serialization, get_serialization

if TYPE_CHECKING:
    from motanmesh.transport.server import Responder, ServerConnection

__all__ = [
    "DEFAULT_MAX_WORKERS",
    "CallContext",
    "Dispatcher",
    "MotanService",
    "ServiceRegistry",
    "ServiceServer",
]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: threads in the pool that runs plain (blocking) handlers
DEFAULT_MAX_WORKERS: Final = 32

_INLINE: Final = 0
_THREAD: Final = 1
_ASYNC: Final = 2


@dataclass(slots=True)
class CallContext:
    """What a handler registered with ``context=True`` gets as its first argument."""

    path: str
    method: str
    group: str
    #: the request metadata: ``M_*`` keys and the caller's attachments
    metadata: dict[str, str]
    serialization: int
    #: the caller's address (``ip:port``, or the socket path)
    peer: str
    #: metadata to add to the response (attachments for the caller)
    reply_metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Method:
    fn: Callable[..., Any]
    kind: int
    context: bool


class MotanService:
    """The methods served under one service path (and, optionally, one group).

    A service without a group answers requests of any group that no group-specific
    registration of the same path claims.
    """

    def __init__(self, path: str, *, group: str = "") -> None:
        if not path:
            raise ValueError("a service needs a path")
        self.path = path
        self.group = group
        self.methods: dict[str, _Method] = {}

    def __repr__(self) -> str:
        return f"MotanService({self.path!r}, group={self.group!r}, methods={sorted(self.methods)})"

    def add(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        inline: bool = False,
        context: bool = False,
    ) -> None:
        """Serve ``fn`` as method ``name`` (replacing an earlier registration)."""
        if not name:
            raise ValueError("a method needs a name")
        kind = _ASYNC if inspect.iscoroutinefunction(fn) else (_INLINE if inline else _THREAD)
        self.methods[name] = _Method(fn, kind, context)

    def method(
        self, name: str | None = None, *, inline: bool = False, context: bool = False
    ) -> Callable[[F], F]:
        """Decorator: serve the function as method ``name`` (default: its ``__name__``)."""

        def register(fn: F) -> F:
            self.add(name or fn.__name__, fn, inline=inline, context=context)
            return fn

        return register

    def add_object(self, obj: object, *, inline: bool = False) -> None:
        """Serve every public method of ``obj`` (names not starting with ``_``)."""
        for name in dir(obj):
            if name.startswith("_"):
                continue
            if isinstance(inspect.getattr_static(obj, name), property):
                continue
            attr = getattr(obj, name)
            if callable(attr) and not isinstance(attr, type):
                self.add(name, attr, inline=inline)


class ServiceRegistry:
    """Services by path and group. Turn it into a transport handler with :meth:`as_handler`
    or serve it directly with :meth:`serve`."""

    def __init__(self) -> None:
        #: path -> group ("" for any group) -> service
        self._services: dict[str, dict[str, MotanService]] = {}

    def service(self, path: str, *, group: str = "") -> MotanService:
        """The service for ``path``/``group``, created on first use."""
        groups = self._services.setdefault(path, {})
        svc = groups.get(group)
        if svc is None:
            svc = groups[group] = MotanService(path, group=group)
        return svc

    def add(self, service: MotanService) -> MotanService:
        """Register a service built on its own (replacing one with the same path and group)."""
        self._services.setdefault(service.path, {})[service.group] = service
        return service

    def add_object(
        self, path: str, obj: object, *, group: str = "", inline: bool = False
    ) -> MotanService:
        """Serve the public methods of ``obj`` as service ``path``."""
        svc = self.service(path, group=group)
        svc.add_object(obj, inline=inline)
        return svc

    def find(self, group: str, path: str) -> MotanService | None:
        """The service a request for ``group``/``path`` goes to, if any."""
        groups = self._services.get(path)
        if groups is None:
            return None
        svc = groups.get(group)
        return svc if svc is not None else groups.get("")

    def services(self) -> list[MotanService]:
        return [svc for groups in self._services.values() for svc in groups.values()]

    def as_handler(
        self, *, max_workers: int = DEFAULT_MAX_WORKERS, executor: Executor | None = None
    ) -> Dispatcher:
        """A transport request handler serving this registry."""
        return Dispatcher(self, max_workers=max_workers, executor=executor)

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int | None = 0,
        *,
        unix_path: str | None = None,
        max_workers: int = DEFAULT_MAX_WORKERS,
        **server_options: Any,
    ) -> ServiceServer:
        """Start a :class:`ServiceServer` on ``host:port`` (unless ``port`` is None) and on
        ``unix_path`` (when given)."""
        server = ServiceServer(self, max_workers=max_workers, **server_options)
        try:
            await server.start(host, port, unix_path=unix_path)
        except BaseException:
            await server.close()
            raise
        return server


class Dispatcher:
    """The transport request handler: decode, call the handler, answer.

    Owns the thread pool of plain handlers (created on first use, unless an executor is
    given) and the tasks of async handlers; :meth:`close` ends both.
    """

    def __init__(
        self,
        registry: ServiceRegistry,
        *,
        max_workers: int = DEFAULT_MAX_WORKERS,
        executor: Executor | None = None,
    ) -> None:
        self.registry = registry
        self._max_workers = max_workers
        self._executor = executor
        self._own_executor = executor is None
        self._tasks: set[asyncio.Future[Any]] = set()

    @property
    def pending(self) -> int:
        """Calls running in the pool or on the loop, not yet answered."""
        return len(self._tasks)

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        start = perf_counter()
        meta = frame.metadata
        path = meta.get(M_PATH, "")
        name = meta.get(M_METHOD, "")
        group = meta.get(M_GROUP, "")
        svc = self.registry.find(group, path)
        if svc is None:
            msg = f"provider not exist serviceKey={group}_{path}"
            return _fail(frame, respond, start, 404, msg, ERRTYPE_SERVICE)
        method = svc.methods.get(name)
        if method is None:
            msg = f"method {name} is not found in provider."
            return _fail(frame, respond, start, 500, msg, ERRTYPE_SERVICE)
        try:
            ser = _serialization(frame.serialization)
            body = frame.body
            if frame.flags & FLAG_GZIP:
                body = gunzip(body)
            args = ser.decode_multi(body) if body else []
        except Exception as exc:
            msg = f"deserialize fail. err:{exc} method:{name}"
            return _fail(frame, respond, start, 500, msg, ERRTYPE_SERVICE)
        ctx: CallContext | None = None
        if method.context:
            ctx = CallContext(path, name, group, meta, frame.serialization, conn.peer)
            args.insert(0, ctx)
        kind = method.kind
        if kind == _INLINE:
            try:
                result = method.fn(*args)
            except Exception as exc:
                return _fail_with(frame, respond, start, exc, name)
            return _reply(frame, respond, start, ser, result, ctx)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any]
        if kind == _ASYNC:
            try:
                coro = method.fn(*args)  # wrong arguments raise here
            except Exception as exc:
                return _fail_with(frame, respond, start, exc, name)
            fut = loop.create_task(coro)
        else:
            fut = loop.run_in_executor(self._pool(), method.fn, *args)
        tasks = self._tasks
        tasks.add(fut)

        def done(f: asyncio.Future[Any]) -> None:
            tasks.discard(f)
            if f.cancelled():
                return _fail(frame, respond, start, 500, "request cancelled", ERRTYPE_SERVICE)
            exc = f.exception()
            if exc is not None:
                return _fail_with(frame, respond, start, exc, name)
            return _reply(frame, respond, start, ser, f.result(), ctx)

        fut.add_done_callback(done)
        return None

    def _pool(self) -> Executor:
        pool = self._executor
        if pool is None:
            pool = self._executor = ThreadPoolExecutor(
                self._max_workers, thread_name_prefix="motanmesh-service"
            )
        return pool

    async def close(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` seconds for running calls, cancel the rest, and shut the
        thread pool down (when it is ours)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        for fut in list(self._tasks):
            fut.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=0.1)
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


_SERIALIZATIONS: dict[int, Serialization] = {}


def _serialization(ident: int) -> Serialization:
    """:func:`get_serialization` with the ids seen so far cached."""
    ser = _SERIALIZATIONS.get(ident)
    if ser is None:
        ser = _SERIALIZATIONS[ident] = get_serialization(ident)
    return ser


def _elapsed_ms(start: float) -> str:
    return str(int((perf_counter() - start) * 1000))


_pack_head = HEAD.pack
_pack_u32 = struct.Struct(">I").pack
_VERSION_STATUS: Final = (VERSION_V2 << 3) | STATUS_NORMAL
#: ``M_pt`` metadata bytes for the common process times
_PT_META: Final = tuple(f"{M_PROCESS_TIME}\n{ms}".encode() for ms in range(100))


def _reply(
    frame: Frame,
    respond: Responder,
    start: float,
    ser: Serialization,
    result: Any,
    ctx: CallContext | None,
) -> None:
    try:
        body = b"" if result is None else ser.encode(result)
    except Exception as exc:
        msg = f"convert to response fail. err:{exc}"
        return _fail(frame, respond, start, 500, msg, ERRTYPE_SERVICE)
    ms = int((perf_counter() - start) * 1000)
    if ctx is not None and ctx.reply_metadata:
        meta = encode_metadata({M_PROCESS_TIME: str(ms), **ctx.reply_metadata})
    elif ms < 100:
        meta = _PT_META[ms]
    else:
        meta = f"{M_PROCESS_TIME}\n{ms}".encode()
    head = _pack_head(
        MAGIC, FLAG_RESPONSE, _VERSION_STATUS, ser.id << 3, frame.request_id, len(meta)
    )
    respond(b"".join((head, meta, _pack_u32(len(body)), body)))
    return None


def _fail_with(
    frame: Frame, respond: Responder, start: float, exc: BaseException, method: str
) -> None:
    if isinstance(exc, MotanRemoteError):
        return _fail(frame, respond, start, exc.errcode, exc.errmsg, exc.errtype)
    logger.error("handler of %s.%s failed", frame.metadata.get(M_PATH), method, exc_info=exc)
    msg = str(exc) or type(exc).__name__
    return _fail(frame, respond, start, DEFAULT_ERRCODE, msg, ERRTYPE_SERVICE)


def _fail(
    frame: Frame, respond: Responder, start: float, errcode: int, errmsg: str, errtype: int
) -> None:
    ser_id = frame.serialization
    try:
        _serialization(ser_id)
    except Exception:
        ser_id = SIMPLE
    reply = exception_frame(
        frame.request_id,
        errcode,
        errmsg,
        errtype,
        serialization=ser_id,
        metadata={M_PROCESS_TIME: _elapsed_ms(start)},
    )
    respond(reply.encode())


class ServiceServer:
    """A :class:`~motanmesh.transport.server.MotanServer` serving a registry.

    ``server_options`` go to ``MotanServer`` (``max_content_length``, ``idle_timeout``, ...).
    """

    def __init__(
        self,
        registry: ServiceRegistry,
        *,
        max_workers: int = DEFAULT_MAX_WORKERS,
        executor: Executor | None = None,
        **server_options: Any,
    ) -> None:
        from motanmesh.transport.server import MotanServer  # noqa: PLC0415 - sdk stays light

        self.registry = registry
        self.dispatcher = registry.as_handler(max_workers=max_workers, executor=executor)
        self.server = MotanServer(self.dispatcher, **server_options)
        #: where it listens: ``host:port`` and ``unix:///path`` strings
        self.addresses: list[str] = []

    async def start(
        self, host: str = "127.0.0.1", port: int | None = 0, *, unix_path: str | None = None
    ) -> list[str]:
        """Listen on TCP (unless ``port`` is None) and on a unix socket (when given)."""
        if port is None and unix_path is None:
            raise ValueError("nothing to listen on: give a port or a unix socket path")
        if port is not None:
            bound_host, bound_port = await self.server.listen_tcp(host, port)
            self.addresses.append(f"{bound_host}:{bound_port}")
        if unix_path is not None:
            await self.server.listen_unix(unix_path)
            self.addresses.append(f"unix://{unix_path}")
        return self.addresses

    @property
    def address(self) -> str:
        """The first address listened on."""
        return self.addresses[0]

    async def close(self, deadline: float = 5.0) -> None:
        """Stop listening, let running calls finish (up to ``deadline`` seconds), close."""
        await self.server.close(deadline)
        await self.dispatcher.close(0)  # what is still running has no connection left

    async def __aenter__(self) -> ServiceServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
