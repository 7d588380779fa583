"""A whole small mesh on one host, on the embedded registry, driven from start to finish.

``python -m motanmesh.demo.mesh`` (or ``scripts/demo``) starts, as separate processes:

* two instances of the demo service (``MotanDemoService``), each behind its own server agent,
  registered in the embedded registry (a SQLite file in the run directory);
* one client agent, through which the demo sends calls with the SDK.

It then shows what happens: calls are balanced over both instances, errors come back with
their codes, ``/503`` on one server agent moves all traffic to the other, and everything is
shut down cleanly. Ports are taken from a free range on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from motanmesh.demo.ports import reserve_port
from motanmesh.sdk.client import MotanClient, decode_response
from motanmesh.sdk.errors import MotanRemoteError

SERVICE = "com.weibo.motan.demo.service.MotanDemoService"
GROUP = "motan-demo-rpc"


def free_port() -> int:
    return reserve_port()


TRUST_DOMAIN = "motanmesh.demo"


def tls_yaml(pki: Path | None, app: str, mode: str = "") -> str:
    """The ``tls.*`` keys of ``motan-agent`` for ``app`` (nothing without ``pki``)."""
    if pki is None:
        return ""
    lines = [
        f"  tls.cert: {pki / (app + '.pem')}",
        f"  tls.key: {pki / (app + '-key.pem')}",
        f"  tls.ca: {pki / 'ca.pem'}",
        f"  tls.trustDomain: {TRUST_DOMAIN}",
    ]
    if mode:
        lines.insert(0, f"  tls.mode: {mode}")
    return "\n".join(lines) + "\n"


def server_agent_yaml(
    name: str, ports: dict[str, int], registry: Path, pki: Path | None = None
) -> str:
    return f"""\
motan-agent:
  port: {ports["port"]}
  mport: {ports["mport"]}
  eport: {ports["export"]}
  application: demo-server-{name}
  registry: local
  runtime_dir: ./{name}-runtime
  pidfile: ./{name}.pid
  drainTime: 1
{tls_yaml(pki, f"demo-server-{name}", "strict")}motan-registry:
  local:
    protocol: embedded
    address: {registry}
motan-service:
  demo:
    registry: local
    path: {SERVICE}
    group: {GROUP}
    export: "motan2:{ports["export"]}"
    proxy: "motan2:{ports["service"]}"
"""


def client_agent_yaml(ports: dict[str, int], registry: Path, pki: Path | None = None) -> str:
    return f"""\
motan-agent:
  port: {ports["port"]}
  mport: {ports["mport"]}
  application: demo-client
  registry: local
  runtime_dir: ./client-runtime
  pidfile: ./client.pid
  drainTime: 1
{tls_yaml(pki, "demo-client")}motan-registry:
  local:
    protocol: embedded
    address: {registry}
motan-refer:
  demo:
    registry: local
    path: {SERVICE}
    group: {GROUP}
    loadbalance: roundrobin
    haStrategy: failover
    retries: 1
    requestTimeout: 1000
"""


class Mesh:
    """The processes of the demo and their ports."""

    def __init__(self, workdir: Path, *, tls: bool = False) -> None:
        self.workdir = workdir
        #: the certificates of every agent (``motanmesh ca``) when the demo runs with mTLS
        self.pki = workdir / "pki" if tls else None
        self.registry = workdir / "registry.db"
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.instances: dict[str, dict[str, int]] = {
            name: {k: free_port() for k in ("service", "port", "mport", "export")}
            for name in ("a", "b")
        }
        self.client = {k: free_port() for k in ("port", "mport")}

    def spawn(self, name: str, *args: str) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        cmd = [sys.executable, "-m", "motanmesh.cli", *args]
        proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((name, proc))

    def make_certificates(self) -> None:
        """``motanmesh ca init`` and one ``motanmesh ca issue`` per agent."""
        assert self.pki is not None
        pki = str(self.pki)
        cli = [sys.executable, "-m", "motanmesh.cli", "ca"]
        steps = [["init", "--dir", pki, "--trust-domain", TRUST_DOMAIN]]
        for app in ("demo-server-a", "demo-server-b", "demo-client"):
            steps.append(["issue", "--dir", pki, "--app", app])
        for step in steps:
            subprocess.run([*cli, *step], capture_output=True, check=True)
            say("  motanmesh ca " + " ".join(step))

    def start(self) -> None:
        if self.pki is not None:
            self.make_certificates()
        for name, ports in self.instances.items():
            self.spawn(f"service-{name}", "demo-service", "--port", str(ports["service"]))
            cfg = self.workdir / f"server-agent-{name}.yaml"
            cfg.write_text(server_agent_yaml(name, ports, self.registry, self.pki))
            self.spawn(f"server-agent-{name}", "agent", "-c", str(cfg))
        cfg = self.workdir / "client-agent.yaml"
        cfg.write_text(client_agent_yaml(self.client, self.registry, self.pki))
        self.spawn("client-agent", "agent", "-c", str(cfg))
        for name, ports in self.instances.items():
            wait_port(ports["service"], f"demo service {name}")
            wait_port(ports["mport"], f"server agent {name}")
        wait_port(self.client["port"], "client agent")
        wait_port(self.client["mport"], "client agent management")

    def management(self, mport: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{mport}{path}", timeout=5) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read().decode()

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _name, proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                log = (self.workdir / f"{name}.log").read_text(errors="replace")
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log}")


def wait_port(port: int, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not open 127.0.0.1:{port} within {timeout:.0f} s")


def say(text: str = "") -> None:
    print(text, flush=True)


async def drive(mesh: Mesh) -> dict[str, Any]:
    """Send the demo's calls and return what was observed."""
    results: dict[str, Any] = {}
    async with MotanClient(f"127.0.0.1:{mesh.client['port']}", application="demo-app") as client:
        say("hello through the mesh:")
        say("  hello('mesh') -> " + repr(await client.call(SERVICE, "hello", "mesh", group=GROUP)))
        say(
            "  echo(1, 'two', [3]) -> "
            + repr(await client.call(SERVICE, "echo", 1, "two", [3], group=GROUP))
        )
        try:
            await client.call(SERVICE, "fail", group=GROUP)
        except MotanRemoteError as e:
            say(f"  fail() -> remote error errcode={e.errcode} errtype={e.errtype}: {e.errmsg}")
        try:
            await client.call("com.example.NoSuchService", "hello", "x", group=GROUP)
        except MotanRemoteError as e:
            say(f"  NoSuchService.hello -> errcode={e.errcode}: {e.errmsg}")

        calls = 200
        ok, served = await burst(client, calls)
        results["balanced_ok"] = ok
        results["balanced"] = served
        say(f"\n{calls} calls while both instances are up: {ok} succeeded")
        say("  served by: " + describe(served, mesh))

        a = mesh.instances["a"]
        code, body = mesh.management(a["mport"], "/503")
        say(f"\n/503 on server agent a -> {code} {body.strip()}")
        await asyncio.sleep(1.5)  # the registry change reaches the client agent within 1 s
        ok, served = await burst(client, calls)
        results["after_503_ok"] = ok
        results["after_503"] = served
        say(f"{calls} calls after /503 on a: {ok} succeeded")
        say("  served by: " + describe(served, mesh))
        code, body = mesh.management(a["mport"], "/200")
        say(f"/200 on server agent a -> {code} {body.strip()}")
    _code, body = mesh.management(mesh.client["mport"], "/getReferService")
    say(f"\nclient agent refers: {body.strip()}")
    return results


def show_tls(mesh: Mesh) -> bool:
    """Print what each server agent's TLS port saw; True when every connection was TLS."""
    say("\nmutual TLS on the export ports:")
    good = True
    for name, ports in mesh.instances.items():
        _code, body = mesh.management(ports["mport"], "/runtime/info?keys=servers")
        servers = json.loads(body)["servers"]
        tls = servers["agentPortServer"][str(ports["export"])]["tls"]
        refused = {k: v for k, v in tls["refused"].items() if v}
        say(
            f"  server agent {name} ({servers['tls'].get('identity', '?')}): "
            f"{tls['connections']['tls']} TLS connections, {tls['connections']['plain']} "
            f"plaintext, refused {refused or 'none'}"
        )
        good = good and tls["connections"]["tls"] > 0 and tls["connections"]["plain"] == 0
    return good


def describe(served: Counter[str], mesh: Mesh) -> str:
    names = {f"127.0.0.1:{p['export']}": f"server agent {n}" for n, p in mesh.instances.items()}
    return ", ".join(f"{names.get(addr, addr)} {count}" for addr, count in sorted(served.items()))


async def burst(client: MotanClient, calls: int) -> tuple[int, Counter[str]]:
    """Send ``calls`` hello calls at once; return how many succeeded and, per server agent
    (the ``x-forwarded-for`` the client agent puts on each response), how many it served."""

    async def one(i: int) -> tuple[bool, str]:
        frame = client.request(SERVICE, "hello", [f"n{i}"], group=GROUP)
        response = await client.call_frame(frame)
        try:
            ok = decode_response(response) == f"hello n{i}"
        except MotanRemoteError:
            ok = False
        return ok, response.metadata.get("x-forwarded-for", "?")

    replies = await asyncio.gather(*(one(i) for i in range(calls)), return_exceptions=True)
    served: Counter[str] = Counter()
    ok = 0
    for r in replies:
        if isinstance(r, tuple):
            ok += r[0]
            served[r[1]] += 1
    return ok, served


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="motanmesh demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    parser.add_argument(
        "--tls",
        action="store_true",
        help="mutual TLS between the agents (certificates from motanmesh ca; export ports "
        "in strict mode)",
    )
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="motanmesh-demo-"))
    mesh = Mesh(workdir, tls=args.tls)
    say(f"motanmesh demo: run directory {workdir}")
    say("starting: 2 demo services, 2 server agents, 1 client agent (embedded registry)")
    if args.tls:
        say("with mutual TLS between the agents (export ports strict):")
    try:
        mesh.start()
        for name, ports in mesh.instances.items():
            code, _ = mesh.management(ports["mport"], "/200")
            say(
                f"server agent {name}: export 127.0.0.1:{ports['export']} -> demo service "
                f"127.0.0.1:{ports['service']}; /200 -> {code}"
            )
        say(f"client agent: 127.0.0.1:{mesh.client['port']}\n")
        time.sleep(1.5)
        mesh.check_alive()
        results = asyncio.run(drive(mesh))
        if mesh.pki is not None:
            results["tls"] = show_tls(mesh)
        mesh.check_alive()
    finally:
        say("\nstopping (SIGTERM: drain, then exit)")
        mesh.stop()
        if not args.keep:
            for p in sorted(workdir.rglob("*"), reverse=True):
                with contextlib.suppress(OSError):
                    p.unlink() if not p.is_dir() else p.rmdir()
            with contextlib.suppress(OSError):
                workdir.rmdir()
    codes = [proc.returncode for _n, proc in mesh.procs]
    say(f"exit codes: {codes}")
    a_export = f"127.0.0.1:{mesh.instances['a']['export']}"
    good = (
        results["balanced_ok"] == 200
        and results["after_503_ok"] == 200
        and len(results["balanced"]) == 2
        and a_export not in results["after_503"]
        and results.get("tls", True)
    )
    say("demo " + ("succeeded" if good else "FAILED"))
    return 0 if good else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
