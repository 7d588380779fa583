"""Our agents against the Go reference agent (motan-go), the same two-agent path side by side.

Each kind runs one pair from the same YAML (only the ports differ): motanload → client agent →
server agent → motanecho, a ``direct`` registry between them. The pairs take turns point by
point (the order flips every round) and the best round of each point is kept, so every figure
is a ratio within one run.

Curves (``--curve``, comma-separated; default ``memory,body,conns``):

* ``memory``: resident memory of each agent idle (2 s after start, before any call), then the peak
  under ``--mem-conc`` (64) connections of 16-byte calls;
* ``body``: request bodies of 100 B, 4 KB, 64 KB and 1 MB (``--sizes``) at ``--conc`` (16);
  the answer is as large as the request up to 100,000 bytes (motanecho takes its answer on
  the command line, which Linux limits to 128 KB per argument), so the 1 MB point answers
  with 100,000 bytes; throughput, p99, and CPU time per call of each agent;
* ``conns``: 1, 100, 1,000, 5,000 application connections to the client agent (``--conns``):
  motanload drives ``min(n, 16)`` of them, the rest each make one call and stay open;
  p99, and the client agent's memory per connection.

    python benchmarks/bench_vs_go.py --go-agent PATH [--tools .tools] [--curve memory,body,conns]
        [--seconds 4] [--rounds 2] [--conc 16] [--sizes 100,4096,65536,1048576]
        [--conns 1,100,1000,5000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import require_go_tools
from vs_go import (
    KINDS,
    Pair,
    Sampler,
    hold_connections,
    motanload_run,
    require_go_agent,
    start_echo,
    start_pair,
    stop_pair,
)

MAX_REPLY = 100_000


def echo_path(size: int) -> str:
    return f"com.weibo.motan.bench.Echo{size}"


def turns(rounds: int) -> list[tuple[str, ...]]:
    """The order of the kinds in each round: go first, then py first, and so on."""
    return [KINDS if r % 2 == 0 else tuple(reversed(KINDS)) for r in range(rounds)]


def load_point(
    pair: Pair, tools: Path, conc: int, seconds: float, size: int, path: str
) -> dict[str, Any]:
    client, server = pair.agents()
    with Sampler([client.pid, server.pid]) as s:
        r = motanload_run(tools, pair.addr, conc, seconds, size, path)
    calls = max(1, r["ok"] + r["exceptions"])
    r["rss_client"] = s.peak[client.pid]
    r["rss_server"] = s.peak[server.pid]
    # CPU of both agents per measured call (the warm-up's calls are counted as well: about
    # 0.5 s of the run, the same share for both kinds).
    all_calls = calls * (seconds + 0.5) / seconds
    r["cpu_us"] = (s.cpu[client.pid] + s.cpu[server.pid]) / all_calls * 1e6
    return r


def better(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    return new if old is None or new["rps"] > old["rps"] else old


def curve_memory(pairs: dict[str, Pair], args: argparse.Namespace, tools: Path) -> None:
    print("\n## memory (MB resident): idle, then peak under load", flush=True)
    idle = args.idle
    best: dict[str, dict[str, Any]] = {}
    for order in turns(args.rounds):
        for kind in order:
            r = load_point(pairs[kind], tools, args.mem_conc, args.seconds, 16, echo_path(100))
            best[kind] = better(best.get(kind), r)
    print("| agent | idle client | idle server | load client | load server | rps | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind in KINDS:
        r = best[kind]
        print(
            f"| {kind} | {idle[kind][0]:.1f} | {idle[kind][1]:.1f} | {r['rss_client']:.1f} | "
            f"{r['rss_server']:.1f} | {r['rps']:,.0f} | {r['p99_ms']:.2f} |",
            flush=True,
        )
    print(f"(load: c={args.mem_conc}, 16-byte calls, best of {args.rounds} rounds by rps)")


def curve_body(pairs: dict[str, Pair], args: argparse.Namespace, tools: Path) -> None:
    print(f"\n## body size (c={args.conc})", flush=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for order in turns(args.rounds):
        for size in sizes:
            for kind in order:
                r = load_point(pairs[kind], tools, args.conc, args.seconds, size, echo_path(size))
                best[(kind, size)] = better(best.get((kind, size)), r)
    print(
        "| body | go rps | py rps | py/go | go p99 ms | py p99 ms | go CPU µs/call | "
        "py CPU µs/call | go RSS c/s MB | py RSS c/s MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        g, p = best[("go", size)], best[("py", size)]
        print(
            f"| {size:,} | {g['rps']:,.0f} | {p['rps']:,.0f} | {p['rps'] / g['rps']:.2f} | "
            f"{g['p99_ms']:.2f} | {p['p99_ms']:.2f} | {g['cpu_us']:.0f} | {p['cpu_us']:.0f} | "
            f"{g['rss_client']:.0f}/{g['rss_server']:.0f} | "
            f"{p['rss_client']:.0f}/{p['rss_server']:.0f} |",
            flush=True,
        )
        errors = sum(best[(k, size)]["errors"] + best[(k, size)]["exceptions"] for k in KINDS)
        if errors:
            print(f"  ({errors} errors or exceptions at {size} bytes)")


def curve_conns(pairs: dict[str, Pair], args: argparse.Namespace, tools: Path) -> None:
    print("\n## application connections to the client agent (100-byte calls)", flush=True)
    counts = [int(n) for n in args.conns.split(",")]
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for order in turns(args.rounds):
        for n in counts:
            for kind in order:
                pair = pairs[kind]
                busy = min(n, 16)
                before = pair.client.rss()
                t0 = time.monotonic()
                socks = hold_connections(pair.addr, n - busy, echo_path(100))
                opened = time.monotonic() - t0
                time.sleep(0.5)
                held = pair.client.rss()
                try:
                    r = load_point(pair, tools, busy, args.seconds, 100, echo_path(100))
                finally:
                    for s in socks:
                        s.close()
                r["per_conn_kb"] = (held - before) * 1024 / (n - busy) if n > busy else 0.0
                r["held_mb"] = held
                r["open_s"] = opened
                best[(kind, n)] = better(best.get((kind, n)), r)
                time.sleep(0.5)
    print(
        "| connections | go rps | py rps | py/go | go p99 ms | py p99 ms | "
        "go client RSS MB | py client RSS MB | go KB/idle conn | py KB/idle conn |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in counts:
        g, p = best[("go", n)], best[("py", n)]
        print(
            f"| {n:,} | {g['rps']:,.0f} | {p['rps']:,.0f} | {p['rps'] / g['rps']:.2f} | "
            f"{g['p99_ms']:.2f} | {p['p99_ms']:.2f} | {g['rss_client']:.1f} | "
            f"{p['rss_client']:.1f} | {g['per_conn_kb']:.1f} | {p['per_conn_kb']:.1f} |",
            flush=True,
        )
    print("(KB per idle connection: client agent RSS with them open minus before, divided)")


CURVES = {"memory": curve_memory, "body": curve_body, "conns": curve_conns}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--go-agent", default=os.environ.get("MOTAN_GO_AGENT", ""))
    parser.add_argument("--tools", default=".tools")
    parser.add_argument("--curve", default="memory,body,conns")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--conc", type=int, default=16)
    parser.add_argument("--mem-conc", type=int, default=64)
    parser.add_argument("--sizes", default="100,4096,65536,1048576")
    parser.add_argument("--conns", default="1,100,1000,5000")
    args = parser.parse_args()
    tools = Path(args.tools).resolve()
    problem = require_go_agent(args.go_agent) or require_go_tools(tools)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    curves = args.curve.split(",")
    unknown = [c for c in curves if c not in CURVES]
    if unknown:
        print(f"unknown curve {unknown[0]!r}; choose from {', '.join(CURVES)}", file=sys.stderr)
        return 2
    sizes = sorted({100, *(int(s) for s in args.sizes.split(","))})
    work = Path(tempfile.mkdtemp(prefix="motanmesh-vs-go-"))
    procs: list[subprocess.Popen[bytes]] = []
    pairs: dict[str, Pair] = {}
    try:
        services = {echo_path(s): start_echo(tools, "x" * min(s, MAX_REPLY), procs) for s in sizes}
        for kind in KINDS:
            pairs[kind] = start_pair(kind, work, args.go_agent, services)
        time.sleep(2.0)
        args.idle = {k: (p.client.rss(), p.server.rss()) for k, p in pairs.items()}
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average "
            f"{os.getloadavg()[0]:.1f}, {args.seconds:g} s/point, best of {args.rounds} "
            "rounds, go and py taking turns"
        )
        for curve in curves:
            CURVES[curve](pairs, args, tools)
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
