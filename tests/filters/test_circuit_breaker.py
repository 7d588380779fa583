"""``circuitBreaker`` and ``clusterCircuitBreaker``: the hystrix circuit on a fake clock, and
breakers in real agent processes that open on a failing backend, fail fast, let a probe
through after the sleep window and close on its success."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from motanmesh.filters import Call
from motanmesh.filters.base import ROLE_SERVER
from motanmesh.filters.circuit_breaker import CIRCUIT_OPEN, MAX_CONCURRENCY, Circuit, CircuitConfig
from motanmesh.sdk import MotanClient
from motanmesh.sdk.errors import MotanBizError, MotanRemoteError
from motanmesh.url import URL
from motanmesh.wire.frame import ERRTYPE_BIZ, Frame, exception_frame, request_frame, response_frame
from tests.e2e.harness import (
    DEMO_GROUP,
    DEMO_SERVICE,
    AgentProcess,
    Mesh,
    Process,
    agent_section,
    available_endpoints,
    demo_export,
    embedded_registry,
    refer,
    set_available,
    wait_for,
)

OK = response_frame(1, {}, b"x")
BIZ = exception_frame(1, 500, "no such user", ERRTYPE_BIZ)
FAILED = exception_frame(1, 503, "backend down")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _circuit(clock: Clock, **params: str) -> Circuit:
    url = URL("motan2", "127.0.0.1", 1, "com.example.S", "g", params)
    return Circuit("test", CircuitConfig(url), clock)


def _call() -> Call:
    return Call(request_frame(1, {}, b""), URL("motan2", "h", 1, "p"), ROLE_SERVER, "", {}, _ignore)


def _ignore(response: Frame | None, exc: BaseException | None) -> None:
    return None


def _run(circuit: Circuit, response: Frame | None, exc: BaseException | None = None) -> str | None:
    call = _call()
    refused = circuit.admit(call)
    if refused is None:
        circuit.done(call, response, exc)
    return refused


def test_defaults_and_keys_are_the_go_agents() -> None:
    config = CircuitConfig(URL("motan2", "h", 1, "p"))
    assert config.to_info() == {
        "requestThreshold": 20,
        "sleepWindow": 5000,
        "errorPercent": 50,
        "maxConcurrent": 5000,
        "timeout": 1000,
        "bizException": True,
    }
    params = {
        "circuitBreaker.requestThreshold": "7",
        "circuitBreaker.sleepWindow": "250",
        "circuitBreaker.errorPercent": "101",  # over 100: the default
        "circuitBreaker.maxConcurrent": "-3",  # not positive: the default
        "circuitBreaker.bizException": "false",
        "requestTimeout": "300",
    }
    config = CircuitConfig(URL("motan2", "h", 1, "p", "", params))
    assert config.to_info() == {
        "requestThreshold": 7,
        "sleepWindow": 250,
        "errorPercent": 50,
        "maxConcurrent": 5000,
        "timeout": 300,
        "bizException": False,
    }


def test_opens_only_with_enough_calls_and_errors_then_fails_fast() -> None:
    clock = Clock()
    circuit = _circuit(clock, **{"circuitBreaker.requestThreshold": "10"})
    for _ in range(9):
        assert _run(circuit, FAILED) is None  # 9 calls: under the threshold
    assert circuit.state == "closed"
    assert _run(circuit, FAILED) is None  # the 10th is let through...
    assert _run(circuit, OK) == CIRCUIT_OPEN  # ...and the next finds the window unhealthy
    assert circuit.state == "open" and circuit.state_value == 1
    assert circuit.short_circuits == 1


def test_errors_under_the_percentage_keep_it_closed_and_old_seconds_leave_the_window() -> None:
    clock = Clock()
    circuit = _circuit(clock, **{"circuitBreaker.requestThreshold": "4"})
    for response in (OK, OK, FAILED, OK, FAILED):  # 40 %
        assert _run(circuit, response) is None
    assert _run(circuit, OK) is None
    clock.now += 11  # the window has moved past those calls
    for _ in range(3):
        assert _run(circuit, FAILED) is None  # 3 calls in the window: under the threshold
    assert circuit.state == "closed"


def test_a_probe_after_the_sleep_window_closes_it_or_keeps_it_open() -> None:
    clock = Clock()
    circuit = _circuit(
        clock,
        **{"circuitBreaker.requestThreshold": "2", "circuitBreaker.sleepWindow": "5000"},
    )
    _run(circuit, FAILED)
    _run(circuit, FAILED)
    assert _run(circuit, OK) == CIRCUIT_OPEN
    clock.now += 4.9
    assert _run(circuit, OK) == CIRCUIT_OPEN
    clock.now += 0.2
    probe = _call()
    assert circuit.admit(probe) is None  # the sleep window is over: one probe
    assert circuit.state == "half-open"
    assert circuit.admit(_call()) == CIRCUIT_OPEN  # only one
    circuit.done(probe, FAILED, None)
    assert circuit.state == "open"
    clock.now += 1
    assert _run(circuit, OK) == CIRCUIT_OPEN  # a new sleep window from the probe
    clock.now += 4.1
    assert _run(circuit, OK) is None  # the next probe succeeds
    assert circuit.state == "closed"
    assert circuit.error_percent() == 0  # closing clears the counts
    assert circuit.opens == 1


def test_business_exceptions_count_unless_turned_off() -> None:
    clock = Clock()
    counted = _circuit(clock, **{"circuitBreaker.requestThreshold": "2"})
    ignored = _circuit(
        clock,
        **{"circuitBreaker.requestThreshold": "2", "circuitBreaker.bizException": "false"},
    )
    for circuit in (counted, ignored):
        for _ in range(3):
            _run(circuit, BIZ)
    assert (counted.state, ignored.state) == ("open", "closed")
    for _ in range(3):
        _run(ignored, None, ConnectionResetError("reset"))  # transport errors always count
    assert _run(ignored, OK) == CIRCUIT_OPEN


def test_calls_over_max_concurrent_are_refused() -> None:
    circuit = _circuit(Clock(), **{"circuitBreaker.maxConcurrent": "2"})
    first, second = _call(), _call()
    assert circuit.admit(first) is None and circuit.admit(second) is None
    assert circuit.admit(_call()) == MAX_CONCURRENCY
    circuit.done(first, OK, None)
    assert circuit.admit(_call()) is None


# ---------------------------------------------------------------------------- real agents


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    m = Mesh(tmp_path)
    try:
        yield m
    finally:
        m.close()


def _circuits(agent: AgentProcess, refer_id: str) -> dict[str, dict[str, Any]]:
    info = agent.management_json("/runtime/info?keys=clusters")
    out: dict[str, dict[str, Any]] = {}
    for f in info["clusters"][refer_id]["filters"]:
        if "circuits" in f:
            for circuit in f["circuits"].values():
                out[f["name"]] = circuit
    return out


def test_client_breakers_open_on_failures_fail_fast_and_close_after_a_probe(
    mesh: Mesh,
) -> None:
    _proc, backend = mesh.demo_service("demo")
    server = mesh.agent(
        "server",
        {
            "motan-agent": agent_section("server"),
            "motan-registry": {"local": embedded_registry(mesh.registry)},
            "motan-service": {"demo": demo_export(backend)},
        },
    )
    set_available(server)
    keys = {"circuitBreaker.requestThreshold": 5, "circuitBreaker.sleepWindow": 1000}
    client_agent = mesh.agent(
        "client",
        {
            "motan-agent": agent_section("client"),
            "motan-registry": {"local": embedded_registry(mesh.registry)},
            "motan-refer": {
                "demo": refer(
                    DEMO_SERVICE,
                    DEMO_GROUP,
                    filter="circuitBreaker,clusterCircuitBreaker",
                    **keys,
                )
            },
        },
    )

    wait_for(lambda: bool(available_endpoints(client_agent, "demo")), "the provider")

    async def scenario() -> None:
        async with MotanClient(
            client_agent.address, application="cb", group=DEMO_GROUP, timeout=10
        ) as c:
            assert await c.call(DEMO_SERVICE, "hello", "warm") == "hello warm"
            for _ in range(4):  # 4 of 5 calls fail: 80 % of the 5-call threshold
                with pytest.raises(MotanBizError):
                    await c.call(DEMO_SERVICE, "fail", "down")
            # open: answered at once by the outer (cluster) breaker, the service is not called
            with pytest.raises(MotanRemoteError) as info:
                await c.call(DEMO_SERVICE, "hello", "fast")
            assert (info.value.errcode, info.value.errmsg) == (400, CIRCUIT_OPEN)
            assert not isinstance(info.value, MotanBizError)
            states = _circuits(client_agent, "demo")
            assert {name: s["state"] for name, s in states.items()} == {
                "circuitBreaker": "open",
                "clusterCircuitBreaker": "open",
            }
            assert states["clusterCircuitBreaker"]["shortCircuits"] == 1

            # after the sleep window one probe goes through; it fails: still open
            await asyncio.sleep(1.1)
            with pytest.raises(MotanBizError):
                await c.call(DEMO_SERVICE, "fail", "still down")
            with pytest.raises(MotanRemoteError, match="circuit open"):
                await c.call(DEMO_SERVICE, "hello", "fast again")

            # the next probe succeeds: both close and calls flow again
            await asyncio.sleep(1.1)
            assert await c.call(DEMO_SERVICE, "hello", "probe") == "hello probe"
            assert await c.call(DEMO_SERVICE, "hello", "again") == "hello again"

    asyncio.run(scenario())
    states = _circuits(client_agent, "demo")
    assert {s["state"] for s in states.values()} == {"closed"}
    assert states["clusterCircuitBreaker"]["opens"] == 1


def test_a_server_breaker_opens_on_a_stopped_backend_and_closes_when_it_is_back(
    mesh: Mesh,
) -> None:
    demo, backend = mesh.demo_service("demo")
    export = {
        **demo_export(backend),
        "filter": "circuitBreaker",
        "circuitBreaker.requestThreshold": 4,
        "circuitBreaker.sleepWindow": 1000,
    }
    server = mesh.agent(
        "server",
        {
            "motan-agent": agent_section("server"),
            "motan-registry": {"local": embedded_registry(mesh.registry)},
            "motan-service": {"demo": export},
        },
    )
    eport = str(export["export"]).rpartition(":")[2]

    def state() -> str:
        info = server.management_json("/runtime/info?keys=servers")
        filters = info["servers"]["agentPortServer"][eport]["filters"]
        (breaker,) = [f for fs in filters.values() for f in fs if f["name"] == "circuitBreaker"]
        (circuit,) = breaker["circuits"].values()
        return str(circuit["state"])

    async def calls(n: int) -> list[Any]:
        async with MotanClient(f"127.0.0.1:{eport}", group=DEMO_GROUP, timeout=10) as c:
            return await asyncio.gather(
                *(c.call(DEMO_SERVICE, "hello", str(i)) for i in range(n)),
                return_exceptions=True,
            )

    assert asyncio.run(calls(2)) == ["hello 0", "hello 1"]
    demo.stop()
    down = asyncio.run(calls(4))
    assert all(isinstance(r, MotanRemoteError) for r in down)
    assert state() == "open"
    (fast,) = asyncio.run(calls(1))
    assert isinstance(fast, MotanRemoteError) and fast.errmsg == CIRCUIT_OPEN

    again = mesh.spawn("demo-again", "demo-service", "--port", str(backend))
    again.wait_output("demo-service listening on")
    time.sleep(1.1)
    wait_for(lambda: asyncio.run(calls(1)) == ["hello 0"], "the probe to succeed")
    assert state() == "closed"
    assert isinstance(again, Process)
