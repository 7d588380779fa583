"""A config directory in the Go agent's pool layout (``basic.yaml``,
``applications/<app>.yaml`` importing ``services/<x>.yaml``, ``pools/<app>[-<idc>].yaml``,
``dynamic-param``) starts as it is with ``-pool app-idc -c DIR`` and serves calls."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from motanmesh.sdk.client import MotanClient
from tests.e2e.harness import (
    DATA_DIR,
    DEMO_SERVICE,
    AgentProcess,
    Mesh,
    demo_export,
    export_port,
    server_agent_config,
    set_available,
    wait_endpoints,
)

POOL_DIR = DATA_DIR / "pool-confs"
REFER_ID = "motan-demo-service"


def pool_files() -> dict[str, bytes]:
    return {
        str(p.relative_to(POOL_DIR)): p.read_bytes() if p.is_file() else b""
        for p in POOL_DIR.rglob("*")
    }


def refer_keys(agent: AgentProcess) -> list[str]:
    body = agent.management_json("/getReferService")["body"]
    return sorted(s["name"] for s in body["service"])


async def test_pool_directory_serves_a_call(mesh: Mesh) -> None:
    before = pool_files()
    group = "motan-demo-yf"  # what dynamic-param gives the pool demo_client-yf
    _service, backend = mesh.demo_service("demo-service", group=group)
    export = demo_export(backend, group=group)
    server = mesh.agent("server", server_agent_config("server", mesh.registry, {"demo": export}))
    set_available(server)

    client = mesh.agent("pool-client", POOL_DIR, "-pool", "demo_client-yf")

    address = f"127.0.0.1:{export_port(export)}"
    await asyncio.to_thread(wait_endpoints, client, REFER_ID, {address})
    async with MotanClient(client.address, application="e2e-app") as app:
        assert await app.call(DEMO_SERVICE, "hello", "pool") == "hello pool"
    assert refer_keys(client) == [f"{group}_1.0_motan2_{DEMO_SERVICE}"]

    status, text = client.management("/getConfig")
    assert status == 200
    merged = yaml.safe_load(text)
    refer = merged["motan-refer"][REFER_ID]
    assert (refer["group"], refer["requestTimeout"]) == (group, 1500)
    assert merged["motan-agent"]["application"] == "demo_client"
    assert client.management_json("/switcher/getAll") == {"feature.e2e.pool.basic": True}
    # the flags won over the files' ports; nothing was written into the config directory
    assert client.management("/")[0] == 503
    assert pool_files() == before
    assert (mesh.workdir / "agent.pid").read_text().strip() == str(client.pid)


@pytest.mark.parametrize(
    ("pool", "group"),
    [("demo_client-tc", "motan-demo-north"), ("demo_client-gz", "motan-demo-rpc")],
)
def test_dynamic_param_follows_the_pool(mesh: Mesh, pool: str, group: str) -> None:
    client = mesh.agent("pool-client", POOL_DIR, "-pool", pool)

    assert refer_keys(client) == [f"{group}_1.0_motan2_{DEMO_SERVICE}"]
