"""``examples/http-ingress`` and ``examples/php`` as their READMEs run them, on free ports."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.e2e.harness import (
    REPO_ROOT,
    Mesh,
    Process,
    child_env,
    free_port,
    set_available,
    wait_for,
)
from tests.servers.phpfpm import require_php_fpm

EXAMPLES = REPO_ROOT / "examples"
#: the fixed ports of the examples' files
PORTS = ("9981", "9983", "8002", "9991", "8003", "9982", "8080", "9000")


def _copy(name: str, work: Path, files: tuple[str, ...]) -> dict[str, int]:
    ports = {port: free_port() for port in PORTS}
    for file in files:
        text = (EXAMPLES / name / file).read_text()
        if file.endswith((".yaml", ".conf")):
            for old, new in ports.items():
                text = re.sub(rf"\b{old}\b", str(new), text)
        (work / file).write_text(text)
    (work / "run").mkdir(exist_ok=True)
    return ports


def _agents(mesh: Mesh, work: Path, ports: dict[str, int]) -> None:
    server = mesh.agent(
        "server-agent", work / "server-agent.yaml", port=ports["9991"], mport=ports["8003"]
    )
    set_available(server)
    mesh.agent("client-agent", work / "client-agent.yaml", port=ports["9981"], mport=ports["8002"])


def _listens(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _get(url: str, headers: dict[str, str] | None = None, proxy: str = "") -> tuple[int, str]:
    handlers = [urllib.request.ProxyHandler({"http": proxy} if proxy else {})]
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers=headers or {})
    with opener.open(request, timeout=10) as resp:
        return int(resp.status), resp.read().decode()


def test_http_ingress_example(mesh: Mesh) -> None:
    work = mesh.workdir
    ports = _copy("http-ingress", work, ("app.py", "server-agent.yaml", "client-agent.yaml"))
    app = Process(
        "users-api",
        [sys.executable, "app.py", "--port", str(ports["8080"])],
        work,
        child_env(),
        mesh.log("users-api"),
    )
    mesh.procs.append(app)
    app.wait_output("listening on")
    _agents(mesh, work, ports)
    proxy = f"http://127.0.0.1:{ports['9983']}"
    status, body = _get("http://api.example.local/users/v1/42?fields=name", proxy=proxy)
    got = json.loads(body)
    assert status == 200
    assert (got["id"], got["path"], got["query"]) == ("42", "/users/42", "fields=name")
    assert got["via"]["MOTAN-p"] == "com.example.Users"
    assert got["via"]["MOTAN-m"] == "/users/v1/42"
    assert got["via"]["MOTAN-s"] == "users-client"
    status, body = _get(f"{proxy}/users/7", headers={"Host": "api.example.local"})
    assert json.loads(body)["name"] == "user-7"


def test_php_example(mesh: Mesh) -> None:
    binary = require_php_fpm()
    work = mesh.workdir
    ports = _copy(
        "php",
        work,
        ("index.php", "php-fpm.conf", "server-agent.yaml", "client-agent.yaml", "client.py"),
    )
    config = work / "server-agent.yaml"
    text = config.read_text()
    text = re.sub(r"CGI_SCRIPT_FILENAME: .*", f"CGI_SCRIPT_FILENAME: {work}/index.php", text)
    text = re.sub(r"CGI_DOCUMENT_ROOT: .*", f"CGI_DOCUMENT_ROOT: {work}", text)
    config.write_text(text)
    argv = [binary, "-n", "-F", "-y", "php-fpm.conf", "-R"]
    fpm = Process("php-fpm", argv, work, child_env(), mesh.log("php-fpm"))
    mesh.procs.append(fpm)
    wait_for(lambda: _listens(ports["9000"]), "php-fpm to listen")
    _agents(mesh, work, ports)
    done = subprocess.run(
        [sys.executable, "client.py", "--agent", f"127.0.0.1:{ports['9981']}", "alice", "bob"],
        cwd=work,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    for line, name in zip(lines, ("alice", "bob"), strict=True):
        assert re.fullmatch(
            rf"Hello, {name}, from PHP \d+\.\d+ \(caller php-example, request \d+\)", line
        ), line
    url = (
        f"http://127.0.0.1:{ports['9983']}/proxy_to_rpc?service=com.example.php.Hello"
        "&group=php&method=greet&arg_type=string&arg=carol"
    )
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = resp.read().decode()
        assert resp.headers["X-Greeted"] == "carol"
        assert resp.headers["upstreamCode"] == "200"
    assert body.startswith("Hello, carol, from PHP ") and "caller php-client" in body
