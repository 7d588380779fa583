"""The cost of mutual TLS between agents, measured from outside with motanload and motanecho.

One run starts two pairs of agents in front of one motanecho (embedded registry):

* ``mesh``: motanload → client agent → server agent → motanecho, plaintext;
* ``mesh/mtls``: the same with ``tls.*`` on both agents (certificates from
  :mod:`motanmesh.security.ca`); the server agent's export port is permissive, so the client
  agent (which has TLS) connects with mutual TLS, and ``server/mtls`` (motanload, which has no
  TLS, straight to that port) measures the permissive accept path for plaintext;
* ``server``: motanload → the plaintext server agent.

For each path and concurrency it prints requests/s, the ratio to ``mesh`` (``server`` and
``server/mtls`` to ``server``), p50 and p99, and the CPU time the path's agents used per call
(their ``/proc`` counters around the load; the least of the rounds) with its ratio: on a
shared machine the CPU per call is steadier than the throughput.

Then the cost of one handshake on the TLS port: sequential full handshakes (new connection,
no session resumption, client certificate verified) from this process for ``--seconds``,
against plain TCP connects to the same port (each answered by one heartbeat, so that the
permissive port sees plaintext), with the server agent's CPU per connection.

    python benchmarks/bench_tls.py [--seconds 5] [--rounds 2] [--conc 1,16] [--tools .tools]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_agent import start_agents
from harness import free_port, motanload, require_go_tools, rss_mb, stop, wait_port

from motanmesh.security.ca import init_ca, issue
from motanmesh.wire.frame import heartbeat_request


def pki(work: Path) -> dict[str, str]:
    d = work / "pki"
    init_ca(d, "bench.motanmesh")
    issued = issue(d, "bench")
    return {
        "tls.mode": "permissive",
        "tls.cert": str(issued.cert),
        "tls.key": str(issued.key),
        "tls.ca": str(d / "ca.pem"),
        "tls.trustDomain": "bench.motanmesh",
    }


def handshakes(address: str, ctx: ssl.SSLContext | None, seconds: float) -> tuple[int, float]:
    """(count, seconds) of sequential connections: TLS handshakes, or plain connects each
    answered by one heartbeat."""
    host, _, port = address.rpartition(":")
    n = 0
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            if ctx is None:
                raw.sendall(heartbeat_request(1))
                raw.recv(4096)
            else:
                with ctx.wrap_socket(raw, server_hostname=None) as tls:
                    tls.do_handshake()
        n += 1
    return n, time.perf_counter() - start


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_context(keys: dict[str, str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(keys["tls.ca"])
    ctx.load_cert_chain(keys["tls.cert"], keys["tls.key"])
    return ctx


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--conc", default="1,16")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; best kept")
    parser.add_argument("--tools", default=".tools")
    args = parser.parse_args()
    tools = Path(args.tools).resolve()
    problem = require_go_tools(tools)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    concs = [int(c) for c in args.conc.split(",")]
    work = Path(tempfile.mkdtemp(prefix="motanmesh-bench-tls-"))
    echo = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        keys = pki(work)
        procs.append(subprocess.Popen([str(tools / "motanecho"), "-addr", f"127.0.0.1:{echo}"]))
        wait_port(echo)
        plain, p_server, p_client = start_agents(work / "plain", echo, None, procs)
        mtls, t_server, t_client = start_agents(work / "mtls", echo, None, procs, keys=keys)
        paths = {
            "server": plain["server"],
            "server/mtls": mtls["server"],
            "mesh": plain["mesh"],
            "mesh/mtls": mtls["mesh"],
        }
        time.sleep(1.5)
        print(
            f"python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}, {os.cpu_count()} cpus, "
            f"{args.seconds:g} s/point, best of {args.rounds} interleaved rounds"
        )
        # the agents each path goes through: their CPU per request is the cost that does not
        # depend on what else the machine runs
        pids = {
            "server": [p_server.pid],
            "server/mtls": [t_server.pid],
            "mesh": [p_server.pid, p_client.pid],
            "mesh/mtls": [t_server.pid, t_client.pid],
        }
        best: dict[tuple[str, int], dict[str, Any]] = {}
        cpu: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for conc in concs:
                for name, addr in paths.items():
                    before = sum(cpu_seconds(p) for p in pids[name])
                    r = motanload(tools, addr, conc, args.seconds)
                    used = sum(cpu_seconds(p) for p in pids[name]) - before
                    calls = r["rps"] * args.seconds
                    if calls:
                        cpu.setdefault((name, conc), []).append(used / calls * 1e6)
                    if (name, conc) not in best or r["rps"] > best[(name, conc)]["rps"]:
                        best[(name, conc)] = r
        print(
            f"{'path':12s} {'c':>3s} {'rps':>9s} {'ratio':>6s} {'p50 ms':>7s} {'p99 ms':>7s} "
            f"{'agent CPU us/call':>17s} {'ratio':>6s}"
        )
        for conc in concs:
            for name in paths:
                r = best[(name, conc)]
                base = best[(name.split("/")[0], conc)]["rps"]
                errs = r["errors"] + r["exceptions"]
                us = min(cpu.get((name, conc), [0.0]))
                base_us = min(cpu.get((name.split("/")[0], conc), [0.0])) or 1.0
                print(
                    f"{name:12s} {conc:3d} {r['rps']:9.0f} {r['rps'] / base:6.3f} "
                    f"{r['p50_ms']:7.3f} {r['p99_ms']:7.3f} {us:17.1f} {us / base_us:6.3f}"
                    + (f"  errors {errs}" if errs else ""),
                    flush=True,
                )
        ctx = client_context(keys)
        cpu0 = cpu_seconds(t_server.pid)
        n_plain, t_plain = handshakes(mtls["server"], None, args.seconds)
        cpu1 = cpu_seconds(t_server.pid)
        n_tls, t_tls = handshakes(mtls["server"], ctx, args.seconds)
        cpu2 = cpu_seconds(t_server.pid)
        plain_ms, tls_ms = t_plain / n_plain * 1000, t_tls / n_tls * 1000
        print(
            f"plain connect + heartbeat: {n_plain / t_plain:7.0f}/s ({plain_ms:.3f} ms; "
            f"server agent CPU {(cpu1 - cpu0) / n_plain * 1000:.3f} ms each)"
        )
        print(
            f"mTLS handshake (full):     {n_tls / t_tls:7.0f}/s ({tls_ms:.3f} ms, "
            f"{tls_ms / plain_ms:.1f}x a plain connect; "
            f"server agent CPU {(cpu2 - cpu1) / n_tls * 1000:.3f} ms each)"
        )
        for name, (server, client) in {
            "plain": (p_server, p_client),
            "mtls": (t_server, t_client),
        }.items():
            print(
                f"resident memory ({name}): server agent {rss_mb(server.pid):.1f} MB, "
                f"client agent {rss_mb(client.pid):.1f} MB"
            )
    finally:
        stop(reversed(procs))
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
