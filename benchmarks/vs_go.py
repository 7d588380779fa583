"""What the side-by-side benchmarks against the Go reference agent share: one agent pair
(client agent → server agent → motanecho) of either kind from the same YAML, resource
sampling of agent processes while motanload runs, and a few raw Motan2 calls."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import GROUP, free_port, rss_mb, stop, wait_port

from motanmesh.wire.frame import request_frame
from motanmesh.wire.simple import SimpleSerialization

KINDS = ("go", "py")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def require_go_agent(path: str) -> str | None:
    """``None`` when ``path`` is an executable Go agent, else the one line to print."""
    if path and os.access(path, os.X_OK):
        return None
    return (
        f"missing the Go reference agent (motan-go's motan-agent) at {path or '(not given)'}: "
        "pass --go-agent PATH (benchmarks/README.md, 'What the benchmarks need')"
    )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def service_yaml(name: str, path: str, export: int, proxy: int, registry: str) -> str:
    return (
        f"  {name}: {{registry: {registry}, path: {path}, group: {GROUP}, protocol: motan2, "
        f'serialization: simple, export: "motan2:{export}", proxy: "motan2:{proxy}"}}\n'
    )


def refer_yaml(name: str, path: str, registry: str, extra: str = "") -> str:
    return (
        f"  {name}: {{registry: {registry}, path: {path}, group: {GROUP}, protocol: motan2, "
        f"serialization: simple, requestTimeout: 5000{extra}}}\n"
    )


@dataclass
class Agent:
    kind: str
    role: str
    cwd: Path
    port: int
    mport: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss(self) -> float:
        return rss_mb(self.pid)


@dataclass
class Pair:
    """A server agent and a client agent of one kind (``go`` or ``py``)."""

    name: str
    server: Agent
    client: Agent
    export: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.client.port}"

    def agents(self) -> tuple[Agent, Agent]:
        return self.client, self.server


def agent_command(kind: str, go_agent: str, config: Path) -> list[str]:
    if kind == "go":
        return [go_agent, "-c", str(config), "-localIP", "127.0.0.1"]
    return [sys.executable, "-m", "motanmesh.cli", "agent", "-c", str(config), "-localIP",
            "127.0.0.1", "-log_level", "warning"]  # fmt: skip


def launch(
    agent: Agent,
    go_agent: str,
    config_text: str,
    wait_for: int | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Start ``agent`` from ``config_text`` (in its own directory, where each kind writes its pid
    file and runtime files) and switch it on (``GET /200`` on its management port)."""
    agent.cwd.mkdir(parents=True, exist_ok=True)
    config = agent.cwd / "agent.yaml"
    config.write_text(config_text)
    env = {**os.environ, "MOTAN_BIND_IP": "127.0.0.1", **(env or {})}
    agent.started = time.monotonic()
    agent.proc = subprocess.Popen(
        agent_command(agent.kind, go_agent, config),
        cwd=agent.cwd,
        env=env,
        stdout=(agent.cwd / "out.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_port(agent.mport, timeout=120)
    urllib.request.urlopen(f"http://127.0.0.1:{agent.mport}/200", timeout=10).read()
    wait_port(wait_for if wait_for is not None else agent.port, timeout=120)


def start_pair(
    kind: str,
    work: Path,
    go_agent: str,
    services: dict[str, int],
    registry: str | None = None,
    env: dict[str, str] | None = None,
    name: str = "",
) -> Pair:
    """A pair whose server agent exports each ``path → echo port`` of ``services`` on one port
    and whose client agent refers to them through a ``direct`` registry (or the given
    ``motan-registry`` entry text, named ``reg``); ``env`` is added to the agents'
    environment; ``name`` (default ``kind``) names the pair and its directory."""
    name = name or kind
    ports = [free_port() for _ in range(5)]
    server = Agent(kind, "server", work / name / "server", ports[0], ports[1])
    client = Agent(kind, "client", work / name / "client", ports[2], ports[3])
    export = ports[4]
    log_dir = "log_dir: ./logs"
    if registry is None:
        s_reg = "motan-registry:\n  reg: {protocol: direct}\n"
        c_reg = f"motan-registry:\n  reg: {{protocol: direct, host: 127.0.0.1, port: {export}}}\n"
    else:
        s_reg = c_reg = f"motan-registry:\n  reg: {registry}\n"
    server_yaml = (
        f"motan-agent: {{port: {server.port}, mport: {server.mport}, eport: {export}, "
        f"{log_dir}, application: bench-server}}\n{s_reg}motan-service:\n"
    ) + "".join(
        service_yaml(f"s{i}", path, export, echo, "reg")
        for i, (path, echo) in enumerate(services.items())
    )
    client_yaml = (
        f"motan-agent: {{port: {client.port}, mport: {client.mport}, {log_dir}, "
        f"application: bench-client}}\n{c_reg}motan-refer:\n"
    ) + "".join(refer_yaml(f"r{i}", path, "reg") for i, path in enumerate(services))
    pair = Pair(name, server, client, export)
    launch(server, go_agent, server_yaml, wait_for=export, env=env)
    assert server.proc is not None
    pair.procs.append(server.proc)
    launch(client, go_agent, client_yaml, env=env)
    assert client.proc is not None
    pair.procs.append(client.proc)
    return pair


def stop_pair(pair: Pair) -> None:
    stop(reversed(pair.procs))


class Sampler:
    """Peak RSS and CPU time of some processes while a block runs (sampled every 0.1 s)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0.0)
        self.cpu = dict.fromkeys(pids, 0.0)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.wait(0.1):
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], rss_mb(pid))

    def __enter__(self) -> Sampler:
        self._cpu0 = {pid: cpu_seconds(pid) for pid in self.pids}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        for pid in self.pids:
            self.cpu[pid] = cpu_seconds(pid) - self._cpu0[pid]


def simple_call_bytes(path: str, rid: int, arg: str, method: str = "hello") -> bytes:
    body = SimpleSerialization().encode_multi([arg])
    meta = {"M_p": path, "M_m": method, "M_g": GROUP, "M_s": "bench", "M_pp": "motan2"}
    return request_frame(rid, meta, body).encode()


def recv_exact(sock: socket.socket, n: int) -> bytes:
    parts = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed")
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def read_reply(sock: socket.socket) -> tuple[int, bytes]:
    """One Motan2 answer: (status bits, body bytes)."""
    head = recv_exact(sock, 17)
    (meta_len,) = struct.unpack(">I", head[13:17])
    recv_exact(sock, meta_len)
    (body_len,) = struct.unpack(">I", recv_exact(sock, 4))
    return head[3] & 0x07, recv_exact(sock, body_len)


def reply_string(body: bytes) -> str:
    """The string of a simple-serialized one-string answer ("" for anything else)."""
    if len(body) >= 5 and body[0] == 1:
        return body[5:].decode("utf-8", "replace")
    return ""


def hold_connections(addr: str, count: int, path: str) -> list[socket.socket]:
    """``count`` connections to ``addr``, each having made one call, then left idle."""
    host, port = addr.rsplit(":", 1)
    socks: list[socket.socket] = []
    try:
        for i in range(count):
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(simple_call_bytes(path, i + 1, "x"))
            status, _ = read_reply(s)
            if status:
                raise RuntimeError(f"call on idle connection {i} failed (status {status})")
            socks.append(s)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def motanload_run(tools: Path, addr: str, conc: int, seconds: float, size: int, path: str,
                  depth: int = 1) -> dict[str, Any]:  # fmt: skip
    import json  # noqa: PLC0415

    out = subprocess.run(
        [str(tools / "motanload"), "-addr", addr, "-c", str(conc), "-d", f"{seconds}s",
         "-warmup", "0.5s", "-depth", str(depth), "-size", str(size), "-path", path,
         "-method", "hello", "-group", GROUP],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    return dict(json.loads(out.strip().splitlines()[-1]))


def start_echo(tools: Path, reply: str, procs: list[subprocess.Popen[bytes]]) -> int:
    port = free_port()
    procs.append(
        subprocess.Popen([str(tools / "motanecho"), "-addr", f"127.0.0.1:{port}", "-reply", reply])
    )
    wait_port(port)
    return port


__all__ = [
    "KINDS",
    "Agent",
    "Pair",
    "Sampler",
    "cpu_seconds",
    "hold_connections",
    "launch",
    "motanload_run",
    "read_reply",
    "reply_string",
    "require_go_agent",
    "simple_call_bytes",
    "start_echo",
    "start_pair",
    "stop_pair",
]
