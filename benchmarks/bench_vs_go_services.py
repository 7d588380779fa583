"""Many services through ZooKeeper: our agents against the Go reference agent (motan-go).

A throw-away ZooKeeper on 127.0.0.1 (``tests/servers``) and ``--providers`` motanecho
processes. Then, for each kind in turn (the order flips every round):

* **client agent, ``--services`` refers x ``--providers`` providers**: the provider nodes are
  written into ZooKeeper by this script (ephemeral, the URL text as data, as a server agent
  writes them); the client agent starts with one ``motan-refer`` per service. Figures: the
  time from starting the process to the first answer from the last service, its resident
  memory then, and its memory and throughput after ``--seconds`` of motanload on one service
  (c = 16). Then one service's providers change (a new provider node is written, the old ones
  deleted); a probe calls that service through the agent without pause and the figures are
  the time from the change to the first answer from the new provider and to the moment 20
  answers in a row come from it. The old nodes are written back afterwards.
* **server agent exporting ``--exports`` services** on one port (each a ``proxy`` to one
  motanecho): the time from starting it to all its ``server`` nodes being in ZooKeeper, and
  its resident memory then.

Both kinds get the same YAML (only ports differ). The refers set ``clientConnection: 1`` (one
connection per provider and service, our default): with the Go agent's default pool the Go
client agent needs more than 20,000 descriptors for 10,000 endpoints and fails to start here.

    python benchmarks/bench_vs_go_services.py --go-agent PATH [--tools .tools] [--services 1000]
        [--providers 10] [--exports 500] [--rounds 1] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import GROUP, free_port, require_go_tools, rss_mb, stop
from kazoo.client import KazooClient
from tests.servers.zookeeper import ZooKeeperServer, zookeeper_missing
from vs_go import (
    KINDS,
    Agent,
    launch,
    motanload_run,
    read_reply,
    refer_yaml,
    reply_string,
    require_go_agent,
    service_yaml,
    simple_call_bytes,
    start_echo,
)

from motanmesh.url import URL

PREFIX = "com.weibo.motan.bench.Svc"


def service(i: int) -> str:
    return f"{PREFIX}{i:04d}"


def server_dir(path: str) -> str:
    return f"/motan/{GROUP}/{path}/server"


def provider_data(path: str, port: int) -> bytes:
    url = URL("motan2", "127.0.0.1", port, path, GROUP, {"nodeType": "service",
              "serialization": "simple", "application": "bench-provider"})  # fmt: skip
    return url.to_ext_info().encode()


def write_providers(zk: KazooClient, paths: list[str], ports: list[int]) -> None:
    """One ephemeral ``server`` node per path and port, written in batches."""
    for i in range(0, len(paths), 50):
        tx = zk.transaction()
        for path in paths[i : i + 50]:
            for port in ports:
                tx.create(f"{server_dir(path)}/127.0.0.1:{port}", provider_data(path, port),
                          ephemeral=True)  # fmt: skip
        results = tx.commit()
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise RuntimeError(f"writing provider nodes failed: {failed[0]!r}")


def zk_registry(zk: ZooKeeperServer) -> str:
    host, port = zk.hosts.rsplit(":", 1)
    return f"{{protocol: zookeeper, host: {host}, port: {port}, registrySessionTimeout: 10}}"


def call_once(addr: str, path: str, rid: int, timeout: float = 2.0) -> str | None:
    """The reply string of one call on a new connection (None when it failed)."""
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.sendall(simple_call_bytes(path, rid, "x"))
            status, body = read_reply(s)
    except OSError:
        return None
    return None if status else reply_string(body)


def client_round(
    kind: str, args: argparse.Namespace, work: Path, zk: ZooKeeperServer, kc: KazooClient,
    echo_ports: list[int], procs: list[subprocess.Popen[bytes]],
) -> dict[str, Any]:  # fmt: skip
    ports = [free_port(), free_port()]
    agent = Agent(kind, "client", work / f"{kind}-client-{time.monotonic_ns()}", ports[0], ports[1])
    text = (
        f"motan-agent: {{port: {agent.port}, mport: {agent.mport}, log_dir: ./logs, "
        f"application: bench-client}}\nmotan-registry:\n  zk: {zk_registry(zk)}\nmotan-refer:\n"
    ) + "".join(
        refer_yaml(f"r{i}", service(i), "zk", ", clientConnection: 1") for i in range(args.services)
    )
    last = service(args.services - 1)
    r: dict[str, Any] = {}
    t0 = time.monotonic()
    launch(agent, args.go_agent, text)
    assert agent.proc is not None
    try:
        r["listening_s"] = time.monotonic() - t0
        rid = 0
        deadline = t0 + 300
        while time.monotonic() < deadline:
            rid += 1
            if call_once(f"127.0.0.1:{agent.port}", last, rid):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{kind} client agent never answered for {last}")
        r["start_s"] = time.monotonic() - t0
        time.sleep(2.0)
        r["rss_idle"] = rss_mb(agent.pid)
        addr = f"127.0.0.1:{agent.port}"
        load = motanload_run(args.tools_path, addr, 16, args.seconds, 100, service(0))
        r["rps"] = load["rps"]
        r["p99_ms"] = load["p99_ms"]
        r["rss_load"] = rss_mb(agent.pid)
        r.update(provider_change(args, addr, kc, echo_ports, procs))
    finally:
        stop([agent.proc])
    return r


def provider_change(
    args: argparse.Namespace, addr: str, kc: KazooClient, echo_ports: list[int],
    procs: list[subprocess.Popen[bytes]],
) -> dict[str, float]:  # fmt: skip
    """Move one service to a new provider; how long until traffic follows."""
    path = service(args.services // 2)
    new_port = start_echo(args.tools_path, "moved", procs)
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    try:
        tx = kc.transaction()
        tx.create(f"{server_dir(path)}/127.0.0.1:{new_port}", provider_data(path, new_port),
                  ephemeral=True)  # fmt: skip
        for p in echo_ports:
            tx.delete(f"{server_dir(path)}/127.0.0.1:{p}")
        t0 = time.monotonic()
        tx.commit()
        first = all_moved = 0.0
        streak = 0
        rid = 0
        while time.monotonic() - t0 < 60:
            rid += 1
            sock.sendall(simple_call_bytes(path, rid, "x"))
            status, body = read_reply(sock)
            now = time.monotonic() - t0
            if not status and reply_string(body) == "moved":
                first = first or now
                streak += 1
                if streak >= 20:
                    all_moved = now
                    break
            else:
                streak = 0
        return {"change_first_ms": first * 1000, "change_all_ms": all_moved * 1000}
    finally:
        sock.close()
        tx = kc.transaction()
        tx.delete(f"{server_dir(path)}/127.0.0.1:{new_port}")
        for p in echo_ports:
            tx.create(f"{server_dir(path)}/127.0.0.1:{p}", provider_data(path, p), ephemeral=True)
        tx.commit()
        proc = procs.pop()
        proc.terminate()
        proc.wait(10)


def server_round(
    kind: str, args: argparse.Namespace, work: Path, zk: ZooKeeperServer, kc: KazooClient,
    echo: int,
) -> dict[str, Any]:  # fmt: skip
    ports = [free_port(), free_port(), free_port()]
    agent = Agent(kind, "server", work / f"{kind}-server-{time.monotonic_ns()}", ports[0], ports[1])
    export = ports[2]
    paths = [f"{PREFIX}X{i:04d}" for i in range(args.exports)]
    text = (
        f"motan-agent: {{port: {agent.port}, mport: {agent.mport}, eport: {export}, "
        f"log_dir: ./logs, application: bench-server}}\nmotan-registry:\n"
        f"  zk: {zk_registry(zk)}\nmotan-service:\n"
    ) + "".join(service_yaml(f"s{i}", p, export, echo, "zk") for i, p in enumerate(paths))
    node = f"127.0.0.1:{export}"
    r: dict[str, Any] = {}
    t0 = time.monotonic()
    launch(agent, args.go_agent, text, wait_for=export)
    assert agent.proc is not None
    try:
        r["listening_s"] = time.monotonic() - t0
        pending = list(paths)
        while pending and time.monotonic() - t0 < 300:
            pending = [p for p in pending if not kc.exists(f"{server_dir(p)}/{node}")]
            if pending:
                time.sleep(0.1)
        if pending:
            raise RuntimeError(f"{kind} server agent did not register {len(pending)} services")
        r["registered_s"] = time.monotonic() - t0
        time.sleep(2.0)
        r["rss_idle"] = rss_mb(agent.pid)
        r["answers"] = call_once(f"127.0.0.1:{export}", paths[-1], 1) is not None
    finally:
        stop([agent.proc])
    return r


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--go-agent", default=os.environ.get("MOTAN_GO_AGENT", ""))
    parser.add_argument("--tools", default=".tools")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--providers", type=int, default=10)
    parser.add_argument("--exports", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    args.tools_path = Path(args.tools).resolve()
    problem = require_go_agent(args.go_agent) or require_go_tools(args.tools_path)
    if problem is None:
        missing = zookeeper_missing()
        problem = f"ZooKeeper cannot run here: {missing}" if missing else None
    if problem:
        print(problem, file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="motanmesh-vs-go-services-"))
    procs: list[subprocess.Popen[bytes]] = []
    zk = ZooKeeperServer()
    kc: KazooClient | None = None
    try:
        zk.start()
        kc = KazooClient(hosts=zk.hosts, timeout=30)
        kc.start(timeout=30)
        echo_ports = [start_echo(args.tools_path, f"p{i}", procs) for i in range(args.providers)]
        paths = [service(i) for i in range(args.services)]
        for path in paths:
            kc.ensure_path(server_dir(path))
        for i in range(args.exports):
            kc.ensure_path(server_dir(f"{PREFIX}X{i:04d}"))
        t = time.monotonic()
        write_providers(kc, paths, echo_ports)
        print(
            f"{args.services} services x {args.providers} providers written to ZooKeeper in "
            f"{time.monotonic() - t:.1f} s; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        clients: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
        servers: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
        for rnd in range(args.rounds):
            order = KINDS if rnd % 2 == 0 else KINDS[::-1]
            for kind in order:
                clients[kind].append(client_round(kind, args, work, zk, kc, echo_ports, procs))
                print(f"client {kind}: {clients[kind][-1]}", flush=True)
            for kind in order:
                servers[kind].append(server_round(kind, args, work, zk, kc, echo_ports[0]))
                print(f"server {kind}: {servers[kind][-1]}", flush=True)
        print(
            f"\n## client agent, {args.services} services x {args.providers} providers "
            "(ZooKeeper); medians over rounds"
        )
        print(
            "| agent | listening s | first answer from the last service s | RSS idle MB | "
            "RSS after load MB | rps (c=16, one service) | p99 ms | provider change: "
            "first answer ms | all answers ms |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for kind in KINDS:
            m = median_of(clients[kind])
            print(
                f"| {kind} | {m['listening_s']:.2f} | {m['start_s']:.2f} | {m['rss_idle']:.1f} "
                f"| {m['rss_load']:.1f} | {m['rps']:,.0f} | {m['p99_ms']:.2f} | "
                f"{m['change_first_ms']:.0f} | {m['change_all_ms']:.0f} |"
            )
        print(f"\n## server agent exporting {args.exports} services (ZooKeeper)")
        print("| agent | listening s | all nodes registered s | RSS idle MB |")
        print("|---|---:|---:|---:|")
        for kind in KINDS:
            m = median_of(servers[kind])
            print(
                f"| {kind} | {m['listening_s']:.2f} | {m['registered_s']:.2f} | "
                f"{m['rss_idle']:.1f} |"
            )
    finally:
        if kc is not None:
            kc.stop()
            kc.close()
        stop(reversed(procs))
        zk.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def median_of(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k, v in rows[0].items() if isinstance(v, int | float)]
    return {k: sorted(float(r[k]) for r in rows)[len(rows) // 2] for k in keys}


if __name__ == "__main__":
    sys.exit(main())
