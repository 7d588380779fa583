"""The filter chain's own cost, in process: microseconds per call.

Each case runs the agent's real objects around a backend that answers at once (no socket, no
event loop), so the figure is what the agent's code adds per call:

* ``client/<filters>``: a client-side provider endpoint (``ProviderEndpoint.send``) with
  those endpoint filters, the answer going to a ``ReplyCallback`` as the client router's does;
* ``server/<filters>``: the motan2 reverse-proxy provider, alone (``none``) or behind
  ``FilteredProvider`` with those filters, answering with encoded bytes;
* ``router/none`` and ``router/graph``: the client router (route, metadata changes, answer
  encoding) in front of a refer that answers at once, without and with the dependency graph;
* ``dispatch/none`` and ``dispatch/graph``: the export dispatcher in front of the provider,
  without and with the dependency graph.

``noop`` is a filter that only watches the end of the call (``on_complete``) and hands the
call on: the framework's own cost. The built-in watchers alone (``metrics``, ``accessLog``)
take the path without a chain (:mod:`motanmesh.filters.direct`); ``client-chain/<filters>``
and ``server-chain/<filters>`` run the same filters through the chain, for comparison.
The access log writes to a temporary directory with a buffer large enough that nothing is
dropped; each round ends by writing what it buffered.

The figure is the process's CPU time (``time.process_time()``: every thread, so the access
log's writer thread counts) per call, which a loaded machine disturbs less than wall time.

Usage: ``python benchmarks/bench_filters.py [--calls 20000] [--rounds 15]
[--cases 'client/none;client/accessLog,metrics']``: every case runs ``rounds`` rounds of
``calls`` calls, the cases taking turns; the best round of each case is printed with its
ratio to the same side without filters, and which filter modules run compiled (mypyc).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any, cast

from motanmesh.agent.dispatcher import Provider, ServerDispatcher
from motanmesh.agent.filtering import FilteredProvider, with_filters
from motanmesh.agent.providers import Motan2Provider
from motanmesh.agent.router import ClientRouter
from motanmesh.cluster.cluster import Cluster, ProviderEndpoint
from motanmesh.filters import Call, Filter, FilterContext, Handler, register_filter
from motanmesh.filters.access_log_writer import ACCESS_LOG_SERVICE
from motanmesh.filters.chain import resolve_filters
from motanmesh.graph import DependencyGraph
from motanmesh.transport.endpoint import Endpoint, Reply, ReplyCallback
from motanmesh.transport.server import ServerConnection
from motanmesh.url import URL
from motanmesh.wire.frame import Frame, request_frame, response_frame

SERVICE = "com.weibo.motan.demo.service.MotanDemoService"
GROUP = "motan-demo-rpc"
FILTERS = {
    "none": "",
    "noop": "benchNoop",
    "metrics": "metrics",
    "accessLog": "accessLog",
    "accessLog,metrics": "accessLog,metrics",
}

#: the lists that take the path without a chain, measured both ways
WATCHERS = ("metrics", "accessLog", "accessLog,metrics")


class NoopFilter(Filter):
    """Watches the end of the call and hands it on."""

    name = "benchNoop"
    index = 3

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        call.on_complete(self._done)
        proceed(call)

    def _done(self, call: Call, response: Frame | None, exc: BaseException | None) -> None:
        return None


class InstantEndpoint:
    """Stands for a transport endpoint: answers every request at once."""

    available = True
    in_flight = 0

    def __init__(self, response: Frame) -> None:
        self.response = response

    def send(
        self,
        frame: Frame,
        reply: Reply,
        changes: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.response.request_id = frame.request_id
        reply.set_result(self.response)


class InstantCluster:
    """Stands for a refer's cluster in front of the client router."""

    def __init__(self, refer: URL, endpoint: ProviderEndpoint) -> None:
        self.refer = refer
        self.endpoint = endpoint

    def send(self, frame: Frame, reply: Reply, changes: dict[str, str] | None = None) -> None:
        self.endpoint.send(frame, reply, changes, 1.0)


class Conn:
    """What a provider reads of the caller's connection."""

    peer = "127.0.0.1:40000"
    peer_host = "127.0.0.1"
    identity = ""
    #: not the ``respond`` the cases pass: the provider answers through it with bytes
    respond = None


def _request(rid: int = 1) -> Frame:
    return request_frame(
        rid,
        {
            "M_p": SERVICE,
            "M_m": "hello",
            "M_g": GROUP,
            "M_s": "bench-client",
            "M_md": "java.lang.String",
            "M_pp": "motan2",
        },
        b"\x01" * 16,
        proxy=True,
    )


def _response() -> Frame:
    return response_frame(1, {"M_pt": "1"}, b"\x01" * 16, proxy=True)


def _sink(response: Frame | None, exc: BaseException | None) -> None:
    return None


def _respond(data: bytes) -> None:
    return None


def client_case(filters: str, context: FilterContext, direct: bool = True) -> Callable[[int], None]:
    refer = URL("motan2", "127.0.0.1", 0, SERVICE, GROUP, {"filter": filters} if filters else {})
    provider = URL("motan2", "127.0.0.1", 8002, SERVICE, GROUP)
    found = resolve_filters(refer, context)
    ep = ProviderEndpoint(
        provider,
        cast(Endpoint, InstantEndpoint(_response())),
        refer,
        found.endpoint,
        direct=direct,
    )
    frame = _request()
    changes = {"host": "127.0.0.1", "M_rid": "1"}

    def run(n: int) -> None:
        send = ep.send
        for _ in range(n):
            send(frame, ReplyCallback(_sink), changes, 1.0)

    return run


def _provider(filters: str, context: FilterContext, direct: bool = True) -> Provider:
    params = {"proxy": "motan2:8100"}
    if filters:
        params["filter"] = filters
    url = URL("motan2", "127.0.0.1", 8002, SERVICE, GROUP, params)
    inner = Motan2Provider(url)
    inner.endpoint = cast(Endpoint, InstantEndpoint(_response()))
    provider = with_filters(inner, url, context)
    if not direct and isinstance(provider, FilteredProvider):
        return FilteredProvider(inner, provider.filters, direct=False)
    return provider


def server_case(filters: str, context: FilterContext, direct: bool = True) -> Callable[[int], None]:
    provider = _provider(filters, context, direct)
    frame = _request()
    conn = cast(ServerConnection, Conn())

    def run(n: int) -> None:
        for _ in range(n):
            provider(frame, _respond, conn)

    return run


def router_case(graph: bool, context: FilterContext) -> Callable[[int], None]:
    refer = URL("motan2", "127.0.0.1", 0, SERVICE, GROUP)
    provider = URL("motan2", "127.0.0.1", 8002, SERVICE, GROUP)
    ep = ProviderEndpoint(provider, cast(Endpoint, InstantEndpoint(_response())), refer)
    router = ClientRouter("bench-client")
    router.set_clusters([cast(Cluster, InstantCluster(refer, ep))])
    if graph:
        router.graph = DependencyGraph("bench-client")
    frame = _request()
    conn = cast(ServerConnection, Conn())

    def run(n: int) -> None:
        for _ in range(n):
            router(frame, _respond, conn)

    return run


def dispatch_case(graph: bool, context: FilterContext) -> Callable[[int], None]:
    dispatcher = ServerDispatcher()
    dispatcher.add(_provider("", context))
    if graph:
        dispatcher.graph = DependencyGraph("bench-server")
    frame = _request()
    conn = cast(ServerConnection, Conn())

    def run(n: int) -> None:
        for _ in range(n):
            dispatcher(frame, _respond, conn)

    return run


def cases(context: FilterContext) -> dict[str, Callable[[int], None]]:
    found: dict[str, Callable[[int], None]] = {}
    for name, filters in FILTERS.items():
        found[f"client/{name}"] = client_case(filters, context)
    for name in WATCHERS:
        found[f"client-chain/{name}"] = client_case(FILTERS[name], context, direct=False)
    for name, filters in FILTERS.items():
        found[f"server/{name}"] = server_case(filters, context)
    for name in WATCHERS:
        found[f"server-chain/{name}"] = server_case(FILTERS[name], context, direct=False)
    found["router/none"] = router_case(False, context)
    found["router/graph"] = router_case(True, context)
    found["dispatch/none"] = dispatch_case(False, context)
    found["dispatch/graph"] = dispatch_case(True, context)
    return found


def compiled() -> list[str]:
    import importlib  # noqa: PLC0415

    names = [
        "motanmesh.filters.base",
        "motanmesh.filters.chain",
        "motanmesh.filters.metrics",
        "motanmesh.filters.access_log",
        "motanmesh.filters.direct",
        "motanmesh.graph",
    ]
    out = []
    for name in names:
        module: Any = importlib.import_module(name)
        if not str(module.__file__).endswith(".py"):
            out.append(name.rsplit(".", 1)[1])
    return out


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--cases", default="", help="comma list of case names (default: all)")
    args = parser.parse_args()
    register_filter(NoopFilter)
    with tempfile.TemporaryDirectory() as logs:
        context = FilterContext(
            application="bench", log_dir=logs, params={"log_buffer_size": "10000000"}
        )
        table = cases(context)
        if args.cases:
            wanted = args.cases.split(";" if ";" in args.cases else ",")
            table = {k: v for k, v in table.items() if k in wanted}
        writer = context.services.get(ACCESS_LOG_SERVICE)
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, run in table.items():
                t0 = time.process_time()
                run(args.calls)
                if writer is not None:
                    writer.flush()  # the lines of this round are part of its cost
                us = (time.process_time() - t0) / args.calls * 1e6
                best[name] = min(best.get(name, us), us)
            await asyncio.sleep(0.06)  # let the access-log thread write its buffer
        await context.close()
    print(
        f"python {sys.version.split()[0]}, {args.calls} calls x {args.rounds} rounds, best round; "
        f"compiled: {', '.join(compiled()) or 'none'}"
    )
    print(f"{'case':26s} {'us/call':>8s} {'ratio':>6s}")
    for name, us in best.items():
        side = name.split("/")[0].removesuffix("-chain")
        base = best.get(f"{side}/none")
        ratio = f"{us / base:6.2f}" if base else ""
        print(f"{name:26s} {us:8.2f} {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
