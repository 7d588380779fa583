"""gRPC through the mesh: throughput and latency of the gRPC ingress and the grpc provider.

Paths measured in one run, so machine drift cancels in the ratios:

* ``grpc direct``: a grpcio client → the gRPC echo backend (grpcio's asyncio server);
* ``grpc mesh``: the same client → client agent ``grpcPort`` → server agent (provider
  ``grpc``) → the same backend;
* ``sdk mesh``: ``motanmesh.sdk.MotanClient`` (``grpc-pb``) → client agent → server agent →
  the same backend;
* with the Go tools (``--tools``): ``motan2 direct`` (motanload → motanecho) and ``motan2
  mesh`` (motanload → the same two agents → motanecho), the Motan2 figure of the same run.

The Python clients run in their own processes (``--procs``, default 1; uvloop), ``--conc``
calls in flight in all, a 16-byte protobuf message (field 1) each way. The gRPC paths'
ratios are to ``grpc direct``, the Motan2 ones to ``motan2 direct``. Rounds are interleaved
and the best of each point kept.

    python benchmarks/bench_grpc.py [--seconds 5] [--rounds 2] [--conc 16] [--procs 1]
        [--tools .tools]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness import GROUP, SERVICE, free_port, motanload, require_go_tools, rss_mb, stop, wait_port

GRPC_SERVICE = "bench.Echo"
GRPC_METHOD = "Say"
#: a protobuf message with one 16-byte string field (field 1)
MESSAGE = b"\x0a\x10" + b"0123456789abcdef"


# ---------------------------------------------------------------------------- child roles


async def _backend(port: int) -> None:
    import grpc  # noqa: PLC0415
    import grpc.aio  # noqa: PLC0415

    async def say(request: bytes, _context: Any) -> bytes:
        return request

    handler = grpc.unary_unary_rpc_method_handler(say)

    class Echo(grpc.GenericRpcHandler):  # type: ignore[misc]
        def service(self, details: Any) -> Any:
            return handler if details.method == f"/{GRPC_SERVICE}/{GRPC_METHOD}" else None

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((Echo(),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def _load(kind: str, addr: str, conc: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    if kind == "grpc":
        import grpc.aio  # noqa: PLC0415

        channel = grpc.aio.insecure_channel(addr)
        say = channel.unary_unary(f"/{GRPC_SERVICE}/{GRPC_METHOD}")

        async def call() -> bytes:
            return bytes(await say(MESSAGE, timeout=5))

        async def close() -> None:
            await channel.close()
    else:
        from motanmesh.sdk.client import MotanClient  # noqa: PLC0415

        client = MotanClient(addr, serialization="grpc-pb", group="bench-grpc", timeout=5)
        await client.connect()

        async def call() -> bytes:
            return bytes(await client.call(GRPC_SERVICE, GRPC_METHOD, MESSAGE))

        async def close() -> None:
            await client.close()

    await call()  # connected and warm
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def worker() -> None:
        nonlocal errors
        clock = time.perf_counter
        while loop.time() < end:
            start = clock()
            try:
                reply = await call()
            except Exception:
                errors += 1
                continue
            if reply != MESSAGE:
                errors += 1
                continue
            latencies.append(clock() - start)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    elapsed = time.perf_counter() - began
    await close()
    return {"elapsed": elapsed, "errors": errors, "latencies": latencies}


def _child(argv: list[str]) -> int:
    import uvloop  # noqa: PLC0415

    if argv[0] == "backend":
        uvloop.run(_backend(int(argv[1])))
        return 0
    kind, addr, conc, seconds, out = argv[1], argv[2], int(argv[3]), float(argv[4]), argv[5]
    Path(out).write_text(json.dumps(uvloop.run(_load(kind, addr, conc, seconds))))
    return 0


def python_load(kind: str, addr: str, conc: int, seconds: float, procs: int) -> dict[str, Any]:
    """``conc`` calls in flight spread over ``procs`` client processes started together."""
    shares = [conc // procs + (1 if i < conc % procs else 0) for i in range(procs)]
    outs = [Path(tempfile.mkstemp(prefix="bench-grpc-", suffix=".json")[1]) for _ in shares]
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "load", kind, addr, str(share), str(seconds), str(out)]
        )
        for share, out in zip(shares, outs, strict=True)
        if share
    ]
    latencies: list[float] = []
    errors = 0
    rps = 0.0
    for child, out in zip(children, outs, strict=False):
        if child.wait(timeout=seconds + 60):
            raise RuntimeError(f"load process failed with {child.returncode}")
        r = json.loads(out.read_text())
        out.unlink()
        latencies.extend(r["latencies"])
        errors += r["errors"]
        rps += len(r["latencies"]) / r["elapsed"]
    latencies.sort()
    n = len(latencies)
    return {
        "rps": rps,
        "p50_ms": latencies[n // 2] * 1000 if n else 0.0,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
        "errors": errors,
    }


# ---------------------------------------------------------------------------- the mesh


def configs(work: Path, backend: int, echo: int | None, ports: dict[str, int]) -> tuple[Path, Path]:
    work.mkdir(parents=True, exist_ok=True)
    registry = work / "registry.db"
    motan_service = (
        f"""  echo: {{registry: local, path: {SERVICE}, group: {GROUP},
    export: "motan2:{ports["export"]}", proxy: "motan2:{echo}"}}\n"""
        if echo
        else ""
    )
    motan_refer = (
        f"  echo: {{registry: local, path: {SERVICE}, group: {GROUP}, requestTimeout: 3000}}\n"
        if echo
        else ""
    )
    server = work / "server.yaml"
    server.write_text(f"""\
motan-agent: {{port: {ports["s_port"]}, mport: {ports["s_mport"]}, application: bench-server,
  runtime_dir: {work}/s-run, pidfile: {work}/s.pid, drainTime: 0}}
motan-registry: {{local: {{protocol: embedded, address: {registry}}}}}
motan-service:
  grpc-echo: {{registry: local, path: {GRPC_SERVICE}, group: bench-grpc,
    export: "motan2:{ports["export"]}", proxy: "grpc:{backend}", requestTimeout: 3000}}
{motan_service}""")
    client = work / "client.yaml"
    client.write_text(f"""\
motan-agent: {{port: {ports["c_port"]}, mport: {ports["c_mport"]}, grpcPort: {ports["c_grpc"]},
  application: bench-client, runtime_dir: {work}/c-run, pidfile: {work}/c.pid, drainTime: 0}}
motan-registry: {{local: {{protocol: embedded, address: {registry}}}}}
motan-refer:
  grpc-echo: {{registry: local, path: {GRPC_SERVICE}, group: bench-grpc, requestTimeout: 3000}}
{motan_refer}""")
    return server, client


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("backend", "load"):
        return _child(sys.argv[1:])
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--conc", default="16")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; best kept")
    parser.add_argument("--tools", default=".tools", help="motanload and motanecho (optional)")
    parser.add_argument("--procs", type=int, default=1, help="client processes per Python path")
    args = parser.parse_args()
    try:
        import grpc  # noqa: F401, PLC0415
    except ImportError:
        print("grpcio is missing: pip install -e '.[grpc]'", file=sys.stderr)
        return 2
    tools = Path(args.tools).resolve()
    go_tools = require_go_tools(tools) is None
    if not go_tools:
        print(f"{require_go_tools(tools)}; the Motan2 paths are left out", file=sys.stderr)
    concs = [int(c) for c in args.conc.split(",")]
    work = Path(tempfile.mkdtemp(prefix="motanmesh-bench-grpc-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        backend = free_port()
        procs.append(subprocess.Popen([sys.executable, __file__, "backend", str(backend)]))
        wait_port(backend)
        echo: int | None = None
        if go_tools:
            echo = free_port()
            procs.append(subprocess.Popen([str(tools / "motanecho"), "-addr", f"127.0.0.1:{echo}"]))
            wait_port(echo)
        ports = {k: free_port() for k in ("s_port", "s_mport", "export", "c_port", "c_mport")}
        ports["c_grpc"] = free_port()
        server_cfg, client_cfg = configs(work, backend, echo, ports)
        agent = [sys.executable, "-m", "motanmesh.cli", "agent", "-log_level", "warning", "-c"]
        server = subprocess.Popen([*agent, str(server_cfg)], stdout=subprocess.DEVNULL)
        procs.append(server)
        wait_port(ports["s_mport"])
        urllib.request.urlopen(f"http://127.0.0.1:{ports['s_mport']}/200", timeout=5).read()
        client = subprocess.Popen([*agent, str(client_cfg)], stdout=subprocess.DEVNULL)
        procs.append(client)
        wait_port(ports["c_grpc"])
        time.sleep(1.5)
        paths: dict[str, tuple[str, str]] = {
            "grpc direct": ("grpc", f"127.0.0.1:{backend}"),
            "grpc mesh": ("grpc", f"127.0.0.1:{ports['c_grpc']}"),
            "sdk mesh": ("sdk", f"127.0.0.1:{ports['c_port']}"),
        }
        if go_tools:
            paths["motan2 direct"] = ("motanload", f"127.0.0.1:{echo}")
            paths["motan2 mesh"] = ("motanload", f"127.0.0.1:{ports['c_port']}")
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.seconds:g} s/point, "
            f"best of {args.rounds} interleaved rounds, {args.procs} Python client process(es), "
            f"load average "
            f"{os.getloadavg()[0]:.1f}"
        )
        best: dict[tuple[str, int], dict[str, Any]] = {}
        for _ in range(args.rounds):
            for conc in concs:
                for name, (kind, addr) in paths.items():
                    if kind == "motanload":
                        r = motanload(tools, addr, conc, args.seconds)
                        r["errors"] = r["errors"] + r["exceptions"]
                    else:
                        r = python_load(kind, addr, conc, args.seconds, args.procs)
                    if (name, conc) not in best or r["rps"] > best[(name, conc)]["rps"]:
                        best[(name, conc)] = r
        width = max(len(name) for name in paths)
        print(
            f"{'path':{width}s} {'c':>3s} {'rps':>9s} {'ratio':>6s} {'p50 ms':>7s} "
            f"{'p99 ms':>7s} {'errors':>6s}"
        )
        for conc in concs:
            for name in paths:
                base_name = "motan2 direct" if name.startswith("motan2") else "grpc direct"
                base = best[(base_name, conc)]["rps"]
                r = best[(name, conc)]
                print(
                    f"{name:{width}s} {conc:3d} {r['rps']:9.0f} {r['rps'] / base:6.3f} "
                    f"{r['p50_ms']:7.3f} {r['p99_ms']:7.3f} {r['errors']:6d}",
                    flush=True,
                )
        print(
            f"resident memory: server agent {rss_mb(server.pid):.1f} MB, "
            f"client agent {rss_mb(client.pid):.1f} MB"
        )
    finally:
        stop(reversed(procs))
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
