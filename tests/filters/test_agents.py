"""Filters in real agents: a client agent and a server agent on loopback sockets, in front
of the demo service. Test filters record what they see."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from motanmesh.agent.agent import Agent
from motanmesh.demo.service import DEMO_GROUP, DEMO_SERVICE
from motanmesh.filters import Call, Filter, Handler, error_kind, register_filter
from motanmesh.sdk import MotanClient
from motanmesh.sdk.errors import MotanBizError, MotanRemoteError
from motanmesh.wire.frame import Frame
from tests.inprocess import agent_section, demo_service, export_port, start_agent

SEEN: list[dict[str, Any]] = []


class Seen(Filter):
    """Records each call and its outcome."""

    name = "testSeen"
    index = 2

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        call.on_complete(self._done)
        proceed(call)

    def _done(self, call: Call, response: Frame | None, exc: BaseException | None) -> None:
        SEEN.append(
            {
                "role": call.role,
                "peer": call.peer,
                "service": call.service,
                "method": call.method,
                "caller": call.caller,
                "error": error_kind(response, exc),
                "marked": call.request.metadata.get("x-test-mark", ""),
                "size": call.response_size,
            }
        )


class ClusterSeen(Seen):
    name = "testClusterSeen"
    kind = "cluster"


class Mark(Filter):
    """Adds a metadata key to what the client agent sends."""

    name = "testMark"
    index = 1

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        call.changes["x-test-mark"] = "yes"
        proceed(call)


class Deny(Filter):
    name = "testDeny"
    index = 1

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        if call.method == "hello":
            call.fail(403, f"denied for {call.caller or 'nobody'}")
            return
        proceed(call)


class Boom(Filter):
    name = "testBoom"
    index = 3

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        if call.method == "echo":
            raise RuntimeError("filter bug")
        proceed(call)


for _cls in (Seen, ClusterSeen, Mark, Deny, Boom):
    register_filter(_cls)


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[tuple[Agent, Agent, MotanClient]]:
    """(server agent, client agent, a client of the client agent); the server agent's
    service has ``testSeen``; the refer has ``testClusterSeen``, ``testSeen``, ``testMark``,
    ``testDeny`` (for ``hello`` only... unless removed) and ``testBoom``."""
    SEEN.clear()
    server_doc = {
        "motan-agent": agent_section(tmp_path, "server-app"),
        "motan-registry": {
            "local": {"protocol": "embedded", "file": str(tmp_path / "server.db")},
        },
        "motan-service": {"demo": demo_service(filter="testSeen")},
    }
    server = await start_agent(tmp_path / "server.yaml", server_doc)
    eport = export_port(server)
    client_doc = {
        "motan-agent": {
            **agent_section(tmp_path, "client-app"),
            "defaultFilter": "testMark,testClusterSeen",
        },
        "motan-registry": {"direct": {"protocol": "direct", "address": f"127.0.0.1:{eport}"}},
        "motan-refer": {
            "demo": {
                "path": DEMO_SERVICE,
                "group": DEMO_GROUP,
                "registry": "direct",
                "filter": "testSeen,testBoom",
            },
            "plain": {
                "path": "com.example.Plain",
                "group": DEMO_GROUP,
                "registry": "direct",
                "disableDefaultFilter": "testMark,testClusterSeen",
            },
        },
    }
    client_agent = await start_agent(tmp_path / "client.yaml", client_doc)
    assert client_agent.client_address is not None
    host, port = client_agent.client_address
    async with MotanClient(f"{host}:{port}", application="caller-app") as client:
        yield server, client_agent, client
    await client_agent.stop(drain=False)
    await server.stop(drain=False)


async def test_each_side_runs_its_filters_around_the_call(
    mesh: tuple[Agent, Agent, MotanClient],
) -> None:
    server, _client_agent, client = mesh
    assert await client.call(DEMO_SERVICE, "hello", "mesh", group=DEMO_GROUP) == "hello mesh"
    eport = export_port(server)
    # innermost first: the server agent's filter, the client endpoint's, then the cluster's
    assert [(s["role"], s["peer"] != "") for s in SEEN] == [
        ("motan-server-agent", True),
        ("motan-client-agent", True),
        ("motan-client-agent", False),
    ]
    server_seen, endpoint_seen, cluster_seen = SEEN
    assert endpoint_seen["peer"] == f"127.0.0.1:{eport}"
    assert cluster_seen["peer"] == ""
    for seen in SEEN:
        assert (seen["service"], seen["method"], seen["caller"]) == (
            DEMO_SERVICE,
            "hello",
            "caller-app",
        )
        assert seen["error"] is None
    # what the client agent's filter added reached the server agent
    assert server_seen["marked"] == "yes"
    assert server_seen["size"] > 0


async def test_errors_are_classified_on_both_sides(
    mesh: tuple[Agent, Agent, MotanClient],
) -> None:
    _server, _client_agent, client = mesh
    with pytest.raises(MotanBizError):
        await client.call(DEMO_SERVICE, "fail", "bad", group=DEMO_GROUP)
    assert [s["error"] for s in SEEN] == ["biz", "biz", "biz"]


async def test_a_raising_filter_answers_with_an_error_and_the_agent_serves_on(
    mesh: tuple[Agent, Agent, MotanClient],
) -> None:
    _server, _client_agent, client = mesh
    with pytest.raises(MotanRemoteError, match="testBoom"):
        await client.call(DEMO_SERVICE, "echo", "x", group=DEMO_GROUP)
    # the call never reached the server agent; the endpoint and cluster filters saw an error
    assert [(s["role"], s["error"]) for s in SEEN] == [
        ("motan-client-agent", "other"),
        ("motan-client-agent", "other"),
    ]
    assert await client.call(DEMO_SERVICE, "hello", "again", group=DEMO_GROUP) == "hello again"


async def test_a_filter_can_refuse_a_call(tmp_path: Path) -> None:
    SEEN.clear()
    doc = {
        "motan-agent": agent_section(tmp_path, "deny-app"),
        "motan-registry": {"local": {"protocol": "embedded", "file": str(tmp_path / "d.db")}},
        "motan-service": {"demo": demo_service(filter="testSeen,testDeny,unknownFilterName")},
    }
    agent = await start_agent(tmp_path / "deny.yaml", doc)
    try:
        eport = export_port(agent)
        async with MotanClient(f"127.0.0.1:{eport}", application="who") as client:
            with pytest.raises(MotanRemoteError, match="denied for who") as info:
                await client.call(DEMO_SERVICE, "hello", "x", group=DEMO_GROUP)
            assert info.value.errcode == 403
            assert await client.call(DEMO_SERVICE, "echo", "y", group=DEMO_GROUP) == "y"
    finally:
        await agent.stop(drain=False)
    # testSeen (index 2) is inside testDeny (index 1): it saw only the call let through
    assert [s["method"] for s in SEEN] == ["echo"]


async def test_refers_without_filters_keep_the_plain_path(
    mesh: tuple[Agent, Agent, MotanClient],
) -> None:
    _server, client_agent, _client = mesh
    plain = client_agent.clusters["plain"]
    assert not plain.filters
    assert plain.runtime_info()["filters"] == []
    demo = client_agent.clusters["demo"]
    assert [f["name"] for f in demo.runtime_info()["filters"]] == [
        "testClusterSeen",
        "testMark",
        "testSeen",
        "testBoom",
    ]
