from __future__ import annotations

import asyncio
import random

import pytest

from motanmesh.cluster.errors import E_NO_ENDPOINTS, UnknownExtensionError, is_failure
from motanmesh.cluster.ha import (
    BackupRequestHa,
    FailfastHa,
    FailoverHa,
    HaStrategy,
    create_ha,
    ha_names,
)
from motanmesh.cluster.lb import LeastRequestLoadBalancer, LoadBalancer, RoundRobinLoadBalancer
from motanmesh.transport.clock import FakeClock
from motanmesh.transport.errors import ConnectionLost, EndpointUnavailable, RequestTimeout
from motanmesh.url import URL
from motanmesh.wire.frame import (
    ERRTYPE_BIZ,
    ERRTYPE_SERVICE,
    M_EXCEPTION,
    Frame,
    parse_exception,
)
from tests.cluster.endpoints import (
    Reply,
    TestEndpoint,
    biz_error,
    endpoints,
    fail,
    ok,
    pending,
    remote_error,
    request,
)

REFER = URL("motan2", "", 0, "svc.Demo", "g")


def rr(eps: list[TestEndpoint]) -> LoadBalancer:
    lb = RoundRobinLoadBalancer(REFER)
    lb.on_refresh(eps)
    return lb


def error_of(frame: Frame) -> tuple[int, int, str]:
    assert frame.is_exception
    exc = parse_exception(frame.metadata[M_EXCEPTION])
    return exc.errcode, exc.errtype, exc.errmsg


def calls(eps: list[TestEndpoint]) -> list[int]:
    return [ep.calls for ep in eps]


# --------------------------------------------------------------------------- failover


async def test_failover_success_on_first_attempt() -> None:
    eps = endpoints(3)
    ha = FailoverHa(REFER.with_params(retries="2"))
    frame = request()
    resp = await ha.call(frame, rr(eps), 0.5, {"M_g": "x"})
    assert resp.body == eps[0].name.encode()
    assert calls(eps) == [1, 0, 0]
    assert eps[0].timeouts == [0.5]
    assert eps[0].changes == [{"M_g": "x"}]


@pytest.mark.parametrize(
    "reply",
    [fail(ConnectionLost("peer closed")), remote_error(500), remote_error(404)],
)
async def test_failover_retries_transport_and_service_errors(reply: Reply) -> None:
    eps = endpoints(4, reply=reply)
    ha = FailoverHa(REFER.with_params(retries="2"))
    resp = await ha.call(request(), rr(eps), None)
    assert calls(eps) == [1, 1, 1, 0]
    assert is_failure(resp)


async def test_failover_returns_the_last_error_as_a_response() -> None:
    eps = endpoints(2)
    eps[0].reply = remote_error(500)
    eps[1].reply = fail(RequestTimeout("request to 10.0.0.2:8002 timed out"))
    frame = request(request_id=99)
    resp = await FailoverHa(REFER.with_params(retries="1")).call(frame, rr(eps))
    assert resp.request_id == 99
    assert resp.serialization == frame.serialization
    assert resp.is_response
    code, etype, msg = error_of(resp)
    assert (code, etype) == (400, ERRTYPE_SERVICE)
    assert msg == "channel call error: request to 10.0.0.2:8002 timed out"


async def test_failover_stops_at_the_first_success() -> None:
    eps = endpoints(3)
    eps[0].reply = fail(EndpointUnavailable("down"))
    resp = await FailoverHa(REFER.with_params(retries="5")).call(request(), rr(eps))
    assert resp.body == eps[1].name.encode()
    assert calls(eps) == [1, 1, 0]


async def test_failover_does_not_retry_a_biz_exception() -> None:
    eps = endpoints(3, reply=biz_error())
    resp = await FailoverHa(REFER.with_params(retries="2")).call(request(), rr(eps))
    assert calls(eps) == [1, 0, 0]
    assert error_of(resp)[:2] == (503, ERRTYPE_BIZ)


async def test_failover_status_1_without_m_e_is_a_success() -> None:
    def odd(frame: Frame) -> Frame:
        resp = ok("x")(frame)
        assert isinstance(resp, Frame)
        resp.status = 1
        return resp

    eps = endpoints(2, reply=odd)
    await FailoverHa(REFER.with_params(retries="2")).call(request(), rr(eps))
    assert calls(eps) == [1, 0]


async def test_failover_per_method_retries() -> None:
    url = REFER.with_params({"retries": "0", "echo(java.lang.String).retries": "3"})
    ha = FailoverHa(url)
    eps = endpoints(5, reply=remote_error())
    await ha.call(request("echo", meta={"M_md": "java.lang.String"}), rr(eps))
    assert sum(calls(eps)) == 4
    await ha.call(request("other"), rr(eps))
    assert sum(calls(eps)) == 5


async def test_failover_each_attempt_selects_afresh() -> None:
    ep = TestEndpoint(reply=remote_error())
    await FailoverHa(REFER.with_params(retries="2")).call(request(), rr([ep]))
    assert ep.calls == 3


async def test_no_endpoint_is_error_1001() -> None:
    frame = request(request_id=1234)
    for ha in (FailoverHa(REFER), FailfastHa(REFER), BackupRequestHa(REFER)):
        resp = await ha.call(frame, rr([]))
        assert resp.request_id == 1234
        assert resp.serialization == frame.serialization
        assert error_of(resp) == (E_NO_ENDPOINTS, ERRTYPE_SERVICE, "no available endpoints")
    down = TestEndpoint(available=False)
    resp = await FailoverHa(REFER.with_params(retries="3")).call(frame, rr([down]))
    assert error_of(resp)[0] == E_NO_ENDPOINTS
    assert down.calls == 0


async def test_endpoint_raising_synchronously_counts_as_a_failure() -> None:
    def boom(frame: Frame) -> Frame:
        raise EndpointUnavailable("closed")

    eps = endpoints(2)
    eps[0].reply = boom
    resp = await FailoverHa(REFER.with_params(retries="1")).call(request(), rr(eps))
    assert resp.body == eps[1].name.encode()
    resp = await FailfastHa(REFER).call(request(), rr(eps[:1]))
    assert error_of(resp)[:2] == (400, ERRTYPE_SERVICE)


async def test_unexpected_exception_becomes_500() -> None:
    eps = endpoints(1, reply=fail(RuntimeError("bug")))
    resp = await FailfastHa(REFER).call(request(), rr(eps))
    assert error_of(resp) == (500, ERRTYPE_SERVICE, "cluster call error: bug")


async def test_failfast_makes_one_attempt() -> None:
    eps = endpoints(3, reply=remote_error())
    resp = await FailfastHa(REFER.with_params(retries="5")).call(request(), rr(eps))
    assert calls(eps) == [1, 0, 0]
    assert error_of(resp)[0] == 500


async def test_attempts_are_reported_to_the_balancer() -> None:
    clock = FakeClock()
    lb = LeastRequestLoadBalancer(REFER, random.Random(1))
    eps = endpoints(2)
    eps[0].reply = fail(ConnectionLost("gone"))
    lb.on_refresh(eps)
    ha = FailoverHa(REFER.with_params(retries="3"), clock)
    for _ in range(5):
        resp = await ha.call(request(), lb)
        assert resp.body == eps[1].name.encode()
    assert lb.latency(eps[0]) > lb.latency(eps[1])
    assert eps[0].calls == 1  # penalised after its first failure


# --------------------------------------------------------------------------- factory


@pytest.mark.parametrize(
    ("name", "cls"),
    [("failover", FailoverHa), ("failfast", FailfastHa), ("backupRequest", BackupRequestHa)],
)
def test_create_ha(name: str, cls: type[HaStrategy]) -> None:
    assert type(create_ha(REFER.with_params(haStrategy=name))) is cls


def test_create_ha_default_and_unknown() -> None:
    assert type(create_ha(REFER)) is FailoverHa
    assert ha_names() == ["backupRequest", "failfast", "failover"]
    with pytest.raises(UnknownExtensionError, match="unknown HA strategy 'failback'") as info:
        create_ha(REFER.with_params(haStrategy="failback"))
    assert isinstance(info.value, ValueError)
    assert "backupRequest, failfast, failover" in str(info.value)


# --------------------------------------------------------------------------- backupRequest


def backup_ha(clock: FakeClock, **params: str) -> BackupRequestHa:
    base = {"retries": "1", "backupRequestDelayTime": "50"}
    base.update(params)
    return BackupRequestHa(REFER.with_params(base), clock)


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_backup_goes_out_only_after_the_delay() -> None:
    clock = FakeClock()
    ha = backup_ha(clock)
    eps = endpoints(2, reply=pending())
    task = asyncio.create_task(ha.call(request(), rr(eps), 1.0))
    await settle()
    assert calls(eps) == [1, 0]
    clock.advance(0.049)
    await settle()
    assert calls(eps) == [1, 0]
    clock.advance(0.001)
    assert calls(eps) == [1, 1]
    eps[1].resolve()
    resp = await task
    assert resp.body == eps[1].name.encode()
    assert eps[0].futures[0].cancelled()
    assert ha.backups == 1
    assert eps[1].timeouts[0] == pytest.approx(0.95)


async def test_no_backup_when_the_first_answers_in_time() -> None:
    clock = FakeClock()
    ha = backup_ha(clock)
    eps = endpoints(2, reply=pending())
    task = asyncio.create_task(ha.call(request(), rr(eps), 1.0))
    await settle()
    clock.advance(0.02)
    eps[0].resolve()
    resp = await task
    assert resp.body == eps[0].name.encode()
    clock.advance(1.0)
    assert calls(eps) == [1, 0]
    assert ha.backups == 0


async def test_first_success_wins_even_if_it_is_the_original() -> None:
    clock = FakeClock()
    ha = backup_ha(clock, retries="2")
    eps = endpoints(3, reply=pending())
    task = asyncio.create_task(ha.call(request(), rr(eps), 1.0))
    await settle()
    clock.advance(0.05)
    clock.advance(0.05)
    assert calls(eps) == [1, 1, 1]
    eps[0].resolve()
    resp = await task
    assert resp.body == eps[0].name.encode()
    assert eps[1].futures[0].cancelled() and eps[2].futures[0].cancelled()
    assert ha.backups == 2


async def test_a_failure_waits_for_the_backup_in_flight() -> None:
    clock = FakeClock()
    ha = backup_ha(clock)
    eps = endpoints(2, reply=pending())
    task = asyncio.create_task(ha.call(request(), rr(eps), 1.0))
    await settle()
    clock.advance(0.05)
    eps[0].futures[0].set_exception(ConnectionLost("reset"))
    await settle()
    assert not task.done()
    eps[1].resolve()
    assert (await task).body == eps[1].name.encode()


async def test_a_failure_with_nothing_in_flight_moves_on_at_once() -> None:
    clock = FakeClock()
    ha = backup_ha(clock, retries="2")
    eps = endpoints(3, reply=pending())
    eps[0].reply = remote_error(500)
    task = asyncio.create_task(ha.call(request(), rr(eps), 1.0))
    await settle()
    assert calls(eps) == [1, 1, 0]  # no delay, no permit used
    assert ha.backups == 0
    clock.advance(0.05)
    assert calls(eps) == [1, 1, 1]
    eps[2].resolve()
    assert (await task).body == eps[2].name.encode()


async def test_biz_exception_wins() -> None:
    clock = FakeClock()
    ha = backup_ha(clock)
    eps = endpoints(2, reply=biz_error())
    resp = await ha.call(request(), rr(eps), 1.0)
    assert error_of(resp)[1] == ERRTYPE_BIZ
    assert calls(eps) == [1, 0]


async def test_all_attempts_failing_returns_the_last_error() -> None:
    clock = FakeClock()
    ha = backup_ha(clock, retries="2")
    eps = endpoints(3, reply=remote_error(500))
    eps[2].reply = remote_error(404)
    resp = await ha.call(request(), rr(eps), 1.0)
    assert error_of(resp)[0] == 404
    assert calls(eps) == [1, 1, 1]


async def test_backup_call_deadline() -> None:
    clock = FakeClock()
    ha = backup_ha(clock)
    eps = endpoints(2, reply=pending())
    task = asyncio.create_task(ha.call(request(request_id=5), rr(eps), 0.2))
    await settle()
    clock.advance(0.05)
    clock.advance(0.15)
    resp = await task
    assert resp.request_id == 5
    code, _etype, msg = error_of(resp)
    assert code == 400
    assert msg == "channel call error: request timeout after 200 ms"
    assert all(f.cancelled() for ep in eps for f in ep.futures)


async def test_backup_default_deadline_is_request_timeout() -> None:
    clock = FakeClock()
    ha = backup_ha(clock, requestTimeout="300")
    eps = endpoints(2, reply=pending())
    task = asyncio.create_task(ha.call(request(), rr(eps)))
    await settle()
    assert eps[0].timeouts == [pytest.approx(0.3)]
    clock.advance(0.3)
    assert error_of(await task)[2].endswith("after 300 ms")


async def test_without_retries_there_is_no_backup() -> None:
    clock = FakeClock()
    ha = backup_ha(clock, retries="0")
    eps = endpoints(2, reply=pending())
    task = asyncio.create_task(ha.call(request(), rr(eps), 1.0))
    await settle()
    clock.advance(0.5)
    await settle()
    assert calls(eps) == [1, 0]
    eps[0].resolve()
    assert (await task).body == eps[0].name.encode()


async def test_backups_are_capped_per_round() -> None:
    clock = FakeClock()
    ha = backup_ha(clock, backupRequestMaxRetryRatio="15")
    eps = endpoints(2, reply=pending())
    lb = rr(eps)

    async def one_call() -> None:
        task = asyncio.create_task(ha.call(request(), lb, 1.0))
        await settle()
        clock.advance(0.05)  # a backup goes out if a permit is left
        waiting = [f for ep in eps for f in ep.futures if not f.done()]
        assert len(waiting) in (1, 2)
        waiting[0].set_result(Frame(1, 0, 6, 1, {}, b""))
        await task

    for _ in range(100):
        await one_call()
    assert ha.backups == 15
    assert sum(calls(eps)) == 115
    await one_call()  # request 101 opens a new round
    assert ha.backups == 16


async def test_the_round_also_renews_with_time() -> None:
    clock = FakeClock()
    ha = backup_ha(clock, backupRequestMaxRetryRatio="1")
    eps = endpoints(2, reply=pending())
    lb = rr(eps)

    async def slow_call() -> None:
        task = asyncio.create_task(ha.call(request(), lb, 1.0))
        await settle()
        clock.advance(0.05)
        for ep in eps:
            for fut in ep.futures:
                if not fut.done():
                    fut.set_result(Frame(1, 0, 6, 1, {}, b""))
                    await task
                    return

    await slow_call()
    await slow_call()
    assert ha.backups == 1
    clock.advance(20.0)
    await slow_call()
    assert ha.backups == 2


async def test_delay_comes_from_observed_latency() -> None:
    clock = FakeClock()
    url = REFER.with_params({"retries": "1", "backupRequestDelayRatio": "50"})
    ha = BackupRequestHa(url, clock, min_samples=4)
    eps = endpoints(2, reply=pending())
    lb = rr(eps)
    frame = request()
    assert ha.delay(frame) is None  # no basis: plain calls
    for latency in (0.02, 0.04, 0.08, 0.30):
        task = asyncio.create_task(ha.call(frame, lb, 1.0))
        await settle()
        clock.advance(latency)
        ep = next(ep for ep in eps if ep.futures and not ep.futures[-1].done())
        ep.resolve()
        await task
    assert ha.backups == 0
    assert sum(calls(eps)) == 4
    assert ha.delay(frame) == pytest.approx(0.04)
    assert ha.delay(request("other")) is None  # windows are per method
    ha2 = BackupRequestHa(REFER.with_params(retries="1"), clock, min_samples=1)
    ha2.window("echo").add(0.001)
    assert ha2.delay(frame) == pytest.approx(0.010)  # at least 10 ms


async def test_initial_delay_applies_until_there_are_observations() -> None:
    clock = FakeClock()
    url = REFER.with_params({"retries": "1", "backupRequestInitDelayTime": "30"})
    ha = BackupRequestHa(url, clock)
    assert ha.delay(request()) == pytest.approx(0.030)
    eps = endpoints(2, reply=pending())
    task = asyncio.create_task(ha.call(request(), rr(eps), 1.0))
    await settle()
    clock.advance(0.03)
    assert calls(eps) == [1, 1]
    eps[1].resolve()
    await task


async def test_plain_call_fails_over_without_a_delay() -> None:
    clock = FakeClock()
    ha = BackupRequestHa(REFER.with_params(retries="1"), clock)
    eps = endpoints(2, reply=remote_error())
    eps[1].reply = ok("second")
    resp = await ha.call(request(), rr(eps), 1.0)
    assert resp.body == b"second"
    assert ha.backups == 0


async def test_cancelling_the_caller_cancels_every_attempt() -> None:
    clock = FakeClock()
    ha = backup_ha(clock)
    eps = endpoints(2, reply=pending())
    task = asyncio.create_task(ha.call(request(), rr(eps), 1.0))
    await settle()
    clock.advance(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all(f.cancelled() for ep in eps for f in ep.futures)
    clock.advance(5.0)  # no timer left to fire into a finished call
    assert calls(eps) == [1, 1]


async def test_backup_reports_to_the_balancer() -> None:
    clock = FakeClock()
    ha = backup_ha(clock)
    lb = LeastRequestLoadBalancer(REFER, random.Random(3))
    eps = endpoints(2, reply=pending())
    lb.on_refresh(eps)
    task = asyncio.create_task(ha.call(request(), lb, 1.0, {"M_g": "g"}))
    await settle()
    clock.advance(0.05)
    assert calls(eps) == [1, 1]
    assert [ep.changes for ep in eps] == [[{"M_g": "g"}]] * 2
    # the backup was sent 50 ms later, with what was left of the deadline
    backup = next(ep for ep in eps if ep.timeouts[0] == pytest.approx(0.95))
    original = eps[1] if backup is eps[0] else eps[0]
    assert original.timeouts[0] == pytest.approx(1.0)
    clock.advance(0.01)
    backup.resolve()
    await task
    assert lb.latency(backup) == pytest.approx(0.01)
    # the cancelled original reported nothing: it is costed like a node never seen
    assert lb.latency(original) == lb.latency(TestEndpoint("10.9.9.9"))


async def test_no_backup_past_the_deadline() -> None:
    clock = FakeClock()
    ha = backup_ha(clock)
    eps = endpoints(2, reply=pending())
    task = asyncio.create_task(ha.call(request(), rr(eps), 0.03))
    await settle()
    clock.advance(0.03)
    assert error_of(await task)[0] == 400
    assert calls(eps) == [1, 0]
    assert ha.backups == 0


async def test_a_backup_refused_at_once_leaves_the_original_running() -> None:
    def refuse(frame: Frame) -> Frame:
        raise EndpointUnavailable("closed")

    clock = FakeClock()
    ha = backup_ha(clock)
    eps = endpoints(2, reply=pending())
    eps[1].reply = refuse
    task = asyncio.create_task(ha.call(request(), rr(eps), 1.0))
    await settle()
    clock.advance(0.05)
    assert ha.backups == 1
    assert not task.done()
    eps[0].resolve()
    assert (await task).body == eps[0].name.encode()
