"""``rateLimit``: the bucket arithmetic, and the rate it holds in real agent processes under
a bounded load (the service limit on a server agent, a method limit on a client agent's
refer, the ``<conf-id>_rateLimit`` switcher)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from motanmesh.filters import FilterContext
from motanmesh.filters.rate_limit import (
    RateLimitFilter,
    TokenBucket,
    default_capacity,
    go_duration,
)
from motanmesh.sdk import MotanClient
from motanmesh.sdk.errors import MotanRemoteError
from motanmesh.url import URL
from tests.e2e.harness import (
    DEMO_GROUP,
    DEMO_SERVICE,
    Mesh,
    agent_section,
    demo_export,
    embedded_registry,
    refer,
    set_available,
)


def test_default_capacity_is_twice_the_rate_within_1000_to_5000() -> None:
    assert default_capacity(10) == 1000
    assert default_capacity(600) == 1200
    assert default_capacity(2500) == 5000
    assert default_capacity(100000) == 5000


def test_durations_read_as_go_writes_them() -> None:
    assert [go_duration(ms) for ms in (0, 20, 999, 1000, 1500, 60000, 90500, 3_600_000)] == [
        "0s",
        "20ms",
        "999ms",
        "1s",
        "1.5s",
        "1m0s",
        "1m30.5s",
        "1h0m0s",
    ]


def test_a_bucket_starts_full_then_lends_the_next_tokens_up_to_the_wait_limit() -> None:
    bucket = TokenBucket(rate=10, capacity=2, now=100.0)
    assert bucket.reserve(100.0, 0.5) == 0.0
    assert bucket.reserve(100.0, 0.5) == 0.0
    assert bucket.reserve(100.0, 0.5) == pytest.approx(0.1)  # reserved: due in 0.1 s
    assert bucket.reserve(100.0, 0.5) == pytest.approx(0.2)
    assert bucket.reserve(100.0, 0.15) is None  # would wait 0.3 s: refused, nothing taken
    assert bucket.reserve(100.31, 0.0) == 0.0  # three tokens later, the debt is paid
    assert bucket.reserve(110.0, 0.0) == 0.0
    assert bucket.tokens == pytest.approx(1.0)  # refills up to the capacity only


def test_keys_and_defaults_are_read_as_the_go_agent_reads_them() -> None:
    url = URL(
        "motan2",
        "127.0.0.1",
        0,
        "com.example.S",
        "g",
        {
            "conf-id": "svc",
            "rateLimit": "300",
            "requestTimeout": "250",
            "rateLimit.get": "40",
            "get().capacity": "7",
            "rateLimit.put": "0",
            "rateLimit.": "5",
        },
    )
    context = FilterContext()
    f = RateLimitFilter(url, context)
    assert (f.rate, f.capacity, f.wait_ms) == (300.0, 1000, 250)
    assert f.method_rates == {"get": (40.0, 7)}  # zero rates and empty names are ignored
    assert context.switchers.get("svc_rateLimit") is True


async def _load(
    client: MotanClient,
    method: str,
    seconds: float,
    workers: int,
    attachments: dict[str, str] | None = None,
) -> tuple[list[float], list[BaseException]]:
    """``workers`` loops of calls for ``seconds``: the completion times of the successes
    and the errors."""
    done: list[float] = []
    errors: list[BaseException] = []
    end = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < end:
            try:
                await client.call(DEMO_SERVICE, method, "x", attachments=attachments)
            except MotanRemoteError as e:
                errors.append(e)
                continue
            done.append(time.monotonic())

    await asyncio.gather(*(worker() for _ in range(workers)))
    return done, errors


def _rate(done: list[float], skip: int) -> float:
    """Calls per second: the least-squares slope of the completion count over time, after
    the first ``skip`` completions (the bucket's initial burst). With every caller queued
    in the limiter, a token is never lost while a process is briefly starved of CPU; the
    slope stays what the limiter admitted even when completions come late in a bunch."""
    times = sorted(done)[skip:]
    n = len(times)
    mean_t = sum(times) / n
    mean_i = (n - 1) / 2
    cov = sum((t - mean_t) * (i - mean_i) for i, t in enumerate(times))
    var = sum((t - mean_t) ** 2 for t in times)
    return cov / var


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    m = Mesh(tmp_path)
    try:
        yield m
    finally:
        m.close()


def test_the_rate_holds_under_load_in_real_agents(mesh: Mesh) -> None:
    _proc, backend = mesh.demo_service("demo")
    server_conf = {
        "motan-agent": agent_section("server"),
        "motan-registry": {"local": embedded_registry(mesh.registry)},
        "motan-service": {
            "demo": {
                **demo_export(backend),
                "filter": "rateLimit",
                "rateLimit": 50,
                "capacity": 10,
                "requestTimeout": 3000,
            }
        },
    }
    server = mesh.agent("server", server_conf)
    set_available(server)
    client_conf = {
        "motan-agent": agent_section("client"),
        "motan-registry": {"local": embedded_registry(mesh.registry)},
        "motan-refer": {
            "demo": refer(
                DEMO_SERVICE,
                DEMO_GROUP,
                filter="rateLimit",
                requestTimeout=5000,
                **{"rateLimit.echo": 20, "echo().capacity": 1},
            )
        },
    }
    client_agent = mesh.agent("client", client_conf)

    async def scenario() -> None:
        async with MotanClient(
            client_agent.address, application="rl", group=DEMO_GROUP, timeout=10
        ) as c:
            for _ in range(100):  # until the refer has its provider
                try:
                    await c.call(DEMO_SERVICE, "hello", "warm")
                    break
                except MotanRemoteError:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.2)  # the server's bucket refills its 10 tokens

            # the service limit of the server agent: 50/s; every caller waits in the
            # limiter's queue (64 callers: 1.3 s of tokens, under the 3 s wait limit)
            done, errors = await _load(c, "hello", 4.0, workers=64)
            assert errors == []
            assert 45 <= _rate(done, 20) <= 55

            # the method limit of the client agent's refer: 20/s (32 callers: 1.6 s queued,
            # under the wait limit M_tmo)
            done, errors = await _load(c, "echo", 4.0, workers=32, attachments={"M_tmo": "4000"})
            assert errors == []
            assert 18 <= _rate(done, 10) <= 22

            # a burst that would wait longer than M_tmo is refused with the Go agent's error
            await asyncio.sleep(0.1)
            burst = [
                c.call(DEMO_SERVICE, "echo", i, attachments={"M_tmo": "100"}) for i in range(60)
            ]
            results = await asyncio.gather(*burst, return_exceptions=True)
            refused = [r for r in results if isinstance(r, BaseException)]
            assert len(refused) >= 40  # about 1 + 100 ms x 20/s pass
            for e in refused:
                assert isinstance(e, MotanRemoteError) and e.errcode == 400, e
                assert str(e.errmsg) == "[rateLimit] method echo wait time exceed timeout(100ms)"

            # the switcher turns it off: a burst the limit would refuse passes
            status, _ = client_agent.management("/switcher/set?name=demo_rateLimit&value=false")
            assert status == 200
            burst = [
                c.call(DEMO_SERVICE, "echo", i, attachments={"M_tmo": "20"}) for i in range(60)
            ]
            assert await asyncio.gather(*burst) == list(range(60))

    asyncio.run(scenario())
    info = client_agent.management_json("/runtime/info?keys=clusters")
    (limit,) = [f for f in info["clusters"]["demo"]["filters"] if f["name"] == "rateLimit"]
    assert limit["methods"] == {"echo": {"rate": 20.0, "capacity": 1}}
    assert limit["rejected"] > 0 and limit["switcher"] == "demo_rateLimit"
