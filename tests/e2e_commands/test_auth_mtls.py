"""Access control by verified mTLS identity, with real agent processes and real certificates:
the server agent exports with TLS (permissive: plain Motan2 is accepted on the same port) and
``auth.requireIdentity``; two client agents hold certificates of two applications. The
caller is who its certificate says, whatever ``M_s`` it writes; a plaintext caller is
refused; a registry policy naming a SPIFFE URI changes who may call without a restart."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from motanmesh.registry.embedded import EmbeddedRegistry
from motanmesh.sdk.client import MotanClient
from motanmesh.sdk.errors import MotanBizError
from motanmesh.url import URL
from tests.e2e.harness import (
    INSTANCE_ENV,
    INSTANCE_GROUP,
    INSTANCE_SERVICE,
    AgentProcess,
    Mesh,
    agent_section,
    available_endpoints,
    embedded_registry,
    export_port,
    instance_export,
    refer,
    set_available,
)
from tests.security.pki import TRUST_DOMAIN, Pki

WAIT = 15.0


def tls_keys(pki: Pki, app: str, **more: str) -> dict[str, str]:
    cert, key = pki.issue(app)
    return {
        "tls.cert": str(cert),
        "tls.key": str(key),
        "tls.ca": str(pki.ca),
        "tls.trustDomain": TRUST_DOMAIN,
        **{f"tls.{k}": v for k, v in more.items()},
    }


async def outcome(client: MotanClient) -> str:
    try:
        return str(await client.call(INSTANCE_SERVICE, "whoami"))
    except MotanBizError as e:
        assert e.errcode == 403, e
        return f"denied: {e.errmsg}"


def client_agent(mesh: Mesh, pki: Pki, app: str) -> AgentProcess:
    section = agent_section(app, application=app, **tls_keys(pki, app))
    return mesh.agent(
        app,
        {
            "motan-agent": section,
            "motan-registry": {"local": embedded_registry(mesh.registry)},
            "motan-refer": {"instance": refer(INSTANCE_SERVICE, INSTANCE_GROUP)},
        },
    )


async def wait_provider(agent: AgentProcess) -> None:
    start = time.monotonic()
    while not await asyncio.to_thread(available_endpoints, agent, "instance"):
        assert time.monotonic() - start < WAIT, f"{agent.name} found no provider"
        await asyncio.sleep(0.05)


@pytest.fixture
async def control(mesh: Mesh) -> AsyncIterator[EmbeddedRegistry]:
    registry = EmbeddedRegistry(URL("embedded", parameters={"file": str(mesh.registry)}))
    await registry.start()
    try:
        yield registry
    finally:
        await registry.close()


async def test_the_certificate_decides_who_calls(
    mesh: Mesh, tmp_path: Path, control: EmbeddedRegistry
) -> None:
    pki = Pki(tmp_path / "pki")
    export: dict[str, Any] = {
        **instance_export(),
        "filter": "auth",
        "auth.allow": "web",
        "auth.requireIdentity": "true",
    }
    server = mesh.agent(
        "server",
        {
            "motan-agent": agent_section(
                "server", application="orders", **tls_keys(pki, "orders", mode="permissive")
            ),
            "motan-registry": {"local": embedded_registry(mesh.registry)},
            "motan-service": {"instance": export},
        },
        env={INSTANCE_ENV: "a"},
    )
    set_available(server)
    web, intruder = client_agent(mesh, pki, "web"), client_agent(mesh, pki, "intruder")
    await wait_provider(web)
    await wait_provider(intruder)
    plain = f"127.0.0.1:{export_port(export)}"
    group = INSTANCE_GROUP
    async with (
        # each writes the other's name as M_s: only the certificate counts
        MotanClient(web.address, application="intruder", group=group, timeout=5) as as_web,
        MotanClient(intruder.address, application="web", group=group, timeout=5) as as_bad,
        MotanClient(plain, application="web", group=group, timeout=5) as plaintext,
    ):
        assert await outcome(as_web) == "a"
        refused = await outcome(as_bad)
        assert f"identity 'spiffe://{TRUST_DOMAIN}/app/intruder' may not call" in refused
        refused = await outcome(plaintext)
        assert "requires a verified mTLS identity" in refused and "caller 'web'" in refused

        # the registry names the intruder's full URI: the roles swap, no restart
        policy = {"allow": [f"spiffe://{TRUST_DOMAIN}/app/intruder"], "requireIdentity": True}
        await control.set_auth_policy(group, INSTANCE_SERVICE, json.dumps(policy))
        start = time.monotonic()
        while await outcome(as_bad) != "a":
            assert time.monotonic() - start < WAIT, "the registry policy never applied"
            await asyncio.sleep(0.02)
        assert (await outcome(as_web)).startswith("denied")
        assert (await outcome(plaintext)).startswith("denied")

        await control.set_auth_policy(group, INSTANCE_SERVICE, None)
        start = time.monotonic()
        while await outcome(as_web) != "a":
            assert time.monotonic() - start < WAIT, "the configured policy never came back"
            await asyncio.sleep(0.02)
        assert (await outcome(as_bad)).startswith("denied")
    info = server.management_json("/runtime/info?keys=servers")
    (port,) = info["servers"]["agentPortServer"].values()
    (filters,) = port["filters"].values()
    (auth,) = [f for f in filters if f["name"] == "auth"]
    assert auth["source"] == "config" and auth["requireIdentity"] is True
    assert auth["denied"] >= 5
