"""The Python demo service against the Go echo backend, measured with motanload.

Both servers answer ``hello`` on 127.0.0.1; motanload drives each at c = 1, 16, 64 (rounds
interleaved, the best round of each point kept), and the ratio demo/echo at the same
concurrency is printed. Build the tools first (benchmarks/README.md, "What the benchmarks need").

    python benchmarks/bench_service.py [--seconds 4] [--rounds 2] [--conc 1,16,64]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import free_port, motanload, require_go_tools, stop, wait_port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--conc", default="1,16,64")
    parser.add_argument("--tools", default=".tools")
    args = parser.parse_args()
    tools = Path(args.tools).resolve()
    problem = require_go_tools(tools)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    echo, demo = free_port(), free_port()
    procs = [
        subprocess.Popen([str(tools / "motanecho"), "-addr", f"127.0.0.1:{echo}"]),
        subprocess.Popen(
            [sys.executable, "-m", "motanmesh.cli", "demo-service", "--port", str(demo)],
            stdout=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_port(echo)
        wait_port(demo)
        best: dict[tuple[str, int], dict[str, Any]] = {}
        for _ in range(args.rounds):
            for conc in (int(c) for c in args.conc.split(",")):
                for name, port in (("go echo", echo), ("python demo", demo)):
                    r = motanload(tools, f"127.0.0.1:{port}", conc, args.seconds)
                    key = (name, conc)
                    if key not in best or r["rps"] > best[key]["rps"]:
                        best[key] = r
        print(f"{'server':12s} {'c':>3s} {'rps':>9s} {'ratio':>6s} {'p50 ms':>7s} {'p99 ms':>7s}")
        for (name, conc), r in sorted(best.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            ratio = r["rps"] / best[("go echo", conc)]["rps"]
            print(f"{name:12s} {conc:3d} {r['rps']:9.0f} {ratio:6.3f} {r['p50_ms']:7.3f} "
                  f"{r['p99_ms']:7.3f}")  # fmt: skip
    finally:
        stop(procs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
