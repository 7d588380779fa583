"""Agent throughput and latency, measured from outside with the Go tools motanload and motanecho.

Paths measured in one run, so machine drift cancels in the ratios:

* ``direct``: motanload → motanecho;
* ``server``: motanload → server agent → motanecho;
* ``mesh``: motanload → client agent → server agent → motanecho (embedded registry).

For each path and concurrency (default c = 1, 16, 64) it prints motanload's JSON figures and
the ratio to ``direct`` at the same concurrency, plus the resident memory of each agent after
the load. Build the tools first (benchmarks/README.md, "What the benchmarks need").

``--filters accessLog,metrics`` runs one more pair of agents per filter list (lists separated
by ``;``) with that list as ``defaultFilter`` on both agents; their paths are named
``server/<list>`` and ``mesh/<list>`` and the filter cost is their ratio to ``server``/``mesh``.

``--builds installed,interpreted`` runs a second pair of agents on the interpreted wire modules
(the sources without their mypyc extensions), so the compiled codec's effect is a ratio within
one run; their paths are named ``server/interpreted`` and ``mesh/interpreted``.

    python benchmarks/bench_agent.py [--seconds 5] [--rounds 2] [--conc 1,16,64] [--tools .tools]
        [--builds installed[,interpreted]] [--filters accessLog,metrics[;metrics]]
        [--variant NAME=MAPPING ...]

Beside the throughput, each point reports the agents' CPU time per request (``cpu us``: user
and system time of the agent processes on the path, read from ``/proc`` over the measured
part of the load, divided by the requests answered in it; the best round) and ``cpu ratio``,
the CPU per request of the same path without filters (``server``, ``mesh``) over this path's:
on a saturated machine shared with other work that ratio is steadier than the throughput's,
since time spent waiting for a core is not counted.

``--variant NAME=MAPPING`` (repeatable) runs one more pair of agents whose ``motan-agent``
sections get the keys of the YAML flow mapping, e.g.
``--variant 'trace={globalFilter: trace, tracing.exporter: file}'``; its paths are named
``server/NAME`` and ``mesh/NAME``; the agents run in a directory of their own under the
run's temporary directory (where a file exporter writes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from harness import (
    GROUP,
    SERVICE,
    free_port,
    interpreted_env,
    motanload,
    require_go_tools,
    rss_mb,
    stop,
    wait_port,
)


def configs(
    work: Path,
    echo: int,
    ports: dict[str, int],
    filters: str = "",
    keys: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    work.mkdir(parents=True, exist_ok=True)
    registry = work / "registry.db"
    extra = f", defaultFilter: '{filters}', log_dir: {work}/logs" if filters else ""
    extra += "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in (keys or {}).items())
    server = work / "server.yaml"
    server.write_text(f"""\
motan-agent: {{port: {ports["s_port"]}, mport: {ports["s_mport"]}, application: bench-server,
  runtime_dir: {work}/s-run, pidfile: {work}/s.pid, drainTime: 0{extra}}}
motan-registry: {{local: {{protocol: embedded, address: {registry}}}}}
motan-service:
  echo: {{registry: local, path: {SERVICE}, group: {GROUP},
    export: "motan2:{ports["export"]}", proxy: "motan2:{echo}"}}
""")
    client = work / "client.yaml"
    client.write_text(f"""\
motan-agent: {{port: {ports["c_port"]}, mport: {ports["c_mport"]}, application: bench-client,
  runtime_dir: {work}/c-run, pidfile: {work}/c.pid, drainTime: 0{extra}}}
motan-registry: {{local: {{protocol: embedded, address: {registry}}}}}
motan-refer:
  echo: {{registry: local, path: {SERVICE}, group: {GROUP}, requestTimeout: 3000}}
""")
    return server, client


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of ``pids`` (all their threads), in seconds."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def load_with_cpu(
    tools: Path, addr: str, conc: int, seconds: float, pids: list[int]
) -> tuple[dict[str, Any], float | None]:
    """motanload's figures, and the CPU microseconds ``pids`` spent per request while it
    measured (its first second is a warm-up that is not counted; neither is the CPU in it)."""
    if not pids:
        return motanload(tools, addr, conc, seconds), None
    out: list[dict[str, Any]] = []
    thread = threading.Thread(target=lambda: out.append(motanload(tools, addr, conc, seconds)))
    thread.start()
    time.sleep(1.1)
    t0, c0 = time.monotonic(), cpu_seconds(pids)
    time.sleep(max(0.2, seconds - 0.2))
    t1, c1 = time.monotonic(), cpu_seconds(pids)
    thread.join()
    result = out[0]
    answered = result["rps"] * (t1 - t0)
    return result, (c1 - c0) / answered * 1e6 if answered else None


def start_agents(
    work: Path,
    echo: int,
    env: dict[str, str] | None,
    procs: list[subprocess.Popen[bytes]],
    filters: str = "",
    keys: dict[str, Any] | None = None,
) -> tuple[dict[str, str], subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """A server agent and a client agent in front of ``echo`` (with ``filters`` as their
    ``defaultFilter``); their listening addresses."""
    ports = {k: free_port() for k in ("s_port", "s_mport", "export", "c_port", "c_mport")}
    server_cfg, client_cfg = configs(work, echo, ports, filters, keys)
    agent = [sys.executable, "-m", "motanmesh.cli", "agent", "-log_level", "warning", "-c"]
    server = subprocess.Popen(
        [*agent, str(server_cfg)], stdout=subprocess.DEVNULL, env=env, cwd=work
    )
    procs.append(server)
    wait_port(ports["s_mport"])
    import urllib.request  # noqa: PLC0415

    urllib.request.urlopen(f"http://127.0.0.1:{ports['s_mport']}/200", timeout=5).read()
    client = subprocess.Popen(
        [*agent, str(client_cfg)], stdout=subprocess.DEVNULL, env=env, cwd=work
    )
    procs.append(client)
    wait_port(ports["c_port"])
    paths = {"server": f"127.0.0.1:{ports['export']}", "mesh": f"127.0.0.1:{ports['c_port']}"}
    return paths, server, client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--conc", default="1,16,64")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; best kept")
    parser.add_argument("--tools", default=".tools")
    parser.add_argument("--builds", default="installed", help="installed[,interpreted]")
    parser.add_argument("--filters", default="", help="filter lists (a;b), one agent pair each")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=MAPPING",
        help="one more agent pair with these motan-agent keys (YAML flow mapping)",
    )
    args = parser.parse_args()
    variants: dict[str, dict[str, Any]] = {}
    for item in args.variant:
        name, sep, text = item.partition("=")
        keys = yaml.safe_load(text) if sep else None
        if not name or not isinstance(keys, dict):
            print(f"--variant {item!r}: expected NAME={{key: value, ...}}", file=sys.stderr)
            return 2
        variants[name] = keys
    tools = Path(args.tools).resolve()
    problem = require_go_tools(tools)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    concs = [int(c) for c in args.conc.split(",")]
    builds = args.builds.split(",")
    if not set(builds) <= {"installed", "interpreted"}:
        print(f"unknown build in {args.builds!r}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="motanmesh-bench-"))
    echo = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    agents: dict[str, tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]] = {}
    try:
        procs.append(subprocess.Popen([str(tools / "motanecho"), "-addr", f"127.0.0.1:{echo}"]))
        wait_port(echo)
        paths = {"direct": f"127.0.0.1:{echo}"}
        for build in builds:
            env = interpreted_env(work / "pure") if build == "interpreted" else None
            suffix = "" if build == "installed" else f"/{build}"
            started, server, client = start_agents(work / build, echo, env, procs)
            agents[build] = (server, client)
            paths.update({f"{name}{suffix}": addr for name, addr in started.items()})
        for i, filters in enumerate(f for f in args.filters.split(";") if f):
            started, server, client = start_agents(work / f"filters{i}", echo, None, procs, filters)
            agents[filters] = (server, client)
            paths.update({f"{name}/{filters}": addr for name, addr in started.items()})
        for variant, keys in variants.items():
            started, server, client = start_agents(
                work / f"variant-{variant}", echo, None, procs, keys=keys
            )
            agents[variant] = (server, client)
            paths.update({f"{name}/{variant}": addr for name, addr in started.items()})
        time.sleep(1.5)
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.seconds:g} s/point, "
            f"best of {args.rounds} interleaved rounds"
        )
        pids: dict[str, list[int]] = {"direct": []}
        for key, (server, client) in agents.items():
            suffix = "" if key == "installed" else f"/{key}"
            pids[f"server{suffix}"] = [server.pid]
            pids[f"mesh{suffix}"] = [server.pid, client.pid]
        best: dict[tuple[str, int], dict[str, Any]] = {}
        cpu: dict[tuple[str, int], float] = {}
        for _ in range(args.rounds):
            for conc in concs:
                for name, addr in paths.items():
                    r, us = load_with_cpu(tools, addr, conc, args.seconds, pids[name])
                    if (name, conc) not in best or r["rps"] > best[(name, conc)]["rps"]:
                        best[(name, conc)] = r
                    if us is not None and us < cpu.get((name, conc), float("inf")):
                        cpu[(name, conc)] = us
        width = max(len(name) for name in paths)
        print(
            f"{'path':{width}s} {'c':>3s} {'rps':>9s} {'ratio':>6s} {'p50 ms':>7s} "
            f"{'p99 ms':>7s} {'errors':>6s} {'cpu us':>7s} {'cpu ratio':>9s}"
        )
        for conc in concs:
            base = best[("direct", conc)]["rps"]
            for name in paths:
                r = best[(name, conc)]
                errs = r["errors"] + r["exceptions"]
                us = cpu.get((name, conc))
                plain = cpu.get((name.split("/")[0], conc))
                cpu_text = f"{us:7.1f} {plain / us:9.3f}" if us and plain else ""
                print(
                    f"{name:{width}s} {conc:3d} {r['rps']:9.0f} {r['rps'] / base:6.3f} "
                    f"{r['p50_ms']:7.3f} {r['p99_ms']:7.3f} {errs:6d} {cpu_text}",
                    flush=True,
                )
        for build, (server, client) in agents.items():
            print(
                f"resident memory ({build}): server agent {rss_mb(server.pid):.1f} MB, "
                f"client agent {rss_mb(client.pid):.1f} MB"
            )
    finally:
        stop(reversed(procs))
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
