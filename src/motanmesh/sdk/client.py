"""The Motan2 client library for applications.

:class:`MotanClient` calls services through the local client agent (``127.0.0.1:9981`` by
default) or any Motan2 server::

    async with MotanClient(application="my-app", group="motan-demo-rpc") as client:
        greeting = await client.call("com.weibo.motan.demo.service.MotanDemoService",
                                     "hello", "world")

An exception response raises a :class:`~motanmesh.sdk.errors.MotanRemoteError` (the subclass
for its errtype); a transport failure raises the transport's errors
(:class:`~motanmesh.transport.errors.TransportError` and subclasses).

:class:`BlockingMotanClient` offers the same calls to code that is not async.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future as ConcurrentFuture
from typing import TYPE_CHECKING, Any, Final, TypeVar

from motanmesh.sdk.errors import from_exception, remote_error
from motanmesh.wire.frame import (
    ERRTYPE_SERVICE,
    FLAG_GZIP,
    M_EXCEPTION,
    M_GROUP,
    M_METHOD,
    M_PATH,
    M_PROXY_PROTOCOL,
    M_SOURCE,
    M_VERSION,
    STATUS_EXCEPTION,
    STATUS_NORMAL,
    VERSION_V2,
    Frame,
    encode_metadata,
    gunzip,
    parse_exception,
    request_frame,
)
from motanmesh.wire.serialization import Serialization, get_serialization

if TYPE_CHECKING:
    from motanmesh.transport.endpoint import Endpoint

__all__ = ["DEFAULT_ADDRESS", "BlockingMotanClient", "MotanClient", "decode_response"]

#: the local client agent, as the Go mesh client uses it
DEFAULT_ADDRESS: Final = "127.0.0.1:9981"
DEFAULT_CONNECTIONS: Final = 2
_META_CACHE_SIZE: Final = 1024

#: a request's metadata and its encoded bytes
_Meta = tuple[dict[str, str], bytes]

T = TypeVar("T")


def decode_response(frame: Frame, expected: Serialization | None = None) -> Any:
    """The value of a response frame, or raise the
    :class:`~motanmesh.sdk.errors.MotanRemoteError` it carries. ``expected`` is the
    serialization the response most likely uses (saves a look-up)."""
    if frame.status == STATUS_EXCEPTION:
        raw = frame.metadata.get(M_EXCEPTION)
        if not raw:
            raise remote_error(500, "exception response without M_e", ERRTYPE_SERVICE)
        raise from_exception(parse_exception(raw))
    body = frame.body
    if not body:
        return None
    if frame.flags & FLAG_GZIP:
        body = gunzip(body)
    if expected is not None and expected.id == frame.serialization:
        return expected.decode(body)
    return get_serialization(frame.serialization).decode(body)


class MotanClient:
    """An async Motan2 client over one multiplexed endpoint.

    ``group``, ``version`` and ``application`` (``M_s``) are the defaults of every call;
    ``timeout`` is the default per-call timeout in seconds. The connections are opened on
    the first call (or by :meth:`connect` / ``async with``); while none is up, calls raise
    :class:`~motanmesh.transport.errors.ConnectError` at once and the endpoint keeps
    reconnecting in the background (every 5 s at most). Exception responses never mark the
    address down (as the Go mesh client: no error-count threshold).
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        serialization: str = "simple",
        application: str = "",
        group: str = "",
        version: str = "",
        timeout: float = 1.0,
        connections: int = DEFAULT_CONNECTIONS,
        connect_timeout: float = 1.0,
    ) -> None:
        self.address = address
        self.serialization = get_serialization(serialization)
        #: (service, method, group, version) -> metadata and its bytes, for calls without
        #: attachments
        self._meta_cache: dict[tuple[str, str, str | None, str | None], _Meta] = {}
        self._application = application
        self._group = group
        self._version = version
        self.timeout = timeout
        self.connections = connections
        self.connect_timeout = connect_timeout
        self._endpoint: Endpoint | None = None
        self._connecting: asyncio.Lock | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"MotanClient({self.address!r}, serialization={self.serialization.name!r})"

    @property
    def application(self) -> str:
        """``M_s`` of every request."""
        return self._application

    @application.setter
    def application(self, value: str) -> None:
        self._application = value
        self._meta_cache.clear()

    @property
    def group(self) -> str:
        """``M_g`` of calls that do not give one."""
        return self._group

    @group.setter
    def group(self, value: str) -> None:
        self._group = value
        self._meta_cache.clear()

    @property
    def version(self) -> str:
        """``M_v`` of calls that do not give one (none when empty)."""
        return self._version

    @version.setter
    def version(self, value: str) -> None:
        self._version = value
        self._meta_cache.clear()

    async def connect(self) -> None:
        """Open the connections now (the first call does it otherwise)."""
        if self._endpoint is not None:
            return
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._endpoint is not None:
                return
            from motanmesh.transport.endpoint import Endpoint  # noqa: PLC0415

            endpoint = Endpoint(
                self.address,
                connections=self.connections,
                request_timeout=self.timeout,
                connect_timeout=self.connect_timeout,
                error_count_threshold=0,
            )
            try:
                await endpoint.connect()
            except BaseException:
                await endpoint.close()
                raise
            self._endpoint = endpoint

    def request(
        self,
        service: str,
        method: str,
        args: tuple[Any, ...] | list[Any],
        *,
        group: str | None = None,
        version: str | None = None,
        attachments: Mapping[str, str] | None = None,
    ) -> Frame:
        """The request frame :meth:`call` sends (request id 0: the endpoint assigns one)."""
        meta: dict[str, str] = dict(attachments) if attachments else {}
        meta[M_PATH] = service
        meta[M_METHOD] = method
        meta[M_GROUP] = self._group if group is None else group
        ver = self._version if version is None else version
        if ver:
            meta[M_VERSION] = ver
        meta[M_PROXY_PROTOCOL] = "motan2"
        if self._application:
            meta[M_SOURCE] = self._application
        ser = self.serialization
        return request_frame(0, meta, ser.encode_multi(args), serialization=ser.id)

    def _request(
        self,
        service: str,
        method: str,
        args: tuple[Any, ...],
        group: str | None,
        version: str | None,
        attachments: Mapping[str, str] | None,
    ) -> Frame:
        if attachments:
            return self.request(
                service, method, args, group=group, version=version, attachments=attachments
            )
        key = (service, method, group, version)
        cached = self._meta_cache.get(key)
        if cached is None:
            meta = self.request(service, method, (), group=group, version=version).metadata
            if len(self._meta_cache) >= _META_CACHE_SIZE:
                self._meta_cache.clear()
            cached = self._meta_cache[key] = (meta, encode_metadata(meta))
        ser = self.serialization
        # the cached metadata dict is shared by these frames: nothing downstream edits it
        return Frame(
            0, STATUS_NORMAL, ser.id, 0, cached[0], ser.encode_multi(args), VERSION_V2, cached[1]
        )

    async def call(
        self,
        service: str,
        method: str,
        *args: Any,
        group: str | None = None,
        version: str | None = None,
        attachments: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Call ``service.method(*args)`` and return the decoded result."""
        frame = self._request(service, method, args, group, version, attachments)
        endpoint = self._endpoint
        if endpoint is None:
            await self.connect()
            endpoint = self._endpoint
            assert endpoint is not None
        reply = await endpoint.request(frame, None, self.timeout if timeout is None else timeout)
        return decode_response(reply, self.serialization)

    async def call_frame(self, frame: Frame, *, timeout: float | None = None) -> Frame:
        """Send a request frame as it is; return the response frame (exceptions included)."""
        endpoint = self._endpoint
        if endpoint is None:
            await self.connect()
            endpoint = self._endpoint
            assert endpoint is not None
        return await endpoint.call(frame, timeout=self.timeout if timeout is None else timeout)

    async def close(self) -> None:
        """Close the connections; calls in flight fail."""
        self._closed = True
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            await endpoint.close()

    async def __aenter__(self) -> MotanClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class BlockingMotanClient:
    """A :class:`MotanClient` for code that is not async.

    It runs an event loop in a background thread; :meth:`call` blocks the calling thread
    until the answer arrives. Safe to use from several threads at once. Same arguments as
    :class:`MotanClient`.
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, **options: Any) -> None:
        self._client = MotanClient(address, **options)
        self._loop = _new_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="motanmesh-client", daemon=True
        )
        self._thread.start()
        self._closed = False

    @property
    def client(self) -> MotanClient:
        """The async client behind this one (use it only on :attr:`loop`)."""
        return self._client

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("the client is closed")
        fut: ConcurrentFuture[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result()

    def connect(self) -> None:
        self._run(self._client.connect())

    def call(
        self,
        service: str,
        method: str,
        *args: Any,
        group: str | None = None,
        version: str | None = None,
        attachments: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Call ``service.method(*args)``; blocks until the result (or error) arrives."""
        return self._run(
            self._client.call(
                service,
                method,
                *args,
                group=group,
                version=version,
                attachments=attachments,
                timeout=timeout,
            )
        )

    def close(self) -> None:
        """Close the connections and stop the background loop."""
        if self._closed:
            return
        try:
            self._run(self._client.close())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> BlockingMotanClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # noqa: PLC0415

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        loop = asyncio.new_event_loop()
    return loop
