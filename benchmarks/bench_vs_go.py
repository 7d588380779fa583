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


def turns(names: list[str], rounds: int) -> list[list[str]]:
    """The order of the pairs in each round: as given, then reversed, and so on."""
    return [names if r % 2 == 0 else names[::-1] for r in range(rounds)]


def load_point(
    pair: Pair, tools: Path, conc: int, seconds: float, size: int, path: str
) -> dict[str, Any]:
    client, server = pair.agents()
    with Sampler([client.pid, server.pid]) as s:
        r = motanload_run(tools, pair.addr, conc, seconds, size, path)
    calls = max(1, r["ok"] + r["exceptions"])
    r["rss_client"] = s.peak[client.pid]
    r["rss_server"] = s.peak[server.pid]
    # CPU of both agents per call (the warm-up's calls, about 0.5 s of the run, are counted
    # as well, with the same share for every pair)
    all_calls = calls * (seconds + 0.5) / seconds
    r["cpu_us"] = (s.cpu[client.pid] + s.cpu[server.pid]) / all_calls * 1e6
    return r


def better(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    return new if old is None or new["rps"] > old["rps"] else old


def table(
    point: str,
    points: list[Any],
    names: list[str],
    best: dict[tuple[str, Any], dict[str, Any]],
    extra: tuple[tuple[str, str], ...] = (),
) -> None:
    """One row per point and pair; ``ratio`` is the pair's rps over the Go pair's."""
    cols = " | ".join(title for title, _ in extra)
    print(
        f"| {point} | agents | rps | ratio to go | p50 ms | p99 ms | CPU µs/call (both) | "
        f"RSS client/server MB |" + (f" {cols} |" if cols else "")
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(extra))
    for x in points:
        base = best[("go", x)]["rps"]
        for name in names:
            r = best[(name, x)]
            errors = r["errors"] + r["exceptions"]
            more = "".join(f" {r[key]:.1f} |" for _, key in extra)
            print(
                f"| {x:,} | {name} | {r['rps']:,.0f} | {r['rps'] / base:.2f} | "
                f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['cpu_us']:.0f} | "
                f"{r['rss_client']:.1f}/{r['rss_server']:.1f} |{more}"
                + (f" ({errors} errors)" if errors else ""),
                flush=True,
            )


def curve_memory(pairs: dict[str, Pair], args: argparse.Namespace, tools: Path) -> None:
    print("\n## memory (MB resident): idle, then peak under load", flush=True)
    names = list(pairs)
    best: dict[tuple[str, Any], dict[str, Any]] = {}
    for order in turns(names, args.rounds):
        for name in order:
            r = load_point(pairs[name], tools, args.mem_conc, args.seconds, 16, echo_path(100))
            best[(name, 0)] = better(best.get((name, 0)), r)
    print("| agents | idle client | idle server | load client | load server | rps | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        r = best[(name, 0)]
        idle = args.idle[name]
        print(
            f"| {name} | {idle[0]:.1f} | {idle[1]:.1f} | {r['rss_client']:.1f} | "
            f"{r['rss_server']:.1f} | {r['rps']:,.0f} | {r['p99_ms']:.2f} |",
            flush=True,
        )
    print(f"(load: c={args.mem_conc}, 16-byte calls, best of {args.rounds} rounds by rps)")


def curve_body(pairs: dict[str, Pair], args: argparse.Namespace, tools: Path) -> None:
    print(f"\n## body size (c={args.conc})", flush=True)
    names = list(pairs)
    sizes = [int(s) for s in args.sizes.split(",")]
    best: dict[tuple[str, Any], dict[str, Any]] = {}
    for order in turns(names, args.rounds):
        for size in sizes:
            for name in order:
                r = load_point(pairs[name], tools, args.conc, args.seconds, size, echo_path(size))
                best[(name, size)] = better(best.get((name, size)), r)
    table("body bytes", sizes, names, best)


def curve_conns(pairs: dict[str, Pair], args: argparse.Namespace, tools: Path) -> None:
    print("\n## application connections to the client agent (100-byte calls)", flush=True)
    names = list(pairs)
    counts = [int(n) for n in args.conns.split(",")]
    best: dict[tuple[str, Any], dict[str, Any]] = {}
    for order in turns(names, args.rounds):
        for n in counts:
            for name in order:
                pair = pairs[name]
                busy = min(n, 16)
                before = pair.client.rss()
                socks = hold_connections(pair.addr, n - busy, echo_path(100))
                time.sleep(0.5)
                held = pair.client.rss()
                try:
                    r = load_point(pair, tools, busy, args.seconds, 100, echo_path(100))
                finally:
                    for s in socks:
                        s.close()
                r["per_conn_kb"] = (held - before) * 1024 / (n - busy) if n > busy else 0.0
                best[(name, n)] = better(best.get((name, n)), r)
                time.sleep(0.5)
    table("connections", counts, names, best, (("KB per idle conn", "per_conn_kb"),))
    print(
        "(motanload drives min(n, 16) connections; KB per idle connection: the client agent's "
        "RSS with the idle ones open minus before they opened, divided by their number)"
    )


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
    parser.add_argument(
        "--py-variant",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE",
        help="one more pair of our agents with VAR=VALUE in their environment",
    )
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
    variants: dict[str, dict[str, str]] = {}
    for item in args.py_variant:
        name, _, assignment = item.partition(":")
        var, eq, value = assignment.partition("=")
        if not name or not var or not eq:
            print(f"--py-variant {item!r}: expected NAME:VAR=VALUE", file=sys.stderr)
            return 2
        variants[f"py/{name}"] = {var: value}
    sizes = sorted({100, *(int(s) for s in args.sizes.split(","))})
    work = Path(tempfile.mkdtemp(prefix="motanmesh-vs-go-"))
    procs: list[subprocess.Popen[bytes]] = []
    pairs: dict[str, Pair] = {}
    try:
        services = {echo_path(s): start_echo(tools, "x" * min(s, MAX_REPLY), procs) for s in sizes}
        for kind in KINDS:
            pairs[kind] = start_pair(kind, work, args.go_agent, services)
        for name, env in variants.items():
            pairs[name] = start_pair("py", work, args.go_agent, services, env=env, name=name)
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
