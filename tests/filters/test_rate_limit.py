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
    (from the start) and the errors."""
    done: list[float] = []
    errors: list[BaseException] = []
    start = time.monotonic()
    end = start + seconds

    async def worker() -> None:
        while time.monotonic() < end:
            try:
                await client.call(DEMO_SERVICE, method, "x", attachments=attachments)
            except MotanRemoteError as e:
                errors.append(e)
                await asyncio.sleep(0.02)  # a refusal is immediate: do not spin
                continue
            done.append(time.monotonic() - start)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return done, errors


def _rate(done: list[float], begin: float, end: float) -> float:
    return sum(1 for t in done if begin <= t < end) / (end - begin)


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
                "rateLimit": 100,
                "capacity": 10,
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
                **{"rateLimit.echo": 40, "echo().capacity": 1},
            )
        },
    }
    client_agent = mesh.agent("client", client_conf)

    async def scenario() -> None:
        async with MotanClient(client_agent.address, application="rl", group=DEMO_GROUP) as c:
            for _ in range(100):  # until the refer has its provider
                try:
                    await c.call(DEMO_SERVICE, "hello", "warm")
                    break
                except MotanRemoteError:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.2)  # the server's bucket refills its 10 tokens

            # the service limit of the server agent: 100/s; calls wait (< 1 s) for a token
            done, errors = await _load(c, "hello", 3.0, workers=16)
            assert errors == []
            assert 90 <= _rate(done, 0.5, 3.0) <= 110

            # the method limit of the client agent's refer: 40/s, waits bounded by M_tmo
            done, errors = await _load(c, "echo", 3.0, workers=16, attachments={"M_tmo": "100"})
            assert 36 <= _rate(done, 0.5, 3.0) <= 44
            assert errors, "16 callers at 40/s with a 100 ms wait: some are refused"
            for e in errors:
                assert isinstance(e, MotanRemoteError) and e.errcode == 400
                assert str(e.errmsg) == "[rateLimit] method echo wait time exceed timeout(100ms)"

            # hello is not limited by the client agent (only echo is)
            await asyncio.sleep(0.2)

            # the switcher turns it off: a burst the limit would refuse passes
            status, _ = client_agent.management("/switcher/set?name=demo_rateLimit&value=false")
            assert status == 200
            burst = [
                c.call(DEMO_SERVICE, "echo", i, attachments={"M_tmo": "20"}) for i in range(60)
            ]
            assert await asyncio.gather(*burst) == list(range(60))

            status, _ = client_agent.management("/switcher/set?name=demo_rateLimit&value=true")
            await asyncio.sleep(0.1)
            burst = [
                c.call(DEMO_SERVICE, "echo", i, attachments={"M_tmo": "20"}) for i in range(60)
            ]
            results = await asyncio.gather(*burst, return_exceptions=True)
            refused = [r for r in results if isinstance(r, MotanRemoteError)]
            assert len(refused) >= 50

    asyncio.run(scenario())
    info = client_agent.management_json("/runtime/info?keys=clusters")
    (limit,) = [f for f in info["clusters"]["demo"]["filters"] if f["name"] == "rateLimit"]
    assert limit["methods"] == {"echo": {"rate": 40.0, "capacity": 1}}
    assert limit["rejected"] > 0 and limit["switcher"] == "demo_rateLimit"
