"""The built-in watchers without a chain (:mod:`motanmesh.filters.direct`): for the same calls
on real loopback sockets, the direct path and the chain record the same metric series and
counts and write the same access-log lines (successes, biz exceptions, service exceptions,
an exception status without ``M_e``, timeouts and a dead provider), on a client endpoint,
around a whole refer call (retries included) and around a server-side provider."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from motanmesh.agent.dispatcher import Provider
from motanmesh.agent.filtering import FilteredProvider, with_filters
from motanmesh.agent.providers import Motan2Provider
from motanmesh.cluster.cluster import Cluster, ProviderEndpoint
from motanmesh.filters import Call, Filter, FilterContext, Handler, register_filter
from motanmesh.filters.access_log import AccessLogFilter
from motanmesh.filters.access_log_writer import ACCESS_LOG_FILE, ACCESS_LOG_SERVICE
from motanmesh.filters.chain import resolve_filters
from motanmesh.filters.direct import WatchedCall, direct_watchers
from motanmesh.filters.metrics import MetricsFilter
from motanmesh.telemetry.store import METRICS_SERVICE, MetricStore
from motanmesh.transport import MotanServer
from motanmesh.transport.endpoint import Endpoint
from motanmesh.transport.server import Responder, ServerConnection
from motanmesh.url import URL
from motanmesh.wire.frame import (
    ERRTYPE_BIZ,
    ERRTYPE_SERVICE,
    FLAG_RESPONSE,
    M_GROUP,
    M_METHOD,
    M_METHOD_DESC,
    M_PATH,
    M_SOURCE,
    Frame,
    exception_frame,
    request_frame,
    response_frame,
)
from tests.servers import free_port
from tests.transport.support import RawClient

SERVICE = "com.example.Orders"
GROUP = "g1"
TIMEOUT_MS = 300
#: what the backend does for each method (``slow``: never answers, the call times out)
METHODS = ("ok", "empty", "biz", "fail", "status", "slow", "ok")


def backend(frame: Frame, respond: Responder, conn: ServerConnection) -> None:
    rid = frame.request_id
    method = frame.metadata.get(M_METHOD, "")
    if method == "ok":
        respond(response_frame(rid, {"M_pt": "3", "upstreamCode": "201"}, b"hello").encode())
    elif method == "empty":
        respond(response_frame(rid, {}, b"").encode())
    elif method == "biz":
        respond(exception_frame(rid, 409, 'taken "x"', ERRTYPE_BIZ).encode())
    elif method == "fail":
        respond(exception_frame(rid, 503, "down", ERRTYPE_SERVICE).encode())
    elif method == "status":  # an exception status without M_e: a success, as in motan-go
        respond(Frame(FLAG_RESPONSE, 1, 6, rid, {"M_pt": "1"}, b"").encode())


def request(rid: int, method: str, **extra: str) -> Frame:
    meta = {
        M_PATH: SERVICE,
        M_METHOD: method,
        M_METHOD_DESC: "java.lang.String",
        M_GROUP: GROUP,
        M_SOURCE: "caller-app",
        **extra,
    }
    return request_frame(rid, meta, b"x" * (rid + 3))


def context(tmp_path: Path, name: str) -> FilterContext:
    return FilterContext(application="app", log_dir=str(tmp_path / name))


def series(ctx: FilterContext) -> dict[Any, tuple[int, int, int, int, int]]:
    """Each series' calls, biz and other errors, slow calls and the calls in its histogram."""
    store = ctx.services[METRICS_SERVICE]
    assert isinstance(store, MetricStore)
    return {
        key: (s.calls, s.biz_errors, s.other_errors, s.slow, sum(s.buckets))
        for key, s in store.series.items()
    }


def lines(tmp_path: Path, name: str) -> list[list[str]]:
    """The access-log lines without their time stamp, split into fields; ``totalTime`` (the
    only field that depends on timing) is checked, then masked."""
    text = (tmp_path / name / ACCESS_LOG_FILE).read_text(encoding="utf-8")
    out = []
    for line in text.splitlines():
        stamp, _, message = line.partition("\t")
        assert stamp[:2] == "20" and message
        fields = message.split("|")
        assert len(fields) == 15, line
        assert fields[10].isdigit()
        if fields[4] == "slow":
            assert int(fields[10]) >= TIMEOUT_MS - 50
        fields[10] = "T"
        out.append(fields)
    return out


def outcome(fut: asyncio.Future[Frame]) -> tuple[Any, ...]:
    exc = fut.exception()
    if exc is not None:
        return ("error", type(exc).__name__)
    answer = fut.result()
    return (answer.request_id, answer.status, sorted(answer.metadata.items()), answer.body)


async def settle(fut: asyncio.Future[Frame]) -> asyncio.Future[Frame]:
    await asyncio.wait([fut], timeout=10)
    assert fut.done()
    return fut


@pytest.fixture
def loop_backend() -> Iterator[MotanServer]:
    yield MotanServer(backend)


async def test_client_endpoint_calls_record_as_through_the_chain(
    tmp_path: Path, loop_backend: MotanServer
) -> None:
    host, port = await loop_backend.listen_tcp()
    dead = free_port()
    refer = URL("motan2", "127.0.0.1", 0, SERVICE, GROUP, {"filter": "accessLog,metrics"})
    seen: dict[bool, Any] = {}
    try:
        for direct in (True, False):
            name = "direct" if direct else "chain"
            ctx = context(tmp_path, name)
            found = resolve_filters(refer, ctx)
            assert (direct_watchers(found.endpoint) is not None) is True
            live = ProviderEndpoint(
                URL("motan2", host, port, SERVICE, GROUP),
                Endpoint(f"{host}:{port}", request_timeout=TIMEOUT_MS / 1000, proxy=True),
                refer,
                found.endpoint,
                direct=direct,
            )
            gone = ProviderEndpoint(
                URL("motan2", "127.0.0.1", dead, SERVICE, GROUP),
                Endpoint(f"127.0.0.1:{dead}", connect_timeout=0.5, proxy=True),
                refer,
                found.endpoint,
                direct=direct,
            )
            await live.endpoint.connect()
            outcomes = []
            for rid, method in enumerate(METHODS, 1):
                fut = live.request(request(rid, method), {"host": "10.1.1.1"}, TIMEOUT_MS / 1000)
                outcomes.append(outcome(await settle(fut)))
            await gone.endpoint.connect()  # nothing listens: the endpoint is unavailable
            outcomes.append(outcome(await settle(gone.request(request(99, "ok"), None, 0.3))))
            await live.endpoint.close()
            await gone.endpoint.close()
            counted = series(ctx)
            await ctx.close()
            seen[direct] = (outcomes, counted, lines(tmp_path, name))
    finally:
        await loop_backend.close(deadline=0)
    assert seen[True] == seen[False]
    outcomes, counts, logged = seen[True]
    assert [f[4] for f in logged] == [*METHODS, "ok"]
    assert [(f[11], f[12]) for f in logged] == [
        ("true", "200"),
        ("true", "200"),
        ("false", "409"),
        ("false", "503"),
        ("true", "200"),
        ("false", "400"),
        ("true", "200"),
        ("false", "400"),
    ]
    assert logged[0][6] == f"{host}:{port}" and logged[0][1] == "client-agent"
    assert logged[0][8:10] == ["5", "3"] and logged[0][14] == "201"
    assert "channel call error" in logged[5][13]
    assert logged[7][6] == f"127.0.0.1:{dead}"
    assert {
        (k.role, k.application, k.group, k.service, k.method): n[:3] for k, n in counts.items()
    } == {
        ("motan-client-agent", "app", GROUP, SERVICE, "ok"): (3, 0, 1),
        ("motan-client-agent", "app", GROUP, SERVICE, "empty"): (1, 0, 0),
        ("motan-client-agent", "app", GROUP, SERVICE, "biz"): (1, 1, 0),
        ("motan-client-agent", "app", GROUP, SERVICE, "fail"): (1, 0, 1),
        ("motan-client-agent", "app", GROUP, SERVICE, "status"): (1, 0, 0),
        ("motan-client-agent", "app", GROUP, SERVICE, "slow"): (1, 0, 1),
    }


async def test_refer_calls_with_retries_record_as_through_the_chain(
    tmp_path: Path, loop_backend: MotanServer
) -> None:
    host, port = await loop_backend.listen_tcp()
    refer = URL(
        "motan2",
        "127.0.0.1",
        0,
        SERVICE,
        GROUP,
        {
            "filter": "clusterAccessLog,clusterMetrics,accessLog,metrics",
            "retries": "1",
            "requestTimeout": str(TIMEOUT_MS),
        },
    )
    seen: dict[bool, Any] = {}
    try:
        for direct in (True, False):
            name = "direct" if direct else "chain"
            ctx = context(tmp_path, name)
            found = resolve_filters(refer, ctx)
            assert direct_watchers(found.cluster) is not None
            cluster = Cluster(refer, [], filters=found, direct=direct)
            ep = ProviderEndpoint(
                URL("motan2", host, port, SERVICE, GROUP),
                Endpoint(f"{host}:{port}", request_timeout=TIMEOUT_MS / 1000, proxy=True),
                refer,
                found.endpoint,
                direct=direct,
            )
            await ep.endpoint.connect()
            cluster.lb.on_refresh([ep])
            outcomes = []
            for rid, method in enumerate(METHODS, 1):
                fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
                cluster.send(request(rid, method), fut, {"x": "y"})
                outcomes.append(outcome(await settle(fut)))
            await ep.endpoint.close()
            counted = series(ctx)
            await ctx.close()
            seen[direct] = (outcomes, counted, lines(tmp_path, name))
    finally:
        await loop_backend.close(deadline=0)
    assert seen[True] == seen[False]
    _outcomes, counts, logged = seen[True]
    roles = {(f[0], f[6] == "") for f in logged}
    assert roles == {("clusterAccessLog", True), ("accessLog", False)}
    groups: dict[str, int] = {}
    for key, n in counts.items():
        groups[key.group + key.group_suffix] = groups.get(key.group + key.group_suffix, 0) + n[0]
    # the cluster filters see each call once; the endpoint filters each attempt (failed
    # service exceptions and the timeout were tried twice)
    assert groups[GROUP + ".cluster"] == len(METHODS)
    assert groups[GROUP] > len(METHODS)


async def test_server_provider_calls_record_and_answer_as_through_the_chain(
    tmp_path: Path, loop_backend: MotanServer
) -> None:
    _host, port = await loop_backend.listen_tcp()
    url = URL(
        "motan2",
        "127.0.0.1",
        0,
        SERVICE,
        GROUP,
        {"proxy": f"motan2:{port}", "filter": "accessLog,metrics", "requestTimeout": "300"},
    )
    seen: dict[bool, Any] = {}
    try:
        for direct in (True, False):
            name = "direct" if direct else "chain"
            ctx = context(tmp_path, name)
            inner = Motan2Provider(url)
            provider = with_filters(inner, url, ctx)
            assert isinstance(provider, FilteredProvider)
            assert provider.entry is not None
            if not direct:
                provider = FilteredProvider(inner, provider.filters, direct=False)
            await provider.start()
            server = MotanServer(provider)
            host, agent_port = await server.listen_tcp()
            client = await RawClient.open(f"{host}:{agent_port}")
            answers = []
            try:
                for rid, method in enumerate(METHODS, 1):
                    extra = {"host": "10.0.0.9"} if rid % 2 else {}
                    await client.send(request(rid, method, **extra).encode())
                    a = await client.read_frame()
                    answers.append((a.request_id, a.status, sorted(a.metadata.items()), a.body))
            finally:
                await client.close()
                await server.close(deadline=0)
                await provider.close()
            counted = series(ctx)
            await ctx.close()
            seen[direct] = (answers, counted, lines(tmp_path, name))
    finally:
        await loop_backend.close(deadline=0)
    assert seen[True] == seen[False]
    _answers, counts, logged = seen[True]
    assert {f[1] for f in logged} == {"server-agent"}
    assert [f[6] for f in logged[:2]] == ["10.0.0.9", ""]
    assert logged[0][8] == "5"  # the response body, read from the bytes written
    assert [(f[11], f[12]) for f in logged] == [
        ("true", "200"),
        ("true", "200"),
        ("false", "409"),
        ("false", "503"),
        ("true", "200"),
        ("false", "400"),  # the provider's timeout, a transport error
        ("true", "200"),
    ]
    assert "channel call error" in logged[5][13]
    assert {(k.role, k.method): n[:3] for k, n in counts.items()} == {
        ("motan-server-agent", "ok"): (2, 0, 0),
        ("motan-server-agent", "empty"): (1, 0, 0),
        ("motan-server-agent", "biz"): (1, 1, 0),
        ("motan-server-agent", "fail"): (1, 0, 1),
        ("motan-server-agent", "status"): (1, 0, 0),
        ("motan-server-agent", "slow"): (1, 0, 1),
    }


class Watching(Filter):
    name = "directTestWatching"
    index = 3

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        proceed(call)


class MyMetrics(MetricsFilter):
    name = "directTestMetrics"


register_filter(Watching)
register_filter(MyMetrics)


def test_other_filters_keep_the_chain(tmp_path: Path) -> None:
    ctx = context(tmp_path, "x")

    def watchers(names: str) -> Any:
        url = URL("motan2", "127.0.0.1", 0, SERVICE, GROUP, {"filter": names})
        return direct_watchers(resolve_filters(url, ctx).endpoint)

    both = watchers("accessLog,metrics")
    assert isinstance(both.access, AccessLogFilter) and isinstance(both.metrics, MetricsFilter)
    assert watchers("metrics").access is None
    assert watchers("accessLog").metrics is None
    assert watchers("accessLog,metrics,directTestWatching") is None
    assert watchers("directTestMetrics") is None  # a subclass may change what it does
    assert watchers("accessLog,rateLimit") is None
    assert direct_watchers([]) is None
    url = URL("motan2", "127.0.0.1", 0, SERVICE, GROUP, {"filter": "metrics,directTestWatching"})
    provider = with_filters(
        cast(Provider, Motan2Provider(url.with_params(proxy="motan2:1"))), url, ctx
    )
    assert isinstance(provider, FilteredProvider) and provider.entry is None


async def test_a_switched_off_access_log_writes_nothing_on_the_direct_path(
    tmp_path: Path, loop_backend: MotanServer
) -> None:
    host, port = await loop_backend.listen_tcp()
    refer = URL("motan2", "127.0.0.1", 0, SERVICE, GROUP, {"filter": "accessLog,metrics"})
    ctx = context(tmp_path, "off")
    found = resolve_filters(refer, ctx)
    ep = ProviderEndpoint(
        URL("motan2", host, port, SERVICE, GROUP),
        Endpoint(f"{host}:{port}", proxy=True),
        refer,
        found.endpoint,
    )
    try:
        await ep.endpoint.connect()
        writer = ctx.services[ACCESS_LOG_SERVICE]
        writer.enabled = False
        await settle(ep.request(request(1, "ok"), None, 1.0))
        writer.enabled = True
        await settle(ep.request(request(2, "ok"), None, 1.0))
        await ep.endpoint.close()
        counted = series(ctx)
        await ctx.close()
    finally:
        await loop_backend.close(deadline=0)
    assert [f[2] for f in lines(tmp_path, "off")] == ["2"]
    assert [n[0] for n in counted.values()] == [2]


def test_queued_access_log_entries_leave_the_garbage_collector(tmp_path: Path) -> None:
    """A line waiting for the writer is a string, which the collector never tracks, so
    waiting lines are not promoted to the older generations and scanned again and again."""
    ctx = context(tmp_path, "gc")
    url = URL("motan2", "127.0.0.1", 0, SERVICE, GROUP, {"filter": "accessLog"})
    (f,) = resolve_filters(url, ctx).endpoint
    assert isinstance(f, AccessLogFilter)
    f.writer.close()  # no writer thread: the lines stay queued
    answer = response_frame(1, {"M_pt": "2"}, b"abc")
    failed = exception_frame(1, 503, "down", ERRTYPE_SERVICE)
    for response, exc in ((answer, None), (failed, None), (None, TimeoutError("late"))):
        f.queue("motan-server-agent", "10.0.0.1:1", request(1, "ok"), response, exc, None, 3)
    queued = list(f.writer._lines)
    assert len(queued) == 3
    assert not any(gc.is_tracked(line) for line in queued)


async def test_an_answer_for_a_cancelled_caller_is_recorded_and_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The caller gave up (its future is cancelled) before the provider answered: the call is
    still counted and logged, and the late answer is dropped without an error."""
    ctx = context(tmp_path, "late")
    url = URL("motan2", "127.0.0.1", 0, SERVICE, GROUP, {"filter": "accessLog,metrics"})
    watchers = direct_watchers(resolve_filters(url, ctx).endpoint)
    assert watchers is not None
    outcomes: list[tuple[Frame | None, BaseException | None]] = [
        (response_frame(1, {}, b"ok"), None),
        (None, TimeoutError("late")),
    ]
    for response, exc in outcomes:
        caller: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        caller.cancel()
        watched = WatchedCall(watchers, request(1, "ok"), "127.0.0.1:1", caller)
        if response is not None:
            watched.set_result(response)
        else:
            assert exc is not None
            watched.set_exception(exc)
        assert watched.done() and caller.cancelled()
    counted = series(ctx)
    await ctx.close()
    assert [n[0] for n in counted.values()] == [2]
    assert [f[-4] for f in lines(tmp_path, "late")] == ["true", "false"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
