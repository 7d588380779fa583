"""HTTP ingress throughput and latency: HTTP into the mesh against Motan2 into the mesh, and
against the HTTP service called directly, with the same load loop (aiohttp, keep-alive, one
connection per worker) in its own process.

Paths measured in one run, each against one small aiohttp service (``GET /hello`` answering 16
bytes) in its own process:

* ``direct``: HTTP client → the service;
* ``http-over-motan``: HTTP client → client agent's HTTP proxy (``hport``) → server agent
  (``http`` provider, transparent mode) → the service;
* ``motan2``: Motan2 client (motanmesh SDK, one multiplexed connection) → client agent →
  server agent (``http`` provider, RPC mode) → the service;
* ``plain-proxy``: HTTP client → client agent's HTTP proxy → the service (no Motan).

Each path runs ``--rounds`` times in turn; the best round is kept. Only the loopback is used,
and every load loop stops after ``--seconds``.

    python benchmarks/bench_http_ingress.py [--seconds 5] [--conc 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness import free_port, rss_mb, stop, wait_port

SERVICE = "com.example.bench.Web"
GROUP = "bench-http"
DOMAIN = "bench.local"
BODY = b"0123456789abcdef"


# ---------------------------------------------------------------------------- child roles


async def serve(port: int) -> None:
    from aiohttp import web  # noqa: PLC0415

    async def hello(request: web.Request) -> web.Response:
        return web.Response(body=BODY)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def _figures(latencies: list[float], seconds: float, errors: int) -> dict[str, Any]:
    latencies.sort()
    n = len(latencies)

    def pct(p: float) -> float:
        return round(latencies[min(n - 1, int(n * p))] * 1000, 3) if n else 0.0

    return {"rps": round(n / seconds), "p50_ms": pct(0.5), "p99_ms": pct(0.99), "errors": errors}


async def http_load(url: str, host: str, conc: int, seconds: float, proxy: str) -> dict[str, Any]:
    import aiohttp  # noqa: PLC0415

    latencies: list[float] = []
    errors = 0
    headers = {"Host": host} if host else {}
    connector = aiohttp.TCPConnector(limit=conc)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while (start := time.perf_counter()) < deadline:
                try:
                    async with session.get(url, headers=headers, proxy=proxy or None) as r:
                        body = await r.read()
                    if r.status != 200 or body != BODY:
                        errors += 1
                        continue
                except aiohttp.ClientError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - start)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        return _figures(latencies, time.perf_counter() - began, errors)


async def motan_load(address: str, conc: int, seconds: float) -> dict[str, Any]:
    from motanmesh.sdk.client import MotanClient  # noqa: PLC0415

    latencies: list[float] = []
    errors = 0
    async with MotanClient(address, application="bench", group=GROUP, timeout=5) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while (start := time.perf_counter()) < deadline:
                try:
                    value = await client.call(SERVICE, "/hello")
                except Exception:
                    errors += 1
                    continue
                if value != BODY.decode():
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - start)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        return _figures(latencies, time.perf_counter() - began, errors)


def _fast_loop() -> None:
    try:
        import uvloop  # noqa: PLC0415

        uvloop.install()
    except ImportError:
        pass


# ---------------------------------------------------------------------------- the run


def configs(work: Path, backend: int, ports: dict[str, int]) -> tuple[Path, Path]:
    registry = work / "registry.db"
    locations = f"{DOMAIN}: [{{match: /, upstream: {SERVICE}}}]"
    server = work / "server.yaml"
    server.write_text(f"""\
motan-agent: {{port: {ports["s_port"]}, mport: {ports["s_mport"]}, application: bench-server,
  runtime_dir: {work}/s-run, pidfile: {work}/s.pid, drainTime: 0}}
motan-registry: {{local: {{protocol: embedded, address: {registry}}}}}
motan-service:
  web: {{registry: local, path: {SERVICE}, group: {GROUP}, export: "motan2:{ports["export"]}",
    provider: http, proxyAddress: "127.0.0.1:{backend}", domain: {DOMAIN}}}
http-locations: {{{locations}}}
""")
    client = work / "client.yaml"
    client.write_text(f"""\
motan-agent: {{port: {ports["c_port"]}, mport: {ports["c_mport"]}, application: bench-client,
  runtime_dir: {work}/c-run, pidfile: {work}/c.pid, drainTime: 0,
  httpProxyEnable: true, hport: {ports["hport"]}}}
motan-registry: {{local: {{protocol: embedded, address: {registry}}}}}
motan-refer:
  web: {{registry: local, path: {SERVICE}, group: {GROUP}, requestTimeout: 3000}}
http-client:
  {DOMAIN}: {{registry: local, domain: {DOMAIN}, group: {GROUP}, preload: {SERVICE},
    requestTimeout: 3000}}
http-locations: {{{locations}}}
""")
    return server, client


def child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--conc", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=3, metavar=("URL", "HOST", "PROXY"), help=argparse.SUPPRESS)
    parser.add_argument("--motan", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _fast_loop()
        asyncio.run(serve(args.serve))
        return 0
    if args.load:
        _fast_loop()
        url, host, proxy = (a if a != "-" else "" for a in args.load)
        print(json.dumps(asyncio.run(http_load(url, host, args.conc, args.seconds, proxy))))
        return 0
    if args.motan:
        _fast_loop()
        print(json.dumps(asyncio.run(motan_load(args.motan, args.conc, args.seconds))))
        return 0

    procs: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
            work = Path(tmp)
            backend = free_port()
            procs.append(subprocess.Popen([sys.executable, __file__, "--serve", str(backend)]))
            wait_port(backend)
            ports = {k: free_port() for k in ("s_port", "s_mport", "export", "c_port", "c_mport")}
            ports["hport"] = free_port()
            server_cfg, client_cfg = configs(work, backend, ports)
            agent = [sys.executable, "-m", "motanmesh.cli", "agent", "-log_level", "warning"]
            out = subprocess.DEVNULL
            server = subprocess.Popen([*agent, "-c", str(server_cfg)], stdout=out)
            procs.append(server)
            wait_port(ports["s_mport"])
            urllib.request.urlopen(f"http://127.0.0.1:{ports['s_mport']}/200", timeout=5).read()
            client = subprocess.Popen([*agent, "-c", str(client_cfg)], stdout=out)
            procs.append(client)
            wait_port(ports["hport"])
            time.sleep(1.0)  # the refers find the server agent
            hp = f"127.0.0.1:{ports['hport']}"
            cases: dict[str, tuple[str, ...]] = {
                "direct": ("--load", f"http://127.0.0.1:{backend}/hello", "-", "-"),
                "http-over-motan": ("--load", f"http://{hp}/hello", DOMAIN, "-"),
                "motan2": ("--motan", f"127.0.0.1:{ports['c_port']}"),
                "plain-proxy": (
                    "--load",
                    f"http://127.0.0.1:{backend}/hello",
                    "-",
                    f"http://{hp}",
                ),
            }
            common = ("--conc", str(args.conc), "--seconds", str(args.seconds))
            best: dict[str, dict[str, Any]] = {}
            for _ in range(args.rounds):
                for name, case in cases.items():
                    got = child(*case, *common)
                    if name not in best or got["rps"] > best[name]["rps"]:
                        best[name] = got
            base = best["direct"]["rps"] or 1
            print(f"c={args.conc}, {args.seconds:g} s per round, best of {args.rounds} rounds")
            print(f"{'path':<16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} ratio")
            for name, got in best.items():
                print(
                    f"{name:<16} {got['rps']:>8} {got['p50_ms']:>8} {got['p99_ms']:>8} "
                    f"{got['errors']:>7} {got['rps'] / base:.2f}"
                )
            print(f"RSS after load: client agent {rss_mb(client.pid):.0f} MB, "
                  f"server agent {rss_mb(server.pid):.0f} MB")  # fmt: skip
    finally:
        stop(procs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
