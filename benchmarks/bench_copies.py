"""Body-sized allocations per call in one agent, counted in process.

One agent (``--role client``: a client agent whose refer points straight at the backend;
``--role server``: a server agent exporting the backend) runs on uvloop in this process. The
load and the backend are plain blocking sockets in threads that never allocate a body-sized
object: requests and answers are prebuilt and sent with ``sendall`` (header and body
separately), bodies are read with ``recv_into`` into buffers made once. An allocator hook
(``alloc_count.c``, compiled here with the system C compiler) counts every allocation of at
least half the body size (at most 16 KB, at least 1 KB) made through Python's allocators
while ``--calls`` calls of ``--sizes`` bytes (request and answer alike) go through the agent
one at a time. Printed: those allocations per call, and their bytes divided by the bytes of
the two bodies the agent forwards per call (the request's and the answer's), that is how many
times the agent copies each body in user space (every such allocation is filled with a copy
of body bytes, except a frame-sized read buffer, which is zero-filled and then filled by the
kernel's receive, the copy every read makes). The kernel's receive and send come on top.

    python benchmarks/bench_copies.py [--role client,server] [--sizes 100,4096,65536,1048576]
        [--calls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path
from types import ModuleType

from harness import GROUP, free_port

from motanmesh.agent.agent import Agent
from motanmesh.config.loader import load_config
from motanmesh.transport.loop import install

DEBUG = bool(os.environ.get("BENCH_COPIES_DEBUG"))
PATH = "com.weibo.motan.bench.Copies"
HEAD = struct.Struct(">HBBBQI")
U32 = struct.Struct(">I")


def build_counter(work: Path) -> ModuleType:
    source = Path(__file__).with_name("alloc_count.c")
    target = work / ("alloc_count" + str(sysconfig.get_config_var("EXT_SUFFIX")))
    cc = str(sysconfig.get_config_var("CC") or "cc").split()
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        [*cc, "-O2", "-shared", "-fPIC", f"-I{include}", "-o", str(target), str(source)], check=True
    )
    spec = importlib.util.spec_from_file_location("alloc_count", target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def head(flags: int, rid: int, meta: bytes, body_len: int) -> bytes:
    return HEAD.pack(0xF1F1, flags, 0x08, 6 << 3, rid, len(meta)) + meta + U32.pack(body_len)


def read_frame(sock: socket.socket, small: bytearray, body: memoryview) -> tuple[int, int]:
    """Read one frame; the body goes into ``body``. Returns (request id, body length)."""
    view = memoryview(small)
    _recv_exact(sock, view[:17])
    _m, _f, _vs, _s, rid, mlen = HEAD.unpack_from(small, 0)
    _recv_exact(sock, view[17 : 17 + mlen + 4])
    (blen,) = U32.unpack_from(small, 17 + mlen)
    _recv_exact(sock, body[:blen])
    return rid, blen


def _recv_exact(sock: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if not n:
            raise ConnectionError("closed")
        got += n


def backend(listener: socket.socket, size: int, stop: threading.Event) -> None:
    answer = bytes(size)
    small = bytearray(64 * 1024)
    body = memoryview(bytearray(size + 1024))
    meta = b"M_pt\n0"
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        while not stop.is_set():
            try:
                rid, _n = read_frame(conn, small, body)
            except (ConnectionError, OSError):
                return
            conn.sendall(head(0x01, rid, meta, len(answer)))
            conn.sendall(answer)


def load(port: int, size: int, calls: int) -> None:
    request = bytes(size)
    meta = f"M_p\n{PATH}\nM_m\necho\nM_g\n{GROUP}".encode()
    small = bytearray(64 * 1024)
    body = memoryview(bytearray(size + 1024))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for rid in range(1, calls + 1):
            sock.sendall(head(0, rid, meta, len(request)))
            sock.sendall(request)
            got, n = read_frame(sock, small, body)
            if got != rid or n != size:
                raise RuntimeError(f"answer {got}/{n} to call {rid}/{size}")


def agent_yaml(role: str, work: Path, port: int, mport: int, backend_port: int) -> str:
    files = (
        f"pidfile: {work}/agent.pid, runtime_dir: {work}/runtime, snapshot_dir: {work}/snap, "
        f"log_dir: {work}/logs, application: copies"
    )
    if role == "client":
        return (
            f"motan-agent: {{port: {port}, mport: {mport}, {files}}}\n"
            f"motan-registry:\n  reg: {{protocol: direct, host: 127.0.0.1, port: {backend_port}}}\n"
            f"motan-refer:\n  r: {{registry: reg, path: {PATH}, group: {GROUP}, "
            "protocol: motan2, requestTimeout: 5000}\n"
        )
    return (
        f"motan-agent: {{port: {free_port()}, mport: {mport}, eport: {port}, {files}}}\n"
        "motan-registry:\n  reg: {protocol: direct}\n"
        f"motan-service:\n  s: {{registry: reg, path: {PATH}, group: {GROUP}, "
        f'protocol: motan2, export: "motan2:{port}", proxy: "motan2:{backend_port}"}}\n'
    )


async def measure(
    counter: ModuleType, role: str, size: int, calls: int, work: Path
) -> tuple[float, float]:
    listener = socket.create_server(("127.0.0.1", 0))
    backend_port = listener.getsockname()[1]
    stop = threading.Event()
    server = threading.Thread(target=backend, args=(listener, size, stop), daemon=True)
    server.start()
    port, mport = free_port(), free_port()
    (work / "agent.yaml").write_text(agent_yaml(role, work, port, mport, backend_port))
    agent = Agent(load_config(work / "agent.yaml"))
    await agent.start()
    if role == "server":
        await agent.set_status(200)
    try:
        await asyncio.to_thread(load, port, size, 20)  # warm up: connections, caches
        counter.start(max(1024, min(size // 2, 16 * 1024)))
        await asyncio.to_thread(load, port, size, calls)
        allocations, allocated = counter.counts()
        if DEBUG:
            print(role, size, counter.recent())
        counter.start(1 << 62)
    finally:
        stop.set()
        await agent.stop()
        listener.close()
    return allocations / calls, allocated / (calls * 2 * size)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", default="client,server")
    parser.add_argument("--sizes", default="100,4096,65536,1048576")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    install()
    work = Path(tempfile.mkdtemp(prefix="motanmesh-copies-"))
    counter = build_counter(work)
    print(f"python {sys.version.split()[0]}; body-sized allocations per call in one agent")
    print("| agent | body bytes | allocations per call | body copies per body forwarded |")
    print("|---|---:|---:|---:|")
    for role in args.role.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            sub = work / f"{role}-{size}"
            sub.mkdir()
            per_call, copies = asyncio.run(measure(counter, role, size, args.calls, sub))
            shown = f"{copies:.2f}" if size >= 1024 else "n/a (under 1 KB)"
            print(f"| {role} | {size:,} | {per_call:.2f} | {shown} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
