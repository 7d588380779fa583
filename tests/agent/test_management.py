"""The management HTTP API, against a real agent on loopback ports."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from motanmesh.agent.agent import VERSION, Agent, AgentError
from motanmesh.agent.http_server import redact_path
from motanmesh.agent.management import (
    MUTATING_PATHS,
    PERMISSION_DENIED,
    TOKEN_ENV,
    ManagementServer,
    aggregate_registry_status,
    configured_token,
    is_loopback_host,
    token_matches,
    token_required,
    url_from_json,
    url_to_json,
)
from motanmesh.config.loader import load_config
from motanmesh.config.model import Config
from motanmesh.demo.service import DEMO_GROUP, DEMO_SERVICE, demo_registry
from motanmesh.registry.base import RegistrationStatus, RegistryStatus
from motanmesh.sdk import MotanClient, ServiceServer
from motanmesh.url import URL
from motanmesh.wire import compiled_modules

DYN_GROUP = "dyn-group"
EMBEDDED_NAME = "embedded://:0"  # protocol://host:port of the embedded registry URL


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
async def demo_app() -> AsyncIterator[ServiceServer]:
    """The application's own service (demo, group ``dyn-group``) on a loopback port."""
    server = await demo_registry(DYN_GROUP).serve("127.0.0.1", 0)
    yield server
    await server.close(0.5)


@pytest.fixture
async def direct_app() -> AsyncIterator[ServiceServer]:
    """The demo service the configured refer reaches through a direct registry."""
    server = await demo_registry().serve("127.0.0.1", 0)
    yield server
    await server.close(0.5)


def _port(server: ServiceServer) -> int:
    return int(server.address.rsplit(":", 1)[1])


def write_config(tmp_path: Path, direct_port: int, *, with_service: bool = False) -> Path:
    doc: dict[str, Any] = {
        "motan-agent": {
            "application": "mgmt-test",
            "pidfile": str(tmp_path / "agent.pid"),
            "runtime_dir": str(tmp_path / "runtime"),
            "initClusterTimeout": 2000,
            "drainTime": 0,
        },
        "motan-registry": {
            "direct-reg": {"protocol": "direct", "address": f"127.0.0.1:{direct_port}"},
            "local-reg": {"protocol": "embedded", "file": str(tmp_path / "registry.db")},
        },
        "motan-refer": {
            "demo-refer": {"path": DEMO_SERVICE, "group": DEMO_GROUP, "registry": "direct-reg"},
        },
        "switchers": {"feature.one": True, "feature.two": False},
    }
    if with_service:
        doc["motan-service"] = {
            "demo-service": {
                "path": DEMO_SERVICE,
                "group": DEMO_GROUP,
                "registry": "local-reg",
                "provider": "python",
                "pythonService": "motanmesh.demo.service:demo_registry",
                "export": "motan2:9982",
            }
        }
    path = tmp_path / "motan.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def loopback_config(path: Path, **agent_changes: Any) -> Config:
    """The config with every port 0 (the file format only accepts real ports)."""
    config = load_config(path)
    changes: dict[str, Any] = {"port": 0, "eport": 0, "mport": 0, **agent_changes}
    agent = dataclasses.replace(config.agent, **changes)
    services = {sid: [u.copy(port=0) for u in urls] for sid, urls in config.services.items()}
    return dataclasses.replace(config, agent=agent, services=services)


AgentFactory = Callable[..., Awaitable[Agent]]


@pytest.fixture
async def make_agent() -> AsyncIterator[AgentFactory]:
    agents: list[Agent] = []

    async def factory(config: Config, *, recover: bool = False) -> Agent:
        agent = Agent(config, recover=recover)
        await agent.start()
        agents.append(agent)
        return agent

    yield factory
    for agent in agents:
        await agent.stop(drain=False)


@pytest.fixture
async def agent(tmp_path: Path, direct_app: ServiceServer, make_agent: AgentFactory) -> Agent:
    return await make_agent(loopback_config(write_config(tmp_path, _port(direct_app))))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def base(agent: Agent) -> str:
    assert agent.management_address is not None
    host, port = agent.management_address
    return f"http://{host}:{port}"


async def fetch(
    http: aiohttp.ClientSession, agent: Agent, path: str, method: str = "GET", **kw: Any
) -> tuple[int, str]:
    async with http.request(method, base(agent) + path, **kw) as resp:
        return resp.status, await resp.text()


async def fetch_json(
    http: aiohttp.ClientSession, agent: Agent, path: str, method: str = "GET", **kw: Any
) -> tuple[int, Any]:
    status, text = await fetch(http, agent, path, method, **kw)
    return status, json.loads(text)


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def app_url_json(app: ServiceServer, registry: str = EMBEDDED_NAME, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "protocol": "motan2",
        "host": "127.0.0.1",
        "port": _port(app),
        "path": DEMO_SERVICE,
        "group": DYN_GROUP,
        "parameters": {"proxyRegistry": registry},
    }
    body.update(more)
    return body


# ---------------------------------------------------------------------------- status


async def test_root_status_and_lifecycle(
    agent: Agent, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    assert await fetch(http, agent, "/") == (503, "Service Unavailable")
    assert await fetch(http, agent, "/no/such/path") == (503, "Service Unavailable")
    assert await fetch(http, agent, "/version") == (200, VERSION)
    assert await fetch(http, agent, "/200", "PUT") == (200, "ok.")
    assert agent.status == 200
    assert await fetch(http, agent, "/", "HEAD") == (200, "")
    assert await fetch(http, agent, "/") == (200, "OK")
    assert (tmp_path / "runtime" / "status").read_text() == "200"
    assert await fetch(http, agent, "/503", "POST") == (200, "ok.")
    assert await fetch(http, agent, "/") == (503, "Service Unavailable")
    assert (tmp_path / "runtime" / "status").read_text() == "503"


async def test_status_json_lists_exported_services(
    tmp_path: Path,
    direct_app: ServiceServer,
    make_agent: AgentFactory,
    http: aiohttp.ClientSession,
) -> None:
    config = loopback_config(write_config(tmp_path, _port(direct_app), with_service=True))
    agent = await make_agent(config)
    status, doc = await fetch_json(http, agent, "/status")
    assert status == 200
    assert doc == {
        "code": 200,
        "body": {
            "status": 503,
            "service_period_call_count": 0,
            "services": [{"group": DEMO_GROUP, "name": DEMO_SERVICE, "methods": []}],
        },
    }
    status, doc = await fetch_json(http, agent, "/registry/status")
    assert status == 200
    assert doc["status"] == "unregister-success"
    assert [(r["group"], r["service"], r["status"]) for r in doc["registryStatus"]] == [
        (DEMO_GROUP, DEMO_SERVICE, "not-register")
    ]
    assert await fetch(http, agent, "/200") == (200, "ok.")
    status, doc = await fetch_json(http, agent, "/registry/status")
    assert doc["status"] == "register-success"
    assert [r["status"] for r in doc["registryStatus"]] == ["register-success"]
    status, doc = await fetch_json(http, agent, "/getAllService")
    assert status == 200
    assert doc["dynamic_services"] == []
    [service] = doc["services"]
    assert (service["path"], service["group"], service["host"]) == (
        DEMO_SERVICE,
        DEMO_GROUP,
        "127.0.0.1",
    )
    assert service["port"] == agent.services[0].port != 0
    assert service["parameters"]["provider"] == "python"


def row(status: RegistryStatus, check: bool) -> RegistrationStatus:
    return RegistrationStatus("g", "s", "r", status, is_check=check)


def test_aggregate_registry_status() -> None:
    ok, failed = RegistryStatus.REGISTER_SUCCESS, RegistryStatus.REGISTER_FAILED
    not_reg = RegistryStatus.NOT_REGISTER
    assert aggregate_registry_status([], 200) == "register-success"
    assert aggregate_registry_status([], 503) == "unregister-success"
    assert aggregate_registry_status([row(failed, False)], 200) == "register-success"
    assert aggregate_registry_status([row(ok, True), row(failed, True)], 200) == "register-failed"
    assert aggregate_registry_status([row(not_reg, True), row(ok, True)], 200) == "not-register"
    assert aggregate_registry_status([row(not_reg, True), row(failed, True)], 200) == (
        "register-failed"
    )
    unreg_failed = RegistryStatus.UNREGISTER_FAILED
    assert aggregate_registry_status([row(failed, True)], 503) == "unregister-success"
    assert aggregate_registry_status([row(unreg_failed, True)], 503) == "unregister-failed"


# ---------------------------------------------------------------------------- information


async def test_information_endpoints(
    agent: Agent, http: aiohttp.ClientSession, direct_app: ServiceServer
) -> None:
    status, text = await fetch(http, agent, "/getConfig")
    assert status == 200
    assert yaml.safe_load(text) == agent.config.raw

    refer = agent.clusters["demo-refer"].refer
    assert await fetch_json(http, agent, "/getReferService") == (
        200,
        {"code": 200, "body": {"service": [{"name": refer.cluster_key, "status": True}]}},
    )
    assert agent.client_address is not None
    assert await fetch_json(http, agent, "/registry/info") == (
        200,
        {"code": 200, "message": "ok", "body": {"mesh_port": agent.client_address[1]}},
    )
    assert await fetch_json(http, agent, "/registry/list") == (
        200,
        {"code": 200, "message": "ok", "body": {"register_nodes": [], "subscribe_nodes": []}},
    )


async def test_runtime_info(agent: Agent, http: aiohttp.ClientSession) -> None:
    status, doc = await fetch_json(http, agent, "/runtime/info")
    assert status == 200
    assert set(doc) == {"result", "instanceType", "clusters", "exporters", "servers", "basic"}
    assert doc["result"] == "ok"
    assert doc["instanceType"] == "motan-agent"
    assert doc["clusters"]["demo-refer"]["url"] == agent.clusters["demo-refer"].refer.to_ext_info()
    assert agent.client_address is not None
    assert doc["servers"]["agentServer"]["address"] == f"127.0.0.1:{agent.client_address[1]}"
    basic = doc["basic"]
    assert basic["version"] == VERSION
    assert basic["pid"] > 0
    assert basic["rssMemory"] > 0
    assert isinstance(basic["startTime"], str)
    assert basic["compiledWireModules"] == compiled_modules()

    status, doc = await fetch_json(http, agent, "/runtime/info?keys=basic,nonsense")
    assert status == 200
    assert set(doc) == {"result", "instanceType", "basic"}
    status, doc = await fetch_json(http, agent, "/runtime/info", "POST", data={"keys": "clusters"})
    assert set(doc) == {"result", "instanceType", "clusters"}


# ---------------------------------------------------------------------------- switchers


async def test_switchers(agent: Agent, http: aiohttp.ClientSession) -> None:
    assert await fetch_json(http, agent, "/switcher/getAll") == (
        200,
        {"feature.one": True, "feature.two": False},
    )
    assert await fetch(http, agent, "/switcher/get?name=feature.two") == (
        200,
        "switcher feature.two is false",
    )
    assert await fetch(http, agent, "/switcher/set?name=feature.two&value=true") == (
        200,
        "switcher feature.two set to true",
    )
    assert agent.switchers.get("feature.two") is True
    status, _ = await fetch(
        http, agent, "/switcher/set", "POST", data={"name": "feature.one", "value": "0"}
    )
    assert status == 200
    assert agent.switchers.get("feature.one") is False

    assert await fetch(http, agent, "/switcher/set?name=nope&value=true") == (
        404,
        "switcher not found: nope",
    )
    assert await fetch(http, agent, "/switcher/get?name=nope") == (
        404,
        "switcher not found: nope",
    )
    status, text = await fetch(http, agent, "/switcher/set?name=feature.one&value=maybe")
    assert status == 400
    assert "maybe" in text
    assert await fetch(http, agent, "/switcher/set?value=true") == (
        400,
        "missing parameter: name",
    )
    assert await fetch(http, agent, "/switcher/set?name=feature.one") == (
        400,
        "missing parameter: value",
    )
    assert not agent.switchers.is_registered("nope")


# ---------------------------------------------------------------------------- dynamic registration


async def test_register_subscribe_call_and_unregister(
    agent: Agent,
    http: aiohttp.ClientSession,
    demo_app: ServiceServer,
    tmp_path: Path,
) -> None:
    assert await fetch(http, agent, "/200") == (200, "ok.")
    status, doc = await fetch_json(
        http, agent, "/registry/register", "POST", json=app_url_json(demo_app)
    )
    assert (status, doc) == (200, {"code": 200, "message": "ok"})

    # the registry holds the server agent's export, which proxies to the app's port
    refer = URL("motan2", path=DEMO_SERVICE, group=DYN_GROUP)
    [node] = await agent.registries["local-reg"].discover(refer)
    [registered] = agent.dynamic_services
    assert (node.host, node.port) == ("127.0.0.1", registered.port)
    assert registered.port in {port for _host, port in agent.export_addresses.values()}
    assert node.get("proxy") == f"motan2:{_port(demo_app)}"
    assert node.get("application") == "mgmt-test"

    status, doc = await fetch_json(http, agent, "/registry/list")
    [reg_node] = doc["body"]["register_nodes"]
    assert (reg_node["path"], reg_node["group"]) == (DEMO_SERVICE, DYN_GROUP)
    assert reg_node["parameters"]["registry"] == "local-reg"
    assert doc["body"]["subscribe_nodes"] == []
    status, doc = await fetch_json(http, agent, "/getAllService")
    assert [u["group"] for u in doc["dynamic_services"]] == [DYN_GROUP]

    # registering again changes nothing
    status, _ = await fetch(http, agent, "/registry/register", "POST", json=app_url_json(demo_app))
    assert status == 200
    assert len(agent.dynamic_services) == 1

    # subscribe by registry id; the app then calls through the client port
    body = app_url_json(demo_app, registry="local-reg", host="", port=0)
    status, doc = await fetch_json(http, agent, "/registry/subscribe", "POST", json=body)
    assert (status, doc) == (200, {"code": 200, "message": "ok"})
    [rid] = [r for r in agent.clusters if r != "demo-refer"]
    cluster = agent.clusters[rid]
    assert cluster.refer.group == DYN_GROUP
    await wait_for(lambda: any(ep.available for ep in cluster.endpoints.values()), "endpoint")
    assert agent.client_address is not None
    async with MotanClient(f"127.0.0.1:{agent.client_address[1]}", timeout=5) as client:
        assert await client.call(DEMO_SERVICE, "hello", "mesh", group=DYN_GROUP) == "hello mesh"
    status, doc = await fetch_json(http, agent, "/registry/list")
    [sub_node] = doc["body"]["subscribe_nodes"]
    assert (sub_node["group"], sub_node["port"]) == (DYN_GROUP, 0)

    snapshot = json.loads((tmp_path / "runtime" / "registry.snap").read_text())
    assert snapshot == doc["body"]

    # unregister (by id this time): the export and the registry node go away
    body = app_url_json(demo_app, registry="local-reg")
    status, doc = await fetch_json(http, agent, "/registry/unregister", "POST", json=body)
    assert (status, doc) == (200, {"code": 200, "message": "ok"})
    assert agent.dynamic_services == []
    assert await agent.registries["local-reg"].discover(refer) == []
    assert all(DYN_GROUP not in key for d in agent.dispatchers.values() for key in d.providers)
    status, doc = await fetch_json(http, agent, "/registry/list")
    assert doc["body"]["register_nodes"] == []


async def test_subscribed_refer_survives_reload(
    agent: Agent, http: aiohttp.ClientSession, demo_app: ServiceServer, tmp_path: Path
) -> None:
    body = app_url_json(demo_app, host="", port=0)
    status, _ = await fetch(http, agent, "/registry/subscribe", "POST", json=body)
    assert status == 200
    assert len(agent.clusters) == 2

    doc = yaml.safe_load((tmp_path / "motan.yaml").read_text())
    doc["motan-refer"]["second-refer"] = {
        "path": "com.example.Other",
        "group": "other",
        "registry": "direct-reg",
    }
    (tmp_path / "motan.yaml").write_text(yaml.safe_dump(doc))
    status, reply = await fetch_json(http, agent, "/reload/clusters", "POST")
    assert status == 200
    assert reply["code"] == 200
    refers = json.loads(reply["body"])
    assert {"demo-refer", "second-refer"} <= set(refers)
    assert refers["second-refer"]["path"] == "com.example.Other"
    assert len(agent.clusters) == 3
    assert any(c.refer.group == DYN_GROUP for c in agent.clusters.values())


async def test_register_errors(
    agent: Agent, http: aiohttp.ClientSession, demo_app: ServiceServer
) -> None:
    async def post(path: str, body: Any) -> tuple[int, Any]:
        return await fetch_json(http, agent, path, "POST", data=json.dumps(body))

    status, doc = await fetch_json(
        http, agent, "/registry/register?x=1", "POST", json=app_url_json(demo_app)
    )
    assert status == 400
    assert doc["code"] == 400
    assert "query string" in doc["message"]
    body = app_url_json(demo_app, host="", port=0)
    status, doc = await fetch_json(http, agent, "/registry/subscribe?token=t", "POST", json=body)
    assert (status, doc["code"]) == (400, 400)
    assert "query string" in doc["message"]
    assert len(agent.clusters) == 1

    assert await post("/registry/register", app_url_json(demo_app, registry="zookeeper://x:1")) == (
        400,
        {"code": 400, "message": "registry not found"},
    )
    status, doc = await post("/registry/register", {**app_url_json(demo_app), "port": 0})
    assert status == 400
    assert "port" in doc["message"]
    status, doc = await post("/registry/register", {**app_url_json(demo_app), "path": ""})
    assert (status, doc["code"]) == (400, 400)
    status, doc = await post("/registry/register", {**app_url_json(demo_app), "group": " , "})
    assert status == 400
    status, doc = await post("/registry/register", {**app_url_json(demo_app), "port": "80"})
    assert status == 400
    status, doc = await post("/registry/register", [1, 2])
    assert status == 400
    status, text = await fetch(http, agent, "/registry/register", "POST", data=b"{not json")
    assert status == 400
    assert json.loads(text)["message"].startswith("invalid service URL")
    assert agent.dynamic_services == []
    assert await fetch_json(http, agent, "/registry/list") == (
        200,
        {"code": 200, "message": "ok", "body": {"register_nodes": [], "subscribe_nodes": []}},
    )


async def test_register_fans_out_groups_and_proxy_registry_url_string(
    agent: Agent, http: aiohttp.ClientSession, demo_app: ServiceServer
) -> None:
    body = app_url_json(demo_app, group=f"{DYN_GROUP},second,{DYN_GROUP}")
    body["parameters"] = {
        "proxyRegistryUrlString": "embedded%3A%2F%2F%3A0%2F%3Fgroup%3Dx",
        "filter": "accessLog,af_metrics",
    }
    status, _ = await fetch(http, agent, "/registry/register", "POST", json=body)
    assert status == 200
    assert sorted(u.group for u in agent.dynamic_services) == [DYN_GROUP, "second"]
    assert {u.get("filter") for u in agent.dynamic_services} == {"metrics"}


async def test_recover_replays_registry_snapshot(
    tmp_path: Path,
    direct_app: ServiceServer,
    demo_app: ServiceServer,
    make_agent: AgentFactory,
    http: aiohttp.ClientSession,
) -> None:
    config = loopback_config(write_config(tmp_path, _port(direct_app)))
    first = await make_agent(config)
    status, _ = await fetch(http, first, "/registry/register", "POST", json=app_url_json(demo_app))
    assert status == 200
    body = app_url_json(demo_app, host="", port=0)
    status, _ = await fetch(http, first, "/registry/subscribe", "POST", json=body)
    assert status == 200
    await first.stop(drain=False)

    second = await make_agent(config, recover=True)
    assert [u.group for u in second.dynamic_services] == [DYN_GROUP]
    assert any(c.refer.group == DYN_GROUP for c in second.clusters.values())
    status, doc = await fetch_json(http, second, "/registry/list")
    assert len(doc["body"]["register_nodes"]) == 1
    assert len(doc["body"]["subscribe_nodes"]) == 1


# ---------------------------------------------------------------------------- listening


async def test_port_range_skips_busy_ports(
    tmp_path: Path,
    direct_app: ServiceServer,
    make_agent: AgentFactory,
    http: aiohttp.ClientSession,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        first = busy.getsockname()[1]
        last = min(first + 50, 65535)
        config = loopback_config(
            write_config(tmp_path, _port(direct_app)), management_port_range=(first, last)
        )
        agent = await make_agent(config)
        assert agent.management_address is not None
        assert first < agent.management_address[1] <= last
        assert await fetch(http, agent, "/version") == (200, VERSION)


async def test_unix_socket(
    tmp_path: Path, direct_app: ServiceServer, make_agent: AgentFactory
) -> None:
    sock = str(tmp_path / "mgmt.sock")
    config = loopback_config(
        write_config(tmp_path, _port(direct_app)), management_unix_sock=sock, mport=8765
    )
    agent = await make_agent(config)
    assert agent.management_address == (sock, 8765)
    assert agent.management is not None
    assert agent.management.token_required is False
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock)) as session:
        async with session.get("http://agent/200") as resp:
            assert (resp.status, await resp.text()) == (200, "ok.")
        async with session.get("http://agent/") as resp:
            assert resp.status == 200
    await agent.stop(drain=False)
    assert not Path(sock).exists()


# ---------------------------------------------------------------------------- permission


@pytest.mark.parametrize(
    ("host", "needed"),
    [
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("::1", False),
        ("[::1]", False),
        ("localhost", False),
        (None, False),
        ("0.0.0.0", True),
        ("", True),
        ("::", True),
        ("10.1.2.3", True),
        ("192.168.0.1", True),
        ("agent.example.com", True),
    ],
)
def test_token_required_beyond_loopback(host: str | None, needed: bool) -> None:
    assert token_required(host) is needed
    if host is not None:
        assert is_loopback_host(host) is not needed


def test_token_sources_and_comparison() -> None:
    assert configured_token({"managementToken": "a"}, {TOKEN_ENV: "b"}) == "a"
    assert configured_token({}, {TOKEN_ENV: "b"}) == "b"
    assert configured_token({}, {}) == ""
    assert token_matches("secret", "secret")
    assert not token_matches("secret", "Secret")
    assert not token_matches("secret", None)
    assert not token_matches("", "")


async def test_beyond_loopback_without_token_refuses_to_start(
    tmp_path: Path, direct_app: ServiceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    config = loopback_config(write_config(tmp_path, _port(direct_app)))
    params = {**config.agent.params, "managementHost": "0.0.0.0"}
    config = dataclasses.replace(config, agent=dataclasses.replace(config.agent, params=params))
    server = ManagementServer(Agent(config))
    with pytest.raises(AgentError, match="managementToken"):
        await server.start()
    assert server.address is None


async def test_token_enforced_on_mutating_paths(
    agent: Agent,
    http: aiohttp.ClientSession,
    demo_app: ServiceServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = agent.management
    assert isinstance(server, ManagementServer)
    assert server.token_required is False  # bound on loopback
    server.token_required = True  # as if bound beyond loopback
    server.token = "s3cret"

    for path in ("/200", "/503", "/switcher/set?name=feature.one&value=false", "/reload/clusters"):
        assert await fetch(http, agent, path) == (403, PERMISSION_DENIED), path
        status, _ = await fetch(http, agent, path, headers={"Token": "wrong"})
        assert status == 403
    for path in ("/registry/register", "/registry/unregister", "/registry/subscribe"):
        assert await fetch(http, agent, path, "POST", json=app_url_json(demo_app)) == (
            403,
            PERMISSION_DENIED,
        )
    assert agent.status == 503
    assert agent.switchers.get("feature.one") is True
    assert agent.dynamic_services == []

    assert await fetch(http, agent, "/200", headers={"token": "s3cret"}) == (200, "ok.")
    assert await fetch(http, agent, "/503?token=s3cret") == (200, "ok.")
    status, _ = await fetch(
        http,
        agent,
        "/registry/register",
        "POST",
        json=app_url_json(demo_app),
        headers={"Token": "s3cret"},
    )
    assert status == 200
    # reads never need the token
    assert await fetch(http, agent, "/version") == (200, VERSION)
    assert (await fetch(http, agent, "/switcher/getAll"))[0] == 200


# ---------------------------------------------------------------------------- JSON forms


def test_url_json_round_trip() -> None:
    url = URL("motan2", "10.0.0.1", 8100, "svc", "g", {"a": "1", "registry": "r"})
    assert url_from_json(url_to_json(url)) == url
    assert url_from_json({"path": "svc", "parameters": {"group": "pg", "n": 3, "b": True}}) == URL(
        "motan2", "", 0, "svc", "pg", {"n": "3", "b": "true"}
    )
    bad: Any
    for bad in (None, [], {"port": -1}, {"port": True}, {"parameters": []}, {"path": 1}):
        with pytest.raises(ValueError):
            url_from_json(bad)
    with pytest.raises(ValueError):
        url_from_json({"parameters": {"x": {"nested": 1}}})


async def test_a_configured_token_is_needed_on_loopback_too_and_never_shown(
    tmp_path: Path,
    direct_app: ServiceServer,
    make_agent: AgentFactory,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    path = write_config(tmp_path, _port(direct_app))
    doc = yaml.safe_load(path.read_text())
    doc["motan-agent"]["managementToken"] = "tok-9f3a"
    path.write_text(yaml.safe_dump(doc))
    caplog.set_level(logging.DEBUG)
    agent = await make_agent(loopback_config(path))
    server = agent.management
    assert isinstance(server, ManagementServer)
    assert server.token_required is True  # bound on loopback, but a token is configured
    assert await fetch(http, agent, "/503") == (403, PERMISSION_DENIED)
    assert await fetch(http, agent, "/200?token=wrong") == (403, PERMISSION_DENIED)
    assert agent.status == 503
    assert await fetch(http, agent, "/200?token=tok-9f3a") == (200, "ok.")
    assert await fetch(http, agent, "/503", headers={"Token": "tok-9f3a"}) == (200, "ok.")
    status, text = await fetch(http, agent, "/getConfig")
    assert status == 200
    assert "managementToken: '***'" in text and "tok-9f3a" not in text
    assert "tok-9f3a" not in caplog.text


def test_logged_paths_hide_the_token() -> None:
    assert redact_path("/200?a=1&token=s3cret&b=2") == "/200?a=1&token=***&b=2"
    assert redact_path("/503?TOKEN=x") == "/503?TOKEN=***"
    assert redact_path("/status") == "/status"


# ---------------------------------------------------------------- permission: every path

#: the paths that only read; they answer without the token (see docs/security.md)
READ_ONLY_PATHS = {
    "/version",
    "/status",
    "/registry/status",
    "/getConfig",
    "/getReferService",
    "/getAllService",
    "/runtime/info",
    "/switcher/get",
    "/switcher/getAll",
    "/registry/list",
    "/registry/info",
    "/logConfig/get",
    "/metrics",
    "/debug/graph",
}


async def test_every_path_is_either_mutating_or_read_only_and_treated_so(
    agent: Agent, http: aiohttp.ClientSession
) -> None:
    server = agent.management
    assert isinstance(server, ManagementServer)
    # a new path must be classified here: mutating (token) or read-only (open)
    assert set(server._routes) == MUTATING_PATHS | READ_ONLY_PATHS
    assert not MUTATING_PATHS & READ_ONLY_PATHS
    server.token_required = True  # as when a token is configured or bound beyond loopback
    server.token = "s3cret"
    for path in sorted(MUTATING_PATHS):
        for headers in ({}, {"Token": "wrong"}, {"Token": "S3CRET"}, {"Token": ""}):
            assert await fetch(http, agent, path, "POST", headers=headers) == (
                403,
                PERMISSION_DENIED,
            ), (path, headers)
        status, text = await fetch(http, agent, path, "POST", headers={"Token": "s3cret"})
        assert text != PERMISSION_DENIED and status != 403, path
    for path in sorted(READ_ONLY_PATHS | {"/", "/no/such/path"}):
        status, text = await fetch(http, agent, path)
        assert text != PERMISSION_DENIED and status != 403, path


async def test_the_token_is_compared_in_constant_time(
    agent: Agent, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # management calls hmac.compare_digest
    server = agent.management
    assert isinstance(server, ManagementServer)
    server.token_required = True
    server.token = "s3cret"
    # wrong tokens of every length, a prefix and the right one: all through compare_digest
    for given in ("x", "s3cre", "s3cretX", "s" * 200, "s3cret"):
        await fetch(http, agent, "/503", headers={"Token": given})
    mine = [c for c in compared if c[0] == b"s3cret"]  # (no other caller is expected)
    assert mine == [
        (b"s3cret", given.encode()) for given in ("x", "s3cre", "s3cretX", "s" * 200, "s3cret")
    ]
    assert agent.status == 503


def test_logged_paths_hide_the_token_however_its_name_is_written() -> None:
    cases = {
        "/200?%74oken=s3cret": "/200?%74oken=***",
        "/200?to%6Ben=s3cret&a=1": "/200?to%6Ben=***&a=1",
        "/200?Token=s3cret&token=s3cret": "/200?Token=***&token=***",
        "/200?a=token%3Ds3cret": "/200?a=token%3Ds3cret",  # a value, not a token parameter
        "/200?token": "/200?token",
        "/200?token=": "/200?token=***",
        "/status?tokenx=1": "/status?tokenx=1",
    }
    for path, shown in cases.items():
        assert redact_path(path) == shown, path
    # the parser reads %74oken as token: it authenticates, so it must be hidden
    from motanmesh.agent.http_server import HttpRequest  # noqa: PLC0415

    assert HttpRequest("GET", "/200?%74oken=s3cret", {}, "").query == {"token": "s3cret"}
