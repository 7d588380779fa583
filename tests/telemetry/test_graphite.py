"""The Go agent's metric datagrams, received by a real UDP socket and compared byte for
byte with lines written out from the Go agent's format (``metrics/graphite.go``: role,
application, group + suffix, ``byhost``, local ip with ``_``, service, method + key; ``|c``
counters, ``%.2f|kv`` percentiles, ``%.2f|ms`` avg_time, ``%d|kv`` gauges; escaping
``[^A-Za-z0-9-]`` → ``_``; at most 5 KB per datagram)."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Iterator

import pytest

from motanmesh.telemetry.graphite import (
    MESSAGE_MAX_LEN,
    DatagramWriter,
    Gauge,
    carbon_lines,
    escape,
    pack,
)
from motanmesh.telemetry.store import MetricStore

# one series: application "my.app", group "grp-1", service "com.weibo.Svc", method "say$hi";
# latencies 10, 20, 30, 40, 250 ms; one biz and one other error.
# sorted [10 20 30 40 250], n=5: p50 at 3.0 → 30; p75 at 4.5 → 40 + .5*(250-40) = 145;
# p95.. at >= 5 → 250; mean 70.
P = "motan-client-agent.my_app.grp-1.byhost.127_0_0_1.com_weibo_Svc.say_hi"
EXPECTED_SERIES = [
    f"{P}.total_count:5|c\n",
    f"{P}.biz_error_count:1|c\n",
    f"{P}.other_error_count:1|c\n",
    f"{P}.slow_count:1|c\n",
    f"{P}.Less50ms:4|c\n",
    f"{P}.Less500ms:1|c\n",
    f"{P}.p50:30.00|kv\n"
    f"{P}.p75:145.00|kv\n"
    f"{P}.p95:250.00|kv\n"
    f"{P}.p99:250.00|kv\n"
    f"{P}.p999:250.00|kv\n"
    f"{P}.p9999:250.00|kv\n"
    f"{P}.avg_time:70.00|ms\n",
]
C = "motan-client-agent.my_app.grp-1.cluster.byhost.127_0_0_1.com_weibo_Svc.say_hi"
EXPECTED_CLUSTER = [
    f"{C}.total_count:1|c\n",
    f"{C}.Less100ms:1|c\n",
    f"{C}.p50:75.00|kv\n"
    f"{C}.p75:75.00|kv\n"
    f"{C}.p95:75.00|kv\n"
    f"{C}.p99:75.00|kv\n"
    f"{C}.p999:75.00|kv\n"
    f"{C}.p9999:75.00|kv\n"
    f"{C}.avg_time:75.00|ms\n",
]
EXPECTED_GAUGE = "motan-agent.my_app.motan-stat.byhost.127_0_0_1.status.memory:42|kv\n"


def _ms(ms: int) -> float:
    return ms / 1000 + 0.0004  # whole milliseconds after truncation, as Go's cost


def _store() -> MetricStore:
    store = MetricStore()
    s = store.stats("motan-client-agent", "my.app", "grp-1", "", "com.weibo.Svc", "say$hi")
    for ms, error in ((10, None), (20, "biz"), (30, "other"), (40, None), (250, None)):
        s.record(_ms(ms), error)
    c = store.stats("motan-client-agent", "my.app", "grp-1", ".cluster", "com.weibo.Svc", "say$hi")
    c.record(_ms(75), None)
    return store


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    try:
        yield sock
    finally:
        sock.close()


def _receive(sock: socket.socket, count: int) -> list[bytes]:
    return [sock.recv(65536) for _ in range(count)]


async def test_datagrams_carry_the_go_lines_byte_for_byte(listener: socket.socket) -> None:
    writer = DatagramWriter("collector", "127.0.0.1", listener.getsockname()[1])
    snaps = _store().snapshot_and_clear()
    await writer.write(snaps, [Gauge("my.app", "memory", 42)], 1_700_000_000)
    assert writer.sent == 1
    (datagram,) = await asyncio.to_thread(_receive, listener, 1)
    assert datagram == "".join([*EXPECTED_SERIES, *EXPECTED_CLUSTER, EXPECTED_GAUGE]).encode()


async def test_nothing_is_sent_for_an_empty_period(listener: socket.socket) -> None:
    writer = DatagramWriter("collector", "127.0.0.1", listener.getsockname()[1])
    await writer.write([], [], 0)
    assert writer.sent == 0


async def test_datagrams_are_packed_up_to_5_kb_without_splitting_a_series(
    listener: socket.socket,
) -> None:
    store = MetricStore()
    for i in range(60):
        store.stats("motan-server-agent", "app", "g", "", "svc", f"method{i:02d}").record(
            _ms(i), None
        )
    snaps = store.snapshot_and_clear()
    writer = DatagramWriter("collector", "127.0.0.1", listener.getsockname()[1])
    await writer.write(snaps, [], 0)
    datagrams = await asyncio.to_thread(_receive, listener, writer.sent)
    assert writer.sent > 2
    assert all(len(d) <= MESSAGE_MAX_LEN for d in datagrams)
    # each datagram would have overflowed with the next series' first segment
    text = [d.decode() for d in datagrams]
    for first, second in itertools.pairwise(text):
        second_lines = second.splitlines(keepends=True)
        histogram_first = ".p50:" in second_lines[0]
        next_segment = "".join(second_lines[: 7 if histogram_first else 1])
        assert len(first) + len(next_segment) > MESSAGE_MAX_LEN
    lines = "".join(text).splitlines()
    assert len(lines) == 60 * (1 + 1 + 7)
    for i in range(60):
        prefix = f"motan-server-agent.app.g.byhost.127_0_0_1.svc.method{i:02d}"
        assert f"{prefix}.total_count:1|c" in lines
        histogram = [n for n, line in enumerate(lines) if line.startswith(prefix + ".p")]
        assert len(histogram) == 6
        # the seven histogram lines travel in one datagram
        owner = [d for d in text if f"{prefix}.p50:" in d]
        assert len(owner) == 1 and f"{prefix}.avg_time:{float(i):.2f}|ms" in owner[0]


def test_pack_keeps_a_segment_longer_than_the_limit_whole() -> None:
    assert pack(["a" * 10, "b" * 30, "c" * 5], limit=20) == [b"a" * 10, b"b" * 30, b"c" * 5]
    assert pack(["a" * 10, "b" * 10, "c"], limit=20) == [b"a" * 10 + b"b" * 10, b"c"]
    assert pack([]) == []


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("com.weibo.Svc", "com_weibo_Svc"),
        ("motan-demo-rpc", "motan-demo-rpc"),
        ("a b/c:d_e", "a_b_c_d_e"),
        ("中文", "__"),
        ("", ""),
    ],
)
def test_escape(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped


def test_carbon_lines_use_the_same_names() -> None:
    lines = carbon_lines(
        _store().snapshot_and_clear(), [Gauge("my.app", "cpu", 3)], "127.0.0.1", 1700, "mesh."
    )
    assert lines[0] == f"mesh.{P}.total_count 5 1700\n"
    assert f"mesh.{P}.p75 145.00 1700\n" in lines
    assert f"mesh.{P}.avg_time 70.00 1700\n" in lines
    assert f"mesh.{C}.total_count 1 1700\n" in lines
    assert lines[-1] == "mesh.motan-agent.my_app.motan-stat.byhost.127_0_0_1.status.cpu 3 1700\n"
