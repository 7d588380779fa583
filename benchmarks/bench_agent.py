"""Agent throughput and latency, measured from outside with the Go tools in ../shared/tools.

Paths measured in one run, so machine drift cancels in the ratios:

* ``direct``: motanload → motanecho;
* ``server``: motanload → server agent → motanecho;
* ``mesh``: motanload → client agent → server agent → motanecho (embedded registry).

For each path and concurrency (default c = 1, 16, 64) it prints motanload's JSON figures and
the ratio to ``direct`` at the same concurrency, plus the resident memory of each agent after
the load. Build the tools first: ``../shared/tools/build.sh "$PWD/.tools"``.

    python benchmarks/bench_agent.py [--seconds 5] [--rounds 2] [--conc 1,16,64] [--tools .tools]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SERVICE = "com.weibo.motan.demo.service.MotanDemoService"
GROUP = "motan-demo-rpc"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def configs(work: Path, echo: int, ports: dict[str, int]) -> tuple[Path, Path]:
    registry = work / "registry.db"
    server = work / "server.yaml"
    server.write_text(f"""\
motan-agent: {{port: {ports["s_port"]}, mport: {ports["s_mport"]}, application: bench-server,
  runtime_dir: {work}/s-run, pidfile: {work}/s.pid, drainTime: 0}}
motan-registry: {{local: {{protocol: embedded, address: {registry}}}}}
motan-service:
  echo: {{registry: local, path: {SERVICE}, group: {GROUP},
    export: "motan2:{ports["export"]}", proxy: "motan2:{echo}"}}
""")
    client = work / "client.yaml"
    client.write_text(f"""\
motan-agent: {{port: {ports["c_port"]}, mport: {ports["c_mport"]}, application: bench-client,
  runtime_dir: {work}/c-run, pidfile: {work}/c.pid, drainTime: 0}}
motan-registry: {{local: {{protocol: embedded, address: {registry}}}}}
motan-refer:
  echo: {{registry: local, path: {SERVICE}, group: {GROUP}, requestTimeout: 3000}}
""")
    return server, client


def load(tools: Path, addr: str, conc: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [
            str(tools / "motanload"),
            "-addr",
            addr,
            "-c",
            str(conc),
            "-d",
            f"{seconds}s",
            "-size",
            "16",
            "-path",
            SERVICE,
            "-method",
            "hello",
            "-group",
            GROUP,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--conc", default="1,16,64")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; best kept")
    parser.add_argument("--tools", default=".tools")
    args = parser.parse_args()
    tools = Path(args.tools).resolve()
    if not (tools / "motanload").exists():
        print(f"build the tools first: ../shared/tools/build.sh {tools}", file=sys.stderr)
        return 2
    concs = [int(c) for c in args.conc.split(",")]
    work = Path(tempfile.mkdtemp(prefix="motanmesh-bench-"))
    echo = free_port()
    ports = {k: free_port() for k in ("s_port", "s_mport", "export", "c_port", "c_mport")}
    server_cfg, client_cfg = configs(work, echo, ports)
    procs: list[subprocess.Popen[bytes]] = []
    agent = [sys.executable, "-m", "motanmesh.cli", "agent", "-log_level", "warning", "-c"]
    try:
        procs.append(subprocess.Popen([str(tools / "motanecho"), "-addr", f"127.0.0.1:{echo}"]))
        wait_port(echo)
        server = subprocess.Popen([*agent, str(server_cfg)], stdout=subprocess.DEVNULL)
        procs.append(server)
        wait_port(ports["s_mport"])
        import urllib.request  # noqa: PLC0415

        urllib.request.urlopen(f"http://127.0.0.1:{ports['s_mport']}/200", timeout=5).read()
        client = subprocess.Popen([*agent, str(client_cfg)], stdout=subprocess.DEVNULL)
        procs.append(client)
        wait_port(ports["c_port"])
        time.sleep(1.5)
        paths = {
            "direct": f"127.0.0.1:{echo}",
            "server": f"127.0.0.1:{ports['export']}",
            "mesh": f"127.0.0.1:{ports['c_port']}",
        }
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.seconds:g} s/point, "
            f"best of {args.rounds} interleaved rounds"
        )
        best: dict[tuple[str, int], dict[str, Any]] = {}
        for _ in range(args.rounds):
            for conc in concs:
                for name, addr in paths.items():
                    r = load(tools, addr, conc, args.seconds)
                    if (name, conc) not in best or r["rps"] > best[(name, conc)]["rps"]:
                        best[(name, conc)] = r
        print(
            f"{'path':8s} {'c':>3s} {'rps':>9s} {'ratio':>6s} {'p50 ms':>7s} {'p99 ms':>7s} "
            f"{'errors':>6s}"
        )
        for conc in concs:
            base = best[("direct", conc)]["rps"]
            for name in paths:
                r = best[(name, conc)]
                errs = r["errors"] + r["exceptions"]
                print(
                    f"{name:8s} {conc:3d} {r['rps']:9.0f} {r['rps'] / base:6.3f} "
                    f"{r['p50_ms']:7.3f} {r['p99_ms']:7.3f} {errs:6d}",
                    flush=True,
                )
        print(
            f"resident memory: server agent {rss_mb(server.pid):.1f} MB, "
            f"client agent {rss_mb(client.pid):.1f} MB"
        )
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
