"""SIGHUP reloads the refers of a running client agent from its (edited) config file."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import yaml

from motanmesh.sdk.client import MotanClient
from motanmesh.sdk.errors import MotanRemoteError
from tests.e2e.harness import (
    DEMO_GROUP,
    DEMO_SERVICE,
    INSTANCE_ENV,
    INSTANCE_GROUP,
    INSTANCE_SERVICE,
    AgentProcess,
    HarnessError,
    Mesh,
    client_agent_config,
    demo_export,
    export_port,
    instance_export,
    refer,
    server_agent_config,
    set_available,
    wait_endpoints,
)


async def reply_or_error(app: MotanClient, service: str) -> str:
    method, arg = ("hello", "x") if service == DEMO_SERVICE else ("whoami", None)
    group = DEMO_GROUP if service == DEMO_SERVICE else INSTANCE_GROUP
    try:
        args = (arg,) if arg is not None else ()
        return str(await app.call(service, method, *args, group=group))
    except MotanRemoteError as e:
        return f"error {e.errcode}: {e.errmsg}"


async def wait_reply(
    app: MotanClient, service: str, predicate: str, *, timeout: float = 15.0
) -> str:
    """Call until the reply starts with ``predicate``; the last reply."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        reply = await reply_or_error(app, service)
        if reply.startswith(predicate):
            return reply
        if asyncio.get_running_loop().time() > deadline:
            raise HarnessError(f"{service}: still {reply!r} after {timeout:.0f} s")
        await asyncio.sleep(0.1)


def reload(agent: AgentProcess, config: dict[str, Any], refers: dict[str, Any]) -> None:
    """Write ``config`` with these refers over the agent's config file, then SIGHUP."""
    config["motan-refer"] = refers
    agent.config.write_text(yaml.safe_dump(config, sort_keys=False))
    agent.send(signal.SIGHUP)


def refer_names(agent: AgentProcess) -> list[str]:
    return sorted(s["name"] for s in agent.management_json("/getReferService")["body"]["service"])


async def test_sighup_adds_and_removes_refers(mesh: Mesh) -> None:
    _service, backend = mesh.demo_service("demo-service")
    services = {"demo": demo_export(backend), "instance": instance_export()}
    server = mesh.agent(
        "server",
        server_agent_config("server", mesh.registry, services),
        env={INSTANCE_ENV: "solo"},
    )
    set_available(server)
    demo_refer = refer(DEMO_SERVICE, DEMO_GROUP)
    config = client_agent_config("client", mesh.registry, {"demo": demo_refer})
    client = mesh.agent("client", config)
    demo_address = f"127.0.0.1:{export_port(services['demo'])}"
    await asyncio.to_thread(wait_endpoints, client, "demo", {demo_address})

    async with MotanClient(client.address, application="e2e-app") as app:
        assert await reply_or_error(app, DEMO_SERVICE) == "hello x"
        missing = await reply_or_error(app, INSTANCE_SERVICE)
        assert missing.startswith("error 400: cluster not found"), missing

        # add a refer
        instance_refer = refer(INSTANCE_SERVICE, INSTANCE_GROUP)
        reload(client, config, {"demo": demo_refer, "instance": instance_refer})
        assert await wait_reply(app, INSTANCE_SERVICE, "solo") == "solo"
        assert await reply_or_error(app, DEMO_SERVICE) == "hello x"
        assert refer_names(client) == [
            f"{DEMO_GROUP}_1.0_motan2_{DEMO_SERVICE}",
            f"{INSTANCE_GROUP}_1.0_motan2_{INSTANCE_SERVICE}",
        ]

        # a broken file is refused: the running refers stay
        client.config.write_text(client.config.read_text() + "motan-refer: [\n")
        client.send(signal.SIGHUP)
        await asyncio.to_thread(client.wait_output, "reload refused", 10)
        assert await reply_or_error(app, INSTANCE_SERVICE) == "solo"
        assert await reply_or_error(app, DEMO_SERVICE) == "hello x"

        # remove a refer
        reload(client, config, {"instance": instance_refer})
        gone = await wait_reply(app, DEMO_SERVICE, "error 400")
        assert gone.startswith("error 400: cluster not found"), gone
        assert await reply_or_error(app, INSTANCE_SERVICE) == "solo"
        assert refer_names(client) == [f"{INSTANCE_GROUP}_1.0_motan2_{INSTANCE_SERVICE}"]
    assert client.alive, client.describe()
