"""Telemetry sources against real endpoints on 127.0.0.1: /metrics scraping, the Go agent's
UDP datagrams, a Prometheus-style query API."""

from __future__ import annotations

import math

from aiohttp import web

from motanmesh.autopilot.graphite import GraphiteReceiver, escape, parse_line
from motanmesh.autopilot.prometheus import AgentScraper, PromQLSource, parse_metrics
from motanmesh.autopilot.store import (
    CLIENT_ROLE,
    SERVER_ROLE,
    Delta,
    Key,
    TelemetryStore,
    histogram_quantile,
)
from tests.autopilot.helpers import (
    GROUP_A,
    GROUP_B,
    SERVICE,
    MetricsAgent,
    client_series,
    graphite_lines,
    send_udp,
    server_series,
    wait_until,
)


def test_parse_metrics_sums_methods_and_splits_cluster_counts() -> None:
    def line(name: str, group: str, method: str, value: int, extra: str = "") -> str:
        labels = f'role="{CLIENT_ROLE}",application="x",group="{group}",service="S"'
        return f'{name}{{{labels},method="{method}"{extra}}} {value}\n'

    text = (
        "# TYPE motan_calls_total counter\n"
        + line("motan_calls_total", "g", "a", 3)
        + line("motan_calls_total", "g", "b", 4)
        + line("motan_calls_total", "g.cluster", "b", 5)
        + "# TYPE motan_call_errors_total counter\n"
        + line("motan_call_errors_total", "g", "a", 9, ',kind="biz"')
        + line("motan_call_errors_total", "g", "a", 1, ',kind="other"')
        + "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12\n"
    )
    found = parse_metrics(text)
    plain, cluster = Key(CLIENT_ROLE, "g", "S"), Key(CLIENT_ROLE, "g", "S", cluster=True)
    calls = {k: v for (k, what, _), v in found.items() if what == "calls"}
    errors = {k: v for (k, what, _), v in found.items() if what == "errors"}
    assert calls == {plain: 7.0, cluster: 5.0}
    assert errors == {plain: 1.0}  # business errors are answers, not failures


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = {0.05: 50.0, 0.1: 90.0, 0.2: 100.0, math.inf: 100.0}
    assert histogram_quantile(0.5, buckets) == 0.05
    q = histogram_quantile(0.99, buckets)
    assert q is not None and abs(q - 0.19) < 1e-9
    assert histogram_quantile(0.99, {math.inf: 10.0, 1.0: 5.0}) == 1.0
    assert histogram_quantile(0.99, {}) is None


def test_rates_add_up_over_origins_with_different_periods() -> None:
    store = TelemetryStore()
    key = Key(SERVER_ROLE, "g", "S")
    store.add([Delta("h1", key, 0.0, 5.0, calls=500), Delta("h2", key, 3.0, 5.0, calls=60)])
    rates = store.rates(key, now=5.0, window=3.0)
    assert rates.origins == 2
    assert abs(rates.calls - (100 + 30)) < 1e-9
    assert store.rates(key, now=20.0, window=3.0).calls == 0.0


def test_a_rate_over_less_than_half_the_window_is_ignored() -> None:
    # h2's first interval covers 1 s of a 3 s window, and in it a stalled agent served its
    # backlog at once: 200 calls/s for a steady 40; it counts neither as demand nor as load
    store = TelemetryStore()
    demand, served = Key(CLIENT_ROLE, "g", "S"), Key(SERVER_ROLE, "g", "S")
    store.add([Delta("h1", demand, 0.0, 5.0, calls=500), Delta("h2", demand, 4.0, 5.0, calls=200)])
    store.add([Delta("h2", served, 4.0, 5.0, calls=200, p99=2.5)])
    rates = store.demand("g", "S", now=5.0, window=3.0)
    assert (rates.calls, rates.origins) == (100.0, 1)
    load = store.served("g", "S", now=5.0, window=3.0)
    assert (load.calls, load.origins, load.p99) == (0.0, 0, None)
    # once its intervals cover half the window, h2 counts
    store.add([Delta("h2", demand, 5.0, 5.5, calls=20)])
    rates = store.demand("g", "S", now=5.5, window=3.0)
    assert rates.origins == 2
    assert abs(rates.calls - (100 + 220 / 1.5)) < 1e-9


async def test_scraper_turns_counters_into_rates() -> None:
    agent = MetricsAgent(client_series(GROUP_A, 40.0), server_series(GROUP_B, 25.0, latency=0.3))
    await agent.start()
    store = TelemetryStore()
    scraper = AgentScraper(store, targets=[agent.address], interval=0.1)
    await scraper.start()
    try:
        # a rate needs intervals covering half its window: 0.5 s of 0.1 s scrapes
        await wait_until(lambda: agent.scrapes >= 10, "ten scrapes")
        demand = store.demand(GROUP_A, SERVICE, scraper.clock(), 1.0)
        served = store.served(GROUP_B, SERVICE, scraper.clock(), 1.0)
        assert 30 < demand.calls < 50
        assert 18 < served.calls < 32
        assert served.p99 is not None and 0.2 < served.p99 <= 0.5
        assert served.slow > 0
        assert scraper.problem(scraper.clock(), 2.0) == ""
    finally:
        await scraper.close()
        await agent.close()


async def test_scraper_reports_a_silent_agent_as_stale() -> None:
    agent = MetricsAgent(client_series(GROUP_A, 10.0))
    await agent.start()
    address = agent.address
    await agent.close()  # the port is dead now
    store = TelemetryStore()
    scraper = AgentScraper(store, targets=[address], interval=0.1, timeout=0.5)
    await scraper.start()
    try:
        await wait_until(lambda: scraper.problem(scraper.clock(), 0.5) != "", "staleness")
        assert address in scraper.problem(scraper.clock(), 0.5)
    finally:
        await scraper.close()


def test_parse_graphite_lines() -> None:
    name = escape(SERVICE)
    line = parse_line(
        f"motan-client-agent.my_app.{GROUP_A}.byhost.10_0_0_1.{name}.hello.total_count:12|c"
    )
    assert line is not None
    assert (line.role, line.group, line.cluster, line.host) == (
        CLIENT_ROLE,
        GROUP_A,
        False,
        "10_0_0_1",
    )
    assert (line.service, line.method, line.item, line.value, line.type) == (
        name,
        "hello",
        "total_count",
        12.0,
        "c",
    )
    cluster = parse_line(f"motan-client-agent.app.g.cluster.byhost.h.{name}.m.p99:30|kv")
    assert cluster is not None and cluster.cluster and cluster.item == "p99"
    assert parse_line("motan-stat.status.memory:12|kv") is None
    assert parse_line("garbage") is None
    assert parse_line("a.b.c.byhost.h.s.m.total_count:x|c") is None


async def test_graphite_receiver_counts_go_agent_datagrams() -> None:
    store = TelemetryStore()
    receiver = GraphiteReceiver(store, [SERVICE, GROUP_A, GROUP_B], period=5.0)
    await receiver.start()
    try:
        send_udp(
            receiver.port,
            graphite_lines(CLIENT_ROLE, GROUP_A, "10.0.0.1", {"total_count": 400})
            + graphite_lines(CLIENT_ROLE, GROUP_A, "10.0.0.2", {"total_count": 100})
            + graphite_lines(
                SERVER_ROLE,
                GROUP_B,
                "10.0.1.1",
                {"total_count": 50, "other_error_count": 5, "p99": 250},
            )
            + ["motan-client-agent.app.other-group.byhost.h.x.m.total_count:5|c", "junk"],
        )
        await wait_until(lambda: receiver.lines >= 5, "the datagram")
        now = receiver.clock()
        assert abs(store.demand(GROUP_A, SERVICE, now, 5.0).calls - 100.0) < 1e-6
        served = store.served(GROUP_B, SERVICE, now, 5.0)
        assert abs(served.calls - 10.0) < 1e-6
        assert abs(served.error_ratio - 0.1) < 1e-9
        assert served.p99 == 0.25
        assert receiver.ignored == 2
    finally:
        await receiver.close()


async def test_promql_source_reads_query_results() -> None:
    seen: list[str] = []

    async def query(request: web.Request) -> web.Response:
        promql = request.query["query"]
        seen.append(promql)
        labels = {"role": CLIENT_ROLE, "group": GROUP_A, "service": SERVICE}
        value = "0.2" if promql.startswith("histogram_quantile") else "42"
        if "errors" in promql:
            value = "NaN"
        return web.json_response(
            {
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [{"metric": labels, "value": [0, value]}],
                },
            }
        )

    app = web.Application()
    app.router.add_get("/api/v1/query", query)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    store = TelemetryStore()
    source = PromQLSource(store, f"http://127.0.0.1:{port}", interval=0.2)
    await source.start()
    try:
        await wait_until(lambda: source.ok_at is not None, "a query round")
        rates = store.demand(GROUP_A, SERVICE, source.clock(), 1.0)
        assert abs(rates.calls - 42.0) < 1e-6
        assert rates.p99 == 0.2
        assert any("rate(motan_calls_total[30s])" in q for q in seen)
    finally:
        await source.close()
        await runner.cleanup()
