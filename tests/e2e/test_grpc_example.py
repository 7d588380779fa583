"""``examples/grpc`` as its README runs it, on free ports: stubs generated from its proto, its
Greeter server, its two agent configs, its gRPC client and its Motan2 client."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.e2e.grpc_echo import compile_stubs
from tests.e2e.harness import REPO_ROOT, Mesh, Process, child_env, free_port, set_available

EXAMPLE = REPO_ROOT / "examples" / "grpc"
#: the fixed ports of the example's files
PORTS = ("9981", "9990", "8002", "9991", "8003", "9982", "50051")


def _copy_example(work: Path) -> dict[str, int]:
    ports = {port: free_port() for port in PORTS}
    for name in ("helloworld.proto", "server.py", "client.py", "motan_client.py"):
        shutil.copy2(EXAMPLE / name, work / name)
    for name in ("server-agent.yaml", "client-agent.yaml"):
        text = (EXAMPLE / name).read_text()
        for old, new in ports.items():
            text = re.sub(rf"\b{old}\b", str(new), text)
        (work / name).write_text(text)
    return ports


def _run(work: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=work,
        env=child_env({"PYTHONPATH": str(work)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_example(mesh: Mesh) -> None:
    work = mesh.workdir
    ports = _copy_example(work)
    compile_stubs(work, proto=work / "helloworld.proto")
    greeter = Process(
        "greeter",
        [sys.executable, "server.py", "--port", str(ports["50051"])],
        work,
        child_env({"PYTHONPATH": str(work)}),
        mesh.log("greeter"),
    )
    mesh.procs.append(greeter)
    greeter.wait_output("listening on")
    server = mesh.agent("server-agent", work / "server-agent.yaml", port=ports["9991"],
                        mport=ports["8003"])  # fmt: skip
    set_available(server)
    client = mesh.agent("client-agent", work / "client-agent.yaml", port=ports["9981"],
                        mport=ports["8002"])  # fmt: skip
    grpc_agent = f"127.0.0.1:{ports['9990']}"
    out = _run(work, "client.py", "--agent", grpc_agent, "alice", "")
    export = f"127.0.0.1:{ports['9982']}"
    assert out.splitlines() == [
        f"Hello, alice (from greeter-client) [server greeter-1, via {export}]",
        "error INVALID_ARGUMENT: name is required",
    ]
    out = _run(work, "motan_client.py", "--agent", client.address, "carol")
    assert out.strip() == "Hello, carol (from greeter-motan2) [server greeter-1]"
