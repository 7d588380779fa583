"""The Go agent's own demo configurations (``tests/data/go-configs``) run a real agent process.

The files are used as motan-go ships them; only their ports are moved to free ones,
``localhost`` to ``127.0.0.1`` and request timeouts to a minute (as text, in the test's copy).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from motanmesh.cluster.errors import E_NO_ENDPOINTS
from motanmesh.sdk import MotanClient
from motanmesh.sdk.errors import MotanRemoteError
from tests.e2e.harness import (
    DEMO_GROUP,
    DEMO_SERVICE,
    AgentProcess,
    Mesh,
    agent_section,
    free_port,
)

GO_CONFIGS = Path(__file__).resolve().parents[1] / "data" / "go-configs"


#: call and connect timeouts of the test's clients (the SDK's default is 1 s): bounds for a
#: hang only, far above what a loaded machine needs
CALL_TIMEOUT = 60.0
#: the copies' ``requestTimeout``: the files' 2000 ms is a real-time deadline that a loaded
#: machine can miss, and tests must not depend on timing
REQUEST_TIMEOUT_MS = 60_000


def go_config(mesh: Mesh, name: str, ports: Mapping[int, int]) -> Path:
    """A copy of a Go config in the mesh's directory: its ports, ``localhost`` and its
    request timeouts replaced."""
    text = (GO_CONFIGS / name).read_text()
    for old, new in ports.items():
        text, count = re.subn(rf"\b{old}\b", str(new), text)
        assert count, f"{name} does not name port {old}"
    text = re.sub(r"(?m)^(\s+requestTimeout: )2000$", rf"\g<1>{REQUEST_TIMEOUT_MS}", text)
    path = mesh.workdir / name
    path.write_text(text.replace("localhost", "127.0.0.1"))
    return path


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"{self.path} {self.headers.get('Host')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def http_backend() -> Iterator[int]:
    """An HTTP server on a free loopback port answering ``<path> <Host header>``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


async def test_agentdemo_yaml(mesh: Mesh, http_backend: int) -> None:
    port, eport, mport, zookeeper = free_port(), free_port(), free_port(), free_port()
    ports = {9981: port, 9982: eport, 8002: mport, 9090: http_backend, 2181: zookeeper}
    config = go_config(mesh, "agentdemo.yaml", ports)
    agent = mesh.agent("agentdemo", config, port=port, mport=mport)
    # nothing listens where the (unused) ZooKeeper registry points: the agent serves anyway
    agent.management_json("/status")
    assert "test.domain" in agent.management("/getConfig")[1]
    # the exported http service forwards to the backend, with the domain as Host
    async with MotanClient(
        f"127.0.0.1:{eport}",
        application="agent-test",
        timeout=CALL_TIMEOUT,
        connect_timeout=CALL_TIMEOUT,
    ) as client:
        answer = await client.call("test", "/test/hello", group="test.domain")
    assert answer == "/test/hello test.domain"
    mesh.check_alive()


async def test_serverdemo_yaml(mesh: Mesh) -> None:
    export = free_port()
    config = go_config(mesh, "serverdemo.yaml", {8100: export})
    agent = mesh.agent("serverdemo", config)
    assert "mesh-registry is not used" in agent.output()
    # no provider and no proxy: the Go agent's default provider has no methods in an agent
    async with MotanClient(
        f"127.0.0.1:{export}",
        application="server-test",
        timeout=CALL_TIMEOUT,
        connect_timeout=CALL_TIMEOUT,
    ) as client:
        with pytest.raises(MotanRemoteError) as caught:
            await client.call(DEMO_SERVICE, "hello", "mesh", group=DEMO_GROUP)
    assert caught.value.errcode == 500
    assert caught.value.errmsg == "method hello is not found in provider."
    mesh.check_alive()


def _empty_direct_agent(mesh: Mesh, name: str, **sections: object) -> AgentProcess:
    config = {
        "motan-agent": agent_section(name, registry="direct-registry"),
        "motan-registry": {"direct-registry": {"protocol": "direct"}},
        **sections,
    }
    return mesh.agent(name, config)


async def test_direct_registry_naming_nothing(mesh: Mesh) -> None:
    """The serverdemo shape for both agents: services register nowhere, refers find no one."""
    _, backend = mesh.demo_service("demo")
    service = {
        "registry": "direct-registry",
        "path": DEMO_SERVICE,
        "group": DEMO_GROUP,
        "export": f"motan2:{free_port()}",
        "proxy": f"motan2:{backend}",
    }
    server = _empty_direct_agent(mesh, "server", **{"motan-service": {"demo": service}})
    refer = {"registry": "direct-registry", "path": DEMO_SERVICE, "group": DEMO_GROUP}
    client = _empty_direct_agent(mesh, "client", **{"motan-refer": {"demo": refer}})
    # the exported service serves whoever knows its port
    export = int(service["export"].split(":")[1])
    async with MotanClient(
        f"127.0.0.1:{export}", application="e2e", timeout=CALL_TIMEOUT, connect_timeout=CALL_TIMEOUT
    ) as direct:
        assert await direct.call(DEMO_SERVICE, "hello", "mesh", group=DEMO_GROUP) == "hello mesh"
    # the refer has no provider: answered E_NO_ENDPOINTS, as the Go agent does
    async with MotanClient(
        client.address, application="e2e", timeout=CALL_TIMEOUT, connect_timeout=CALL_TIMEOUT
    ) as app:
        with pytest.raises(MotanRemoteError) as caught:
            await app.call(DEMO_SERVICE, "hello", "mesh", group=DEMO_GROUP)
    assert caught.value.errcode == E_NO_ENDPOINTS
    assert server.alive
    mesh.check_alive()
