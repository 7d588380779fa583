"""What the benchmark scripts share: loopback ports, the Go load generator, child processes,
and the interpreted build of motanmesh beside the installed one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import motanmesh
from motanmesh.demo.ports import reserve_port

SERVICE = "com.weibo.motan.demo.service.MotanDemoService"
GROUP = "motan-demo-rpc"


GO_TOOLS = ("motanload", "motanecho")


def require_go_tools(tools: Path) -> str | None:
    """``None`` when the Go measuring tools are in ``tools``, else the one line to print."""
    missing = [name for name in GO_TOOLS if not os.access(tools / name, os.X_OK)]
    if not missing:
        return None
    return (
        f"missing Go measuring tools in {tools}: {', '.join(missing)}; build them with "
        f"<shared>/tools/build.sh {tools} (see benchmarks/README.md, 'What the benchmarks need')"
    )


def free_port() -> int:
    """A port for a child process that no other process can take before it binds."""
    return reserve_port()


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


def motanload(tools: Path, addr: str, conc: int, seconds: float) -> dict[str, Any]:
    """motanload's JSON figures for ``hello`` on the demo service at ``addr``."""
    out = subprocess.run(
        [str(tools / "motanload"), "-addr", addr, "-c", str(conc), "-d", f"{seconds}s",
         "-size", "16", "-path", SERVICE, "-method", "hello", "-group", GROUP],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(json.loads(out.strip().splitlines()[-1]))


def stop(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process, then wait for it (killing it after 10 s)."""
    procs = list(procs)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def interpreted_env(work: Path) -> dict[str, str]:
    """An environment whose ``motanmesh`` is a copy of the installed sources, in ``work``,
    without their compiled extensions."""
    shutil.copytree(Path(motanmesh.__file__).parent, work / "motanmesh")
    for ext in work.rglob("*.so"):
        ext.unlink()
    return {**os.environ, "PYTHONPATH": str(work)}
