"""Endpoint -> MotanServer echo throughput, in one process over loopback TCP.

Usage: ``python benchmarks/bench_transport.py [--seconds 3] [--loop uvloop|asyncio]
[--concurrency 1,16,64] [--connections 3]``

For each concurrency level, that many callers loop on ``Endpoint.request`` against a server
whose handler answers every request at once; prints requests per second and the p50/p99
latency of one request. Client and server share one event loop, so the figure is the cost of
both sides of the transport together.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from motanmesh.transport import Endpoint, MotanServer, Responder, ServerConnection
from motanmesh.transport import loop as loops
from motanmesh.wire.frame import FLAG_RESPONSE, Frame, parse_frame, request_frame
from motanmesh.wire.passthrough import forward

_META = {
    "M_p": "com.weibo.motan2.test.Motan2TestService",
    "M_m": "hello",
    "M_g": "motan-demo-rpc",
    "M_pp": "motan2",
    "M_s": "bench",
}
_BODY = bytes.fromhex("020000001d0000000269640000000478787878000000046e616d6500000003726179")


def echo(frame: Frame, respond: Responder, conn: ServerConnection) -> None:
    respond(forward(frame, frame.request_id, set_flags=FLAG_RESPONSE))


def echo_later(frame: Frame, respond: Responder, conn: ServerConnection) -> None:
    # answers from a later callback, as a forwarding agent does
    asyncio.get_running_loop().call_soon(
        respond, forward(frame, frame.request_id, set_flags=FLAG_RESPONSE)
    )


async def caller(ep: Endpoint, frame: Frame, until: float, lat: list[float]) -> None:
    clock = time.perf_counter
    append = lat.append
    request = ep.request
    while True:
        t0 = clock()
        if t0 >= until:
            return
        await request(frame)
        append(clock() - t0)


async def run_level(
    ep: Endpoint, concurrency: int, seconds: float
) -> tuple[float, float, float, float]:
    frame = parse_frame(request_frame(1, dict(_META), _BODY).encode())
    warm: list[float] = []
    await asyncio.gather(
        *(caller(ep, frame, time.perf_counter() + 0.3, warm) for _ in range(concurrency))
    )
    lat: list[float] = []
    start = time.perf_counter()
    cpu = time.process_time()
    until = start + seconds
    await asyncio.gather(*(caller(ep, frame, until, lat) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    lat.sort()
    p50 = lat[len(lat) // 2]
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return len(lat) / elapsed, p50, p99, cpu / len(lat)


async def main(args: argparse.Namespace) -> None:
    server = MotanServer(echo_later if args.later else echo)
    host, port = await server.listen_tcp()
    ep = Endpoint(f"{host}:{port}", connections=args.connections, request_timeout=5.0)
    await ep.connect()
    loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(
        f"loop={loop_name} connections={args.connections} seconds={args.seconds}"
        f" handler={'later' if args.later else 'at once'}"
    )
    print(f"{'concurrency':>11} {'req/s':>10} {'p50 us':>8} {'p99 us':>8} {'cpu us/req':>10}")
    for c in args.concurrency:
        rps, p50, p99, cpu = await run_level(ep, c, args.seconds)
        print(f"{c:>11} {rps:>10.0f} {p50 * 1e6:>8.0f} {p99 * 1e6:>8.0f} {cpu * 1e6:>10.1f}")
    await ep.close()
    await server.close()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    p.add_argument("--connections", type=int, default=3)
    p.add_argument("--later", action="store_true", help="answer from a later loop callback")
    p.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64]
    )
    return p.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.loop == "uvloop":
        loops.install()
    asyncio.run(main(arguments))
