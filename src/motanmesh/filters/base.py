"""Filters: code that runs around every call of a refer or an exported service.

A :class:`Filter` is built once per refer (client side) or per exported service (server
side) from the names in the URL's ``filter`` parameter, the agent's ``defaultFilter`` and
``globalFilter``, and ``MESH_FILTERS`` (:mod:`motanmesh.filters.chain`). Each request that
passes through a chain is one :class:`Call`; a filter either hands it on (``proceed(call)``)
or answers it (:meth:`Call.complete` / :meth:`Call.fail`), and may watch its end with
:meth:`Call.on_complete`. Chains are callbacks all the way: no Future and no Task per call,
and the request body is never decoded here.

Kinds, as in the Go agent: ``cluster`` filters run once per client call, around the HA
strategy (retries included); ``endpoint`` filters run around each attempt on one provider
endpoint (client side) and around the provider (server side). Lower ``index`` runs first
(outermost).
"""

from __future__ import annotations

import inspect
import logging
import time
from abc import ABC, abstractmethod
from asyncio import InvalidStateError
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal, TypeVar

from mypy_extensions import mypyc_attr

from motanmesh.switcher import SwitcherManager
from motanmesh.transport.endpoint import Reply
from motanmesh.url import URL
from motanmesh.wire.frame import (
    ERRTYPE_BIZ,
    ERRTYPE_SERVICE,
    M_EXCEPTION,
    M_GROUP,
    M_METHOD,
    M_PATH,
    M_SOURCE,
    Frame,
    exception_frame,
    parse_exception,
)

__all__ = [
    "ERROR_BIZ",
    "ERROR_OTHER",
    "ROLE_CLIENT",
    "ROLE_SERVER",
    "Call",
    "Completion",
    "Filter",
    "FilterContext",
    "FilterKind",
    "Finish",
    "Handler",
    "error_kind",
    "settle",
    "status_filters",
]

log = logging.getLogger("motanmesh.filters")

ROLE_CLIENT: Final = "motan-client-agent"
ROLE_SERVER: Final = "motan-server-agent"
ERROR_BIZ: Final = "biz"
ERROR_OTHER: Final = "other"

FilterKind = Literal["endpoint", "cluster"]
#: watches the end of a call: ``(call, response, exception)``
Completion = Callable[["Call", Frame | None, BaseException | None], None]
#: how a chain hands the outcome back to whoever started the call
Finish = Callable[[Frame | None, BaseException | None], None]
#: one link of a chain
Handler = Callable[["Call"], None]
T = TypeVar("T")
_perf_counter = time.perf_counter


def settle(reply: Reply, response: Frame | None, exc: BaseException | None) -> None:
    """Hand ``response`` (or the failure ``exc``) to ``reply``. Without asking it first
    whether it is done: the replies of the call path take only their first answer, and a
    future that is already done (its caller gave up) refuses this one, which is dropped."""
    try:
        if response is not None:
            reply.set_result(response)
        else:
            reply.set_exception(exc if exc is not None else RuntimeError("no response"))
    except InvalidStateError:
        pass


def error_kind(response: Frame | None, exc: BaseException | None) -> str | None:
    """``None`` for a success, :data:`ERROR_BIZ` for a business exception (errtype 2),
    :data:`ERROR_OTHER` for any other exception response or a transport error."""
    if response is None:
        return ERROR_OTHER
    if not response.status:
        return None
    value = response.metadata.get(M_EXCEPTION)
    if not value:  # like motan-go, only M_e makes an exception
        return None
    return ERROR_BIZ if parse_exception(value).errtype == ERRTYPE_BIZ else ERROR_OTHER


@mypyc_attr(allow_interpreted_subclasses=True)
class Call:
    """One request passing through one chain.

    A call is also the completion of its innermost step: it has the ``done()``,
    ``set_result()`` and ``set_exception()`` of a :class:`~motanmesh.transport.endpoint.Reply`,
    so the chain hands the call itself to the endpoint (or to the HA strategy) as the place
    its answer goes, and no callback object is made per call."""

    __slots__ = (
        "_attrs",
        "_callbacks",
        "_done",
        "_finish",
        "_reply",
        "changes",
        "conn",
        "peer",
        "raw_response",
        "request",
        "response_size",
        "role",
        "start",
        "timeout",
        "url",
    )

    def __init__(
        self,
        request: Frame,
        url: URL,
        role: str,
        peer: str,
        changes: dict[str, str],
        finish: Finish | None = None,
        timeout: float | None = None,
        reply: Reply | None = None,
    ) -> None:
        #: the request as received; its body is bytes and stays undecoded
        self.request = request
        #: the refer (client side) or the exported service (server side)
        self.url = url
        #: :data:`ROLE_CLIENT` or :data:`ROLE_SERVER`
        self.role = role
        #: the caller (server side), the provider (client endpoint filters), or ""
        self.peer = peer
        #: metadata the agent writes on the wire; filters may add keys
        self.changes = changes
        #: per-attempt timeout (seconds) of a client endpoint call
        self.timeout = timeout
        #: ``time.perf_counter()`` when the call entered its chain
        self.start = _perf_counter()
        #: the size in bytes of the response as it travels (set when known)
        self.response_size = -1
        #: server side: the caller's ``ServerConnection`` (peer address, TLS identity...)
        self.conn: Any = None
        #: server side: the response bytes as the provider wrote them
        self.raw_response: bytes | None = None
        #: where the outcome goes once the filters have seen it: ``finish(response, exc)``
        #: or a :class:`~motanmesh.transport.endpoint.Reply` (a Future, or another call)
        self._finish = finish
        self._reply = reply
        self._callbacks: list[Completion] | None = None
        self._attrs: dict[str, Any] | None = None
        self._done = False

    # ------------------------------------------------------------------ request fields

    @property
    def service(self) -> str:
        return self.request.metadata.get(M_PATH, "")

    @property
    def method(self) -> str:
        return self.request.metadata.get(M_METHOD, "")

    @property
    def group(self) -> str:
        """The group the caller asked for (``M_g``), else the URL's group."""
        return self.request.metadata.get(M_GROUP) or self.url.group

    @property
    def caller(self) -> str:
        """The calling application (``M_s``); unauthenticated."""
        return self.request.metadata.get(M_SOURCE) or self.changes.get(M_SOURCE, "")

    @property
    def request_size(self) -> int:
        return len(self.request.body)

    @property
    def attrs(self) -> dict[str, Any]:
        """Per-call scratch space for filters."""
        if self._attrs is None:
            self._attrs = {}
        return self._attrs

    def done(self) -> bool:
        """Whether the call has ended (as ``asyncio.Future.done()``)."""
        return self._done

    # ------------------------------------------------------------------ completion

    def on_complete(self, callback: Completion) -> None:
        """Call ``callback(call, response, exception)`` when the call ends; callbacks run
        innermost first (the reverse of the order they were added)."""
        if self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def complete(self, response: Frame | None, exc: BaseException | None = None) -> None:
        """End the call with ``response`` (or the transport error ``exc``). Only the first
        completion counts; a failing callback is logged and the others still run."""
        if self._done:
            return
        self._done = True
        callbacks = self._callbacks
        if callbacks is not None:
            i = len(callbacks)
            while i:
                i -= 1
                try:
                    callbacks[i](self, response, exc)
                except Exception:
                    log.exception("a filter failed at the end of a call to %s", self.service)
        try:
            self._end(response, exc)
        except Exception:  # must not break the read loop that delivered the answer
            log.exception("answering a call to %s failed", self.service)

    def _end(self, response: Frame | None, exc: BaseException | None) -> None:
        """Hand the outcome on, after the filters have seen it."""
        reply = self._reply
        if reply is not None:
            settle(reply, response, exc)
            return
        finish = self._finish
        if finish is not None:
            finish(response, exc)

    def set_result(self, result: Frame, /) -> None:
        """The answer of the step the call was handed to (a ``Reply``)."""
        self.complete(result, None)

    def set_exception(self, exception: BaseException, /) -> None:
        """The failure of the step the call was handed to (a ``Reply``)."""
        self.complete(None, exception)

    def fail(self, errcode: int, errmsg: str, errtype: int = ERRTYPE_SERVICE) -> None:
        """End the call with a Motan exception response (``M_e``)."""
        request = self.request
        self.complete(
            exception_frame(
                request.request_id,
                errcode,
                errmsg,
                errtype,
                serialization=request.serialization,
                proxy=request.is_proxy,
            )
        )


@mypyc_attr(allow_interpreted_subclasses=True)
class Filter(ABC):
    """Base of every filter. Subclasses set :attr:`name`, :attr:`kind`, :attr:`index` and
    implement :meth:`invoke`. One instance serves one refer or one exported service, so it
    may keep per-URL state; it runs on the agent's event loop and must never block."""

    #: the name used in ``filter:`` lists
    name: ClassVar[str] = ""
    kind: ClassVar[FilterKind] = "endpoint"
    #: lower runs first (outermost)
    index: ClassVar[int] = 0

    def __init__(self, url: URL, context: FilterContext) -> None:
        self.url = url
        self.context = context

    @abstractmethod
    def invoke(self, call: Call, proceed: Handler, /) -> None:
        """Hand ``call`` on with ``proceed(call)``, or end it (:meth:`Call.complete`,
        :meth:`Call.fail`) without going on."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """The refer or service is gone, or the agent stops."""

    def is_available(self, peer: str) -> bool:
        """Endpoint filters on the client side may override this to take the provider at
        ``peer`` (``host:port``) out of load balancing (the Go agent's ``Status`` filters,
        e.g. ``failfast``). Only overriding filters are asked, whenever the load balancer
        looks at the provider."""
        return True

    def info(self) -> dict[str, Any]:
        """What ``/runtime/info`` shows of this filter."""
        return {"name": self.name, "kind": self.kind, "index": self.index}


@dataclass
class FilterContext:
    """What the agent shares with its filters."""

    application: str = ""
    switchers: SwitcherManager = field(default_factory=SwitcherManager)
    local_ip: str = "127.0.0.1"
    #: ``log_dir`` of the agent (``-log_dir`` or ``motan-agent``): where logs are written
    log_dir: str = "."
    #: ``defaultFilter`` / ``globalFilter`` of ``motan-agent`` (for refers and services
    #: added at run time; configured ones already carry them)
    default_filter: list[str] = field(default_factory=list)
    global_filter: list[str] = field(default_factory=list)
    #: the ``motan-agent`` section's other keys, as strings
    params: dict[str, str] = field(default_factory=dict)
    #: agent-wide objects filters share (a metrics store, an access-log writer...)
    services: dict[str, Any] = field(default_factory=dict)

    def get_service(self, name: str, factory: Callable[[], T]) -> T:
        """The shared object ``name``, made by ``factory`` on first use."""
        found = self.services.get(name)
        if found is None:
            found = self.services[name] = factory()
        return found

    async def close(self) -> None:
        """Close every shared object that has a ``close()`` (awaited when async)."""
        for name, service in list(self.services.items()):
            close = getattr(service, "close", None)
            if close is None:
                continue
            try:
                result = close()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("closing filter service %s failed", name)
        self.services.clear()


def status_filters(filters: Sequence[Filter]) -> tuple[Filter, ...]:
    """The filters that override :meth:`Filter.is_available`."""
    return tuple(f for f in filters if type(f).is_available is not Filter.is_available)
