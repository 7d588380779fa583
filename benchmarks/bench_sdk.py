"""SDK client -> demo service ``hello`` throughput and latency, over loopback TCP.

Usage: ``python benchmarks/bench_sdk.py [--seconds 3] [--concurrency 1,16,64]
[--connections 2] [--serialization simple|breeze] [--handler inline|thread|async]
[--in-process] [--loop uvloop|asyncio]``

By default the service runs in a second process (this script started with ``--serve``), so
client and server each have a core and an event loop of their own; ``--in-process`` puts both
on one loop. For each concurrency level, that many callers loop on ``MotanClient.call`` for
``--seconds`` (after a short warm-up); prints calls per second and the p50/p99 latency of one
call. ``--handler`` picks how the service runs ``hello``: inline on the loop (as the demo
service does), in the thread pool, or as a coroutine.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

from motanmesh.demo.service import DEMO_GROUP, DEMO_SERVICE
from motanmesh.sdk import MotanClient, ServiceRegistry, ServiceServer
from motanmesh.transport import loop as loops


def registry(handler: str) -> ServiceRegistry:
    reg = ServiceRegistry()
    svc = reg.service(DEMO_SERVICE, group=DEMO_GROUP)
    if handler == "async":

        async def hello_async(name: str) -> str:
            return "hello " + name

        svc.add("hello", hello_async)
    else:

        def hello(name: str) -> str:
            return "hello " + name

        svc.add("hello", hello, inline=handler == "inline")
    return reg


async def serve(handler: str) -> None:
    """The ``--serve`` mode: print the address, serve until stdin closes."""
    server = await registry(handler).serve("127.0.0.1", 0)
    print(server.address, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await server.close()


async def caller(client: MotanClient, until: float, lat: list[float]) -> None:
    clock = time.perf_counter
    append = lat.append
    call = client.call
    while True:
        t0 = clock()
        if t0 >= until:
            return
        await call(DEMO_SERVICE, "hello", "bench")
        append(clock() - t0)


async def run_level(
    client: MotanClient, concurrency: int, seconds: float
) -> tuple[float, float, float]:
    warm: list[float] = []
    until = time.perf_counter() + 0.3
    await asyncio.gather(*(caller(client, until, warm) for _ in range(concurrency)))
    lat: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(*(caller(client, start + seconds, lat) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    lat.sort()
    p50 = lat[len(lat) // 2]
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return len(lat) / elapsed, p50, p99


async def bench(args: argparse.Namespace, address: str) -> None:
    client = MotanClient(
        address,
        serialization=args.serialization,
        group=DEMO_GROUP,
        timeout=10.0,
        connections=args.connections,
    )
    await client.connect()
    assert await client.call(DEMO_SERVICE, "hello", "bench") == "hello bench"
    loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    mode = "one process" if args.in_process else "two processes"
    print(
        f"loop={loop_name} {mode} handler={args.handler} serialization={args.serialization} "
        f"connections={args.connections} seconds={args.seconds}"
    )
    print(f"{'concurrency':>11} {'calls/s':>10} {'p50 us':>8} {'p99 us':>8}")
    for c in args.concurrency:
        rps, p50, p99 = await run_level(client, c, args.seconds)
        print(f"{c:>11} {rps:>10.0f} {p50 * 1e6:>8.0f} {p99 * 1e6:>8.0f}", flush=True)
    await client.close()


async def main_in_process(args: argparse.Namespace) -> None:
    server: ServiceServer = await registry(args.handler).serve("127.0.0.1", 0)
    try:
        await bench(args, server.address)
    finally:
        await server.close()


def main_two_processes(args: argparse.Namespace) -> None:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", "--handler", args.handler]
    cmd += ["--loop", args.loop]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        address = proc.stdout.readline().strip()
        if not address:
            raise SystemExit("the service process did not start")
        asyncio.run(bench(args, address))
    finally:
        proc.stdin.close()
        proc.wait(10)
        proc.stdout.close()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64]
    )
    p.add_argument("--connections", type=int, default=2)
    p.add_argument("--serialization", choices=("simple", "breeze"), default="simple")
    p.add_argument("--handler", choices=("inline", "thread", "async"), default="inline")
    p.add_argument("--in-process", action="store_true")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


if __name__ == "__main__":
    options = parse_args()
    if options.loop == "uvloop":
        loops.install()
    if options.serve:
        asyncio.run(serve(options.handler))
    elif options.in_process:
        asyncio.run(main_in_process(options))
    else:
        main_two_processes(options)
