"""Mutual TLS in the demo mesh, real processes: app → client agent → (mTLS) → server agent
(strict) → demo service, with certificates from ``motanmesh ca``. Client agents that cannot
prove who they are (plaintext, a certificate from another CA, an expired certificate) are
refused, each counted by reason, logged, and shown in ``/metrics``, while the others keep
being served."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from motanmesh.sdk.client import MotanClient
from motanmesh.sdk.errors import MotanRemoteError
from motanmesh.security.ca import issue_certificate, load_ca, write_pair
from motanmesh.security.identity import app_identity
from tests.e2e.harness import (
    DEMO_GROUP,
    DEMO_SERVICE,
    AgentProcess,
    Mesh,
    child_env,
    cli_argv,
    client_agent_config,
    demo_export,
    export_port,
    refer,
    server_agent_config,
    set_available,
    wait_endpoints,
    wait_for,
)

TRUST_DOMAIN = "e2e.motanmesh"


def ca(workdir: Path, *args: str) -> None:
    subprocess.run(
        cli_argv("ca", *args), cwd=workdir, env=child_env(), check=True, capture_output=True
    )


def tls_keys(d: Path, app: str, ca_dir: Path | None = None) -> dict[str, str]:
    return {
        "tls.cert": str(d / f"{app}.pem"),
        "tls.key": str(d / f"{app}-key.pem"),
        "tls.ca": str((ca_dir or d) / "ca.pem"),
        "tls.trustDomain": TRUST_DOMAIN,
    }


@dataclass
class TlsMesh:
    mesh: Mesh
    server: AgentProcess
    client: AgentProcess
    eport: int
    pki: Path

    def refused(self) -> dict[str, int]:
        info = self.server.management_json("/runtime/info?keys=servers")
        tls: dict[str, Any] = info["servers"]["agentPortServer"][str(self.eport)]["tls"]
        refused: dict[str, int] = tls["refused"]
        return refused

    def client_agent(self, name: str, keys: dict[str, str]) -> AgentProcess:
        config = client_agent_config(
            name, self.mesh.registry, {"demo": refer(DEMO_SERVICE, DEMO_GROUP, requestTimeout=2000)}
        )
        config["motan-agent"].update(keys)
        return self.mesh.agent(name, config)


@pytest.fixture(scope="module")
def tls_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsMesh]:
    mesh = Mesh(tmp_path_factory.mktemp("tls"))
    pki = mesh.workdir / "pki"
    try:
        ca(mesh.workdir, "init", "--dir", str(pki), "--trust-domain", TRUST_DOMAIN)
        for app in ("e2e-server", "e2e-client"):
            ca(mesh.workdir, "issue", "--dir", str(pki), "--app", app)
        _service, backend = mesh.demo_service("demo-service")
        export = demo_export(backend)
        config = server_agent_config("server", mesh.registry, {"demo": export})
        config["motan-agent"].update(
            {"application": "e2e-server", "tls.mode": "strict", **tls_keys(pki, "e2e-server")}
        )
        server = mesh.agent("server", config)
        set_available(server)
        eport = export_port(export)
        t = TlsMesh(mesh, server, server, eport, pki)
        t.client = t.client_agent("client", tls_keys(pki, "e2e-client"))
        wait_endpoints(t.client, "demo", {f"127.0.0.1:{eport}"})
        yield t
        mesh.check_alive()
    finally:
        mesh.close()


async def calls(agent: AgentProcess, n: int) -> list[Any]:
    async with MotanClient(agent.address, application="e2e-app", group=DEMO_GROUP) as client:
        return [await client.call(DEMO_SERVICE, "hello", f"tls{i}") for i in range(n)]


async def test_calls_go_through_mutual_tls(tls_mesh: TlsMesh) -> None:
    assert await calls(tls_mesh.client, 5) == [f"hello tls{i}" for i in range(5)]
    info = tls_mesh.server.management_json("/runtime/info?keys=servers")["servers"]
    port = info["agentPortServer"][str(tls_mesh.eport)]
    assert port["tls"]["mode"] == "strict"
    assert port["tls"]["connections"]["tls"] >= 1
    assert port["tls"]["connections"]["plain"] == 0
    assert info["tls"]["identity"] == f"spiffe://{TRUST_DOMAIN}/app/e2e-server"
    # the client agent uses TLS because the provider was registered with tls=true
    clusters = tls_mesh.client.management_json("/runtime/info?keys=clusters")["clusters"]
    [endpoint] = clusters["demo"]["endpoints"]
    assert endpoint["tls"] is True
    assert "tls=true" in endpoint["url"]


def _rejected(t: TlsMesh, agent: AgentProcess, reason: str) -> None:
    wait_for(lambda: t.refused().get(reason, 0) >= 1, f"a {reason} refusal", timeout=30)
    status, body = t.server.management("/metrics")
    assert status == 200
    line = next(
        (
            ln
            for ln in body.splitlines()
            if ln.startswith("motan_tls_refused_total") and f'reason="{reason}"' in ln
        ),
        "",
    )
    assert line and float(line.rsplit(" ", 1)[1]) >= 1, body
    assert reason in t.server.output() or "refusing" in t.server.output()


async def test_a_plaintext_client_agent_is_refused_and_others_keep_working(
    tls_mesh: TlsMesh,
) -> None:
    plain = tls_mesh.client_agent("plain-client", {})
    # it has no TLS: it connects in plaintext, and its first request is refused
    with pytest.raises(MotanRemoteError):
        await calls(plain, 1)
    _rejected(tls_mesh, plain, "plaintext")
    assert "requires TLS" in tls_mesh.server.output()
    # a raw plaintext socket as well
    with socket.create_connection(("127.0.0.1", tls_mesh.eport), timeout=10) as s:
        s.sendall(b"\xf1\xf1" + b"\x00" * 30)
        with contextlib.suppress(ConnectionResetError):  # reset: its bytes were never read
            assert s.recv(10) == b""
    assert await calls(tls_mesh.client, 2) == ["hello tls0", "hello tls1"]


async def test_a_certificate_from_another_ca_is_refused(tls_mesh: TlsMesh) -> None:
    other = tls_mesh.mesh.workdir / "other-pki"
    ca(tls_mesh.mesh.workdir, "init", "--dir", str(other), "--trust-domain", TRUST_DOMAIN)
    ca(tls_mesh.mesh.workdir, "issue", "--dir", str(other), "--app", "rogue")
    # it trusts the mesh's CA (so it would talk to the server) but its own certificate is not
    # the mesh's
    rogue = tls_mesh.client_agent("rogue-client", tls_keys(other, "rogue", ca_dir=tls_mesh.pki))
    _rejected(tls_mesh, rogue, "unknownCa")
    assert await calls(tls_mesh.client, 1) == ["hello tls0"]


async def test_an_expired_certificate_is_refused(tls_mesh: TlsMesh) -> None:
    ca_cert, ca_key = load_ca(tls_mesh.pki)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    cert, key = issue_certificate(
        ca_cert, ca_key, app_identity(TRUST_DOMAIN, "late"), days=1, not_before=start
    )
    write_pair(cert, key, tls_mesh.pki / "late.pem", tls_mesh.pki / "late-key.pem")
    late = tls_mesh.client_agent("late-client", tls_keys(tls_mesh.pki, "late"))
    _rejected(tls_mesh, late, "expired")
    assert await calls(tls_mesh.client, 1) == ["hello tls0"]


async def test_a_permissive_port_serves_tls_and_plaintext_client_agents(mesh: Mesh) -> None:
    """The migration step: one server agent in permissive mode, a client agent with mTLS and
    one without (as a Go agent would be) both call it."""
    pki = mesh.workdir / "pki"
    ca(mesh.workdir, "init", "--dir", str(pki), "--trust-domain", TRUST_DOMAIN)
    for app in ("e2e-server", "e2e-client"):
        ca(mesh.workdir, "issue", "--dir", str(pki), "--app", app)
    _service, backend = mesh.demo_service("demo-service")
    export = demo_export(backend)
    config = server_agent_config("server", mesh.registry, {"demo": export})
    config["motan-agent"]["tls"] = {  # the mapping form of the tls.* keys
        "mode": "permissive",
        "cert": str(pki / "e2e-server.pem"),
        "key": str(pki / "e2e-server-key.pem"),
        "ca": str(pki / "ca.pem"),
        "trustDomain": TRUST_DOMAIN,
    }
    server = mesh.agent("server", config)
    set_available(server)
    eport = export_port(export)
    refers = {"demo": refer(DEMO_SERVICE, DEMO_GROUP, requestTimeout=2000)}
    secure_config = client_agent_config("secure", mesh.registry, refers)
    secure_config["motan-agent"].update(tls_keys(pki, "e2e-client"))
    secure = mesh.agent("secure", secure_config)
    plain = mesh.agent("plain", client_agent_config("plain", mesh.registry, refers))
    for agent in (secure, plain):
        wait_endpoints(agent, "demo", {f"127.0.0.1:{eport}"})
        assert await calls(agent, 3) == ["hello tls0", "hello tls1", "hello tls2"]
    info = server.management_json("/runtime/info?keys=servers")["servers"]
    tls = info["agentPortServer"][str(eport)]["tls"]
    assert tls["mode"] == "permissive"
    assert tls["connections"]["tls"] >= 1
    assert tls["connections"]["plain"] >= 1
    assert not any(tls["refused"].values())
    [secure_ep] = secure.management_json("/runtime/info?keys=clusters")["clusters"]["demo"][
        "endpoints"
    ]
    [plain_ep] = plain.management_json("/runtime/info?keys=clusters")["clusters"]["demo"][
        "endpoints"
    ]
    assert (secure_ep["tls"], plain_ep["tls"]) == (True, False)
    mesh.check_alive()
