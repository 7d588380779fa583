"""The agent and registry access policies, in process on real sockets and a real embedded
registry file: a policy already in the registry when the agent starts is in force before
the first call; a malformed one at start leaves the configured policy in force."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from motanmesh.agent.agent import Agent
from motanmesh.agent.filtering import FilteredProvider
from motanmesh.demo.service import DEMO_GROUP, DEMO_SERVICE
from motanmesh.filters.auth import AuthFilter
from motanmesh.registry.embedded import EmbeddedRegistry
from motanmesh.sdk.client import MotanClient
from motanmesh.sdk.errors import MotanBizError
from motanmesh.url import URL
from tests.inprocess import agent_section, demo_service, export_port, start_agent


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[EmbeddedRegistry]:
    reg = EmbeddedRegistry(URL("embedded", parameters={"file": str(tmp_path / "reg.db")}))
    await reg.start()
    try:
        yield reg
    finally:
        await reg.close()


def config(tmp_path: Path) -> dict[str, Any]:
    return {
        "motan-agent": agent_section(tmp_path, "orders"),
        "motan-registry": {"local": {"protocol": "embedded", "file": str(tmp_path / "reg.db")}},
        "motan-service": {"demo": demo_service(filter="auth", **{"auth.allow": "web"})},
    }


def auth_filter(agent: Agent) -> AuthFilter:
    (provider,) = agent.providers
    assert isinstance(provider, FilteredProvider)
    (auth,) = [f for f in provider.filters.endpoint if isinstance(f, AuthFilter)]
    return auth


async def outcome(agent: Agent, application: str) -> str:
    address = f"127.0.0.1:{export_port(agent)}"
    async with MotanClient(address, application=application, group=DEMO_GROUP) as client:
        try:
            return str(await client.call(DEMO_SERVICE, "hello", "x"))
        except MotanBizError as e:
            assert e.errcode == 403
            return "denied"


async def test_a_policy_in_the_registry_at_start_is_in_force_before_the_first_call(
    tmp_path: Path, registry: EmbeddedRegistry
) -> None:
    await registry.set_auth_policy(DEMO_GROUP, DEMO_SERVICE, '{"allow": ["ops"]}')
    agent = await start_agent(tmp_path / "agent.yaml", config(tmp_path))
    try:
        assert auth_filter(agent).policy.source.startswith("registry embedded")
        assert await outcome(agent, "web") == "denied"
        assert (await outcome(agent, "ops")).startswith("hello")
    finally:
        await agent.stop(drain=False)
    # stopped: the watch is gone with the agent's registries
    assert agent.auth_policies._followed == {}


async def test_a_malformed_policy_at_start_leaves_the_configured_one(
    tmp_path: Path, registry: EmbeddedRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "motanmesh.agent.auth")
    await registry.set_auth_policy(DEMO_GROUP, DEMO_SERVICE, '{"allow": "web", "x": 1}')
    agent = await start_agent(tmp_path / "agent.yaml", config(tmp_path))
    try:
        assert auth_filter(agent).policy.source == "config"
        assert (await outcome(agent, "web")).startswith("hello")
        assert await outcome(agent, "ops") == "denied"
        (line,) = [r.getMessage() for r in caplog.records]
        assert f"/motan/{DEMO_GROUP}/{DEMO_SERVICE}/auth" in line
        assert "unknown key(s) 'x'" in line and "policy from config stays in force" in line
    finally:
        await agent.stop(drain=False)
