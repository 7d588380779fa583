"""Memory over a soak: a steady call rate through both agents for minutes, RSS sampled.

One pair of our agents (client agent → server agent → motanecho, as in ``bench_vs_go.py``) and,
with ``--go-agent``, one pair of the Go reference agent beside it under the same load. A paced
loader in this process sends ``--rate`` calls per second to each client agent over
``--conns`` connections for ``--minutes``; every ``--every`` seconds it samples the resident
memory of each agent. It prints the samples, then per agent the RSS at the start and the end
and the slope of a least-squares line through the samples after the first ``--warmup``
seconds (MB per minute).

    python benchmarks/bench_soak.py [--go-agent PATH] [--tools .tools] [--minutes 10]
        [--rate 500] [--conns 8] [--size 1024] [--every 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import require_go_tools, rss_mb
from vs_go import Pair, require_go_agent, simple_call_bytes, start_echo, start_pair, stop_pair

PATH = "com.weibo.motan.bench.Soak"


class Counts:
    def __init__(self) -> None:
        self.sent = 0
        self.ok = 0
        self.failed = 0


async def read_answers(reader: asyncio.StreamReader, counts: Counts) -> None:
    while True:
        head = await reader.readexactly(17)
        (meta_len,) = struct.unpack(">I", head[13:17])
        await reader.readexactly(meta_len)
        (body_len,) = struct.unpack(">I", await reader.readexactly(4))
        await reader.readexactly(body_len)
        if head[3] & 0x07:
            counts.failed += 1
        else:
            counts.ok += 1


async def paced_load(
    addr: str, rate: float, conns: int, size: int, seconds: float, counts: Counts
) -> None:
    """``rate`` calls per second spread over ``conns`` connections, for ``seconds``."""
    host, port = addr.rsplit(":", 1)
    streams = [await asyncio.open_connection(host, int(port)) for _ in range(conns)]
    readers = [asyncio.create_task(read_answers(r, counts)) for r, _ in streams]
    arg = "x" * size
    tick = 0.01
    start = time.monotonic()
    rid = 0
    try:
        while (now := time.monotonic()) - start < seconds:
            due = int((now - start) * rate) - counts.sent
            for _ in range(due):
                rid += 1
                streams[rid % conns][1].write(simple_call_bytes(PATH, rid, arg))
                counts.sent += 1
            await asyncio.sleep(tick)
        await asyncio.sleep(1.0)
    finally:
        for task in readers:
            task.cancel()
        for _, writer in streams:
            writer.close()


async def soak(pairs: dict[str, Pair], args: argparse.Namespace) -> None:
    counts = {kind: Counts() for kind in pairs}
    seconds = args.minutes * 60
    loads = [
        asyncio.create_task(
            paced_load(p.addr, args.rate, args.conns, args.size, seconds, counts[k])
        )
        for k, p in pairs.items()
    ]
    agents = [(f"{k} {a.role}", a.pid) for k, p in pairs.items() for a in p.agents()]
    samples: list[tuple[float, list[float]]] = []
    print("t s | " + " | ".join(name for name, _ in agents) + " | calls ok")
    start = time.monotonic()
    while not all(t.done() for t in loads):
        t = time.monotonic() - start
        rss = [rss_mb(pid) for _, pid in agents]
        samples.append((t, rss))
        ok = ", ".join(f"{k} {c.ok}" for k, c in counts.items())
        print(f"{t:5.0f} | " + " | ".join(f"{m:.2f}" for m in rss) + f" | {ok}", flush=True)
        await asyncio.sleep(args.every)
    for task in loads:
        task.result()
    print("\n| agent | RSS at start MB | RSS at end MB | slope after warm-up MB/min |")
    print("|---|---:|---:|---:|")
    late = [(t, r) for t, r in samples if t >= args.warmup]
    for i, (name, _) in enumerate(agents):
        xs = [t / 60 for t, _ in late]
        ys = [r[i] for _, r in late]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0
        print(f"| {name} | {samples[0][1][i]:.2f} | {samples[-1][1][i]:.2f} | {slope:+.3f} |")
    for kind, c in counts.items():
        print(f"{kind}: {c.sent} calls sent, {c.ok} answered, {c.failed} exceptions")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--go-agent", default=os.environ.get("MOTAN_GO_AGENT", ""))
    parser.add_argument("--tools", default=".tools")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--conns", type=int, default=8)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--every", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=60.0)
    args = parser.parse_args()
    tools = Path(args.tools).resolve()
    problem = require_go_tools(tools)
    if args.go_agent and not problem:
        problem = require_go_agent(args.go_agent)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="motanmesh-soak-"))
    procs: list[subprocess.Popen[bytes]] = []
    pairs: dict[str, Pair] = {}
    try:
        services = {PATH: start_echo(tools, "x" * args.size, procs)}
        for kind in ("py", "go") if args.go_agent else ("py",):
            pairs[kind] = start_pair(kind, work, args.go_agent, services)
        time.sleep(1.0)
        print(
            f"{args.minutes:g} min at {args.rate:g} calls/s per pair over {args.conns} "
            f"connections, {args.size}-byte bodies, RSS every {args.every:g} s"
        )
        asyncio.run(soak(pairs, args))
    finally:
        for pair in pairs.values():
            stop_pair(pair)
        for p in procs:
            p.terminate()
            p.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
