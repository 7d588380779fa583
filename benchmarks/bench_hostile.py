"""Memory of the client agent under a client that writes requests and never reads an answer.

motanecho behind a server agent, a client agent in front (embedded registry), as in
``bench_agent.py``. One connection to the client agent writes ``--requests`` requests with
``--body``-byte bodies as fast as the agent takes them and never reads; the script samples the
client agent's resident memory while it writes, then closes the connection and samples it again
after ``--settle`` seconds. It prints the baseline, the peak, the memory after the connection
went, and how many requests the agent took before it stopped reading.

    python benchmarks/bench_hostile.py [--requests 30000] [--body 65536] [--tools .tools]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_agent import start_agents
from harness import GROUP, SERVICE, free_port, require_go_tools, rss_mb, stop, wait_port

from motanmesh.wire.frame import request_frame
from motanmesh.wire.simple import SimpleSerialization


def request_bytes(body_size: int) -> bytes:
    body = SimpleSerialization().encode_multi(["x" * body_size])
    meta = {"M_p": SERVICE, "M_m": "echo", "M_g": GROUP, "M_s": "bench-hostile"}
    return request_frame(1, meta, body).encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30000)
    parser.add_argument("--body", type=int, default=65536)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--tools", default=".tools")
    args = parser.parse_args()
    tools = Path(args.tools).resolve()
    problem = require_go_tools(tools)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="motanmesh-hostile-"))
    echo = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen([str(tools / "motanecho"), "-addr", f"127.0.0.1:{echo}"]))
        wait_port(echo)
        paths, _server, client = start_agents(work, echo, None, procs)
        time.sleep(1.5)
        base = rss_mb(client.pid)
        one = request_bytes(args.body)
        host, port = paths["mesh"].rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.settimeout(0.5)
        peak = base
        sent = 0
        stalled = 0.0
        end = time.monotonic() + args.max_seconds
        while sent < args.requests * len(one) and time.monotonic() < end:
            try:
                view = memoryview(one)[sent % len(one) :]
                sent += sock.send(view)
                stalled = 0.0
            except TimeoutError:
                stalled += 0.5
                if stalled >= 3.0:
                    break  # the agent stopped reading
            peak = max(peak, rss_mb(client.pid))
        for _ in range(4):
            time.sleep(0.25)
            peak = max(peak, rss_mb(client.pid))
        taken = sent // len(one)
        sock.close()
        time.sleep(args.settle)
        after = rss_mb(client.pid)
        print(
            f"{args.body}-byte bodies: the agent took {taken} of {args.requests} requests "
            f"({sent / 1e6:.1f} MB); client agent RSS {base:.1f} MB before, {peak:.1f} MB at "
            f"peak, {after:.1f} MB {args.settle:g} s after the connection closed"
        )
    finally:
        stop(reversed(procs))
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
