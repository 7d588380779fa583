"""``ctl switchers`` and ``ctl status`` against a real agent process (and a real service
behind it) sharing an embedded registry with the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from motanmesh.registry.embedded import EmbeddedRegistry
from tests.control.conftest import arun_ctl, provider, register
from tests.e2e.harness import (
    DEMO_SERVICE,
    AgentProcess,
    Mesh,
    client_agent_config,
    free_port,
    refer,
    wait_endpoints,
    wait_for,
)

GROUP = "motan-demo-yf"
APPLICATION = "e2e-client"
SWITCHER = "ctl.test.switch"


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    workdir = tmp_path / "mesh"
    workdir.mkdir()
    m = Mesh(workdir)
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
async def agent(mesh: Mesh, registry: EmbeddedRegistry, tmp_path: Path) -> AgentProcess:
    """A client agent referring to the demo service in ``GROUP``; one real provider."""
    _, port = mesh.demo_service("backend", group=GROUP)
    await register(registry, [provider("127.0.0.1", port, DEMO_SERVICE, GROUP)])
    config = client_agent_config("client", tmp_path / "registry.db", {"demo": refer(
        DEMO_SERVICE, GROUP)})  # fmt: skip
    config["switchers"] = {SWITCHER: False}
    process = mesh.agent("client", config)
    wait_endpoints(process, "demo", {f"127.0.0.1:{port}"})
    return process


def _address(agent: AgentProcess) -> str:
    return f"127.0.0.1:{agent.mport}"


async def test_switchers_list_and_set(agent: AgentProcess) -> None:
    address = _address(agent)
    listed = await arun_ctl("switchers", "list", "--agent", address, "--json")
    assert listed.code == 0, str(listed)
    assert listed.json()[address][SWITCHER] is False

    done = await arun_ctl("switchers", "set", "--agent", address, "--name", SWITCHER,
                          "--value", "true")  # fmt: skip
    assert done.code == 0, str(done)
    assert f"switcher {SWITCHER} set to true" in done.out
    human = await arun_ctl("switchers", "list", "--agent", address)
    assert f"  {SWITCHER} = true" in human.out

    unknown = await arun_ctl("switchers", "set", "--agent", address, "--name", "no.such",
                             "--value", "false")  # fmt: skip
    assert unknown.code == 1
    assert "404" in unknown.out
    bad = await arun_ctl("switchers", "set", "--agent", address, "--name", SWITCHER,
                         "--value", "maybe")  # fmt: skip
    assert bad.code == 2
    still = await arun_ctl("switchers", "list", "--agent", address, "--json")
    assert still.json()[address][SWITCHER] is True


async def test_unreachable_agent_exits_2() -> None:
    result = await arun_ctl("switchers", "list", "--agent", f"127.0.0.1:{free_port()}")
    assert result.code == 2
    assert "does not answer" in result.err


async def test_status_shows_providers_and_commands(agent: AgentProcess, tmp_path: Path) -> None:
    reg_args = ["--registry", f"embedded://{tmp_path / 'registry.db'}"]
    address = _address(agent)
    plain = await arun_ctl("status", "--agent", address, "--json")
    assert plain.code == 0, str(plain)
    (refer_status,) = plain.json()["refers"]
    assert refer_status["service"] == DEMO_SERVICE
    assert refer_status["group"] == GROUP
    assert refer_status["available"] is True
    assert [p["group"] for p in refer_status["providers"]] == [GROUP]
    assert refer_status["commands"]["source"] == {}

    for target, args in (
        (["--group", GROUP], ["--type", "traffic", "--pattern", "*",
                              "--merge-groups", f"{GROUP}:8,motan-demo-tc:2"]),
        (["--agent", APPLICATION], ["--type", "degrade", "--pattern", DEMO_SERVICE]),
    ):  # fmt: skip
        done = await arun_ctl("commands", "set", *reg_args, *target, *args)
        assert done.code == 0, str(done)

    wait_for(lambda: _degraded(agent), "the agent to apply the degrade command")

    # the registry comes from the agent's own config (/getConfig) ...
    found = await arun_ctl("status", "--agent", address, "--json")
    assert found.code == 0, str(found)
    refer_status = found.json()["refers"][0]
    assert refer_status["available"] is False
    commands = refer_status["commands"]
    assert commands["source"] == {
        "trafficControl": "service command index 1 (traffic control)",
        "degrade": "agent command index 1 (degrade)",
    }
    assert commands["mergeGroups"] == [GROUP, "motan-demo-tc"]
    assert commands["degraded"] is True
    assert refer_status["applied"] == commands
    assert refer_status["inSync"] is True

    # ... or is given; the agent command needs the application then
    given = await arun_ctl("status", "--agent", address, *reg_args)
    assert given.code == 0, str(given)
    assert f"refer demo: {DEMO_SERVICE} group {GROUP} - NOT AVAILABLE (degraded)" in given.out
    assert "  applied by the agent:\n    trafficControl: service command" in given.out
    assert "    degrade: agent command index 1 (degrade)" in given.out
    assert "      groups motan-demo-yf, motan-demo-tc, weights motan-demo-yf:8" in given.out
    assert "the agent has not applied the registry's commands (yet)" in given.out
    with_app = await arun_ctl("status", "--agent", address, *reg_args,
                              "--application", APPLICATION)  # fmt: skip
    assert "the registry holds the same commands" in with_app.out


def _degraded(agent: AgentProcess) -> bool:
    services = agent.management_json("/getReferService")["body"]["service"]
    return [s["status"] for s in services] == [False]
