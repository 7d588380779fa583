"""The management API of a running agent process: status, ``/200``/``/503`` and the registry,
``-recover``, version, refers and switchers."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from typing import Any

import motanmesh
from tests.e2e.harness import (
    DEMO_GROUP,
    DEMO_SERVICE,
    INSTANCE_GROUP,
    INSTANCE_SERVICE,
    AgentProcess,
    Mesh,
    agent_section,
    embedded_registry,
    export_port,
    instance_export,
    refer,
    registry_nodes,
    wait_for,
)

SWITCHERS = {"feature.e2e.alpha": True, "feature.e2e.beta": False}


def agent_config(mesh: Mesh) -> tuple[dict[str, Any], str]:
    """An agent that refers to the demo service and exports the instance service; and the
    registry node of that export."""
    export = instance_export()
    config = {
        "motan-agent": agent_section("agent"),
        "motan-registry": {"local": embedded_registry(mesh.registry)},
        "motan-refer": {"demo": refer(DEMO_SERVICE, DEMO_GROUP)},
        "motan-service": {"instance": export},
        "switcher": SWITCHERS,
    }
    return config, f"127.0.0.1:{export_port(export)}"


def nodes(mesh: Mesh, node_type: str) -> set[str]:
    return registry_nodes(mesh.registry, INSTANCE_GROUP, INSTANCE_SERVICE, node_type)


def test_status_moves_the_registry_node(mesh: Mesh) -> None:
    config, node = agent_config(mesh)
    agent = mesh.agent("agent", config)

    assert agent.management("/") == (503, "Service Unavailable")
    assert agent.management("/any/unknown/path")[0] == 503
    assert nodes(mesh, "unavailableServer") == {node}
    assert nodes(mesh, "server") == set()

    assert agent.management("/200") == (200, "ok.")
    assert agent.management("/") == (200, "OK")
    assert nodes(mesh, "server") == {node}
    assert nodes(mesh, "unavailableServer") == set()
    assert (mesh.workdir / "agent-runtime" / "status").read_text().strip() == "200"

    assert agent.management("/503", data=b"") == (200, "ok.")  # any method
    assert agent.management("/")[0] == 503
    assert nodes(mesh, "unavailableServer") == {node}
    assert (mesh.workdir / "agent-runtime" / "status").read_text().strip() == "503"


def test_recover_restores_the_status(mesh: Mesh) -> None:
    config, node = agent_config(mesh)
    first = mesh.agent("first", config)
    assert first.management("/200") == (200, "ok.")
    first.send(signal.SIGKILL)
    first.wait(5)

    again = mesh.agent("again", config, "-recover")

    assert again.management("/") == (200, "OK")
    wait_for(lambda: nodes(mesh, "server") == {node}, "the recovered node to be available")
    # without -recover the agent starts unavailable whatever the status file says
    again.send(signal.SIGKILL)
    again.wait(5)
    fresh = mesh.agent("fresh", config)
    assert fresh.management("/")[0] == 503


def test_information_endpoints(mesh: Mesh) -> None:
    agent = mesh.agent("agent", agent_config(mesh)[0])

    assert agent.management("/version") == (200, motanmesh.__version__)
    assert agent.management_json("/getReferService") == {
        "code": 200,
        "body": {"service": [{"name": f"{DEMO_GROUP}_1.0_motan2_{DEMO_SERVICE}", "status": True}]},
    }
    services = agent.management_json("/getAllService")
    assert [s["path"] for s in services["services"]] == [INSTANCE_SERVICE]
    assert services["dynamic_services"] == []
    status = agent.management_json("/status")
    assert status["body"]["status"] == 503
    assert agent.management_json("/registry/info") == {
        "code": 200,
        "message": "ok",
        "body": {"mesh_port": agent.port},
    }


def test_switchers(mesh: Mesh) -> None:
    agent = mesh.agent("agent", agent_config(mesh)[0])

    assert agent.management_json("/switcher/getAll") == SWITCHERS
    status, text = agent.management("/switcher/set?name=feature.e2e.alpha&value=false")
    assert status == 200, text
    assert agent.management("/switcher/get?name=feature.e2e.alpha") == (
        200,
        "switcher feature.e2e.alpha is false",
    )
    assert json.loads(agent.management("/switcher/getAll")[1]) == {
        "feature.e2e.alpha": False,
        "feature.e2e.beta": False,
    }
    assert agent.management("/switcher/set?name=feature.e2e.unknown&value=true")[0] == 404
    assert agent.management("/switcher/set?name=feature.e2e.beta&value=maybe")[0] == 400


def _request(agent: AgentProcess, path: str, **kw: Any) -> tuple[int, str]:
    """``path`` sent as written (urllib does not re-quote it), with headers or a form body."""
    headers: dict[str, str] = kw.get("headers", {})
    data: bytes | None = kw.get("data")
    if data is not None:
        headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
    req = urllib.request.Request(f"http://127.0.0.1:{agent.mport}{path}", data, headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()


def test_the_management_token_never_appears_in_the_log(mesh: Mesh) -> None:
    token, wrong = "tok-7Hq2-secret", "guess-9Xz1-wrong"
    config, _node = agent_config(mesh)
    config["motan-agent"]["managementToken"] = token
    agent = mesh.agent("agent", config, "-log_level", "debug")
    denied = (403, "need permission!")
    assert _request(agent, "/200") == denied
    assert _request(agent, f"/200?token={wrong}") == denied
    assert _request(agent, "/200", headers={"Token": wrong}) == denied
    assert _request(agent, "/200", data=f"token={token}".encode()) == denied  # not read there
    assert _request(agent, "/200", headers={"Token": token}) == (200, "ok.")
    assert _request(agent, f"/503?token={token}") == (200, "ok.")
    assert _request(agent, f"/200?%74oken={token}") == (200, "ok.")
    assert _request(agent, f"/503?a=1&TOKEN={token}&token={token}") == (200, "ok.")
    switch = f"/switcher/set?name=feature.e2e.beta&value=true&token={token}"
    assert _request(agent, switch) == (200, "switcher feature.e2e.beta set to true")
    status, shown = _request(agent, "/getConfig")
    assert status == 200 and token not in shown and "***" in shown
    assert _request(agent, f"/no/such/path?token={token}")[0] == 503  # the status
    # every request above was logged, none with a token
    wait_for(lambda: agent.output().count("management ") >= 11, "the request log lines")
    output = agent.output()
    assert "token=***" in output and "%74oken=***" in output
    assert token not in output
    assert wrong not in output
    agent.send(signal.SIGTERM)
    agent.wait(15)
    assert token not in agent.output()
