"""An agent whose embedded registry file is unusable at start: it serves, says why in its
log and ``/registry/status``, and registers and discovers once the file is usable."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from motanmesh.agent.agent import Agent
from motanmesh.demo.service import DEMO_GROUP, DEMO_SERVICE
from motanmesh.sdk import MotanClient
from tests.e2e.harness import registry_nodes
from tests.inprocess import agent_section, demo_service, export_port, start_agent

CORRUPT = b"this is not a database" * 100


def _get_blocking(agent: Agent, path: str) -> tuple[int, str]:
    assert agent.management_address is not None
    host, port = agent.management_address
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()


async def _get(agent: Agent, path: str) -> tuple[int, str]:
    """The management API of an in-process agent, from another thread."""
    return await asyncio.to_thread(_get_blocking, agent, path)


async def _wait(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


def _servers(db: Path) -> set[str]:
    """The available demo providers in the registry file; none while it is not there yet."""
    try:
        return registry_nodes(db, DEMO_GROUP, DEMO_SERVICE, "server")
    except sqlite3.Error:
        return set()


async def _call(agent: Agent) -> str:
    assert agent.client_address is not None
    host, port = agent.client_address
    async with MotanClient(f"{host}:{port}", application="caller", timeout=10) as client:
        return str(await client.call(DEMO_SERVICE, "hello", "x", group=DEMO_GROUP))


async def test_corrupt_registry_file_then_repaired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "registry.db"
    db.write_bytes(CORRUPT)
    registry = {"local": {"protocol": "embedded", "file": str(db)}}
    server_doc = {
        "motan-agent": agent_section(tmp_path, "server-app"),
        "motan-registry": registry,
        "motan-service": {"demo": demo_service()},
    }
    client_doc = {
        "motan-agent": agent_section(tmp_path, "client-app"),
        "motan-registry": registry,
        "motan-refer": {"demo": {"path": DEMO_SERVICE, "group": DEMO_GROUP, "registry": "local"}},
    }
    with caplog.at_level(logging.ERROR, logger="motanmesh.agent"):
        server = await start_agent(tmp_path / "server.yaml", server_doc)
        client = await start_agent(tmp_path / "client.yaml", client_doc)
    try:
        assert any(
            "did not start" in r.getMessage() and str(db) in r.getMessage() for r in caplog.records
        )
        # the server agent serves its export port and its management API meanwhile
        async with MotanClient(f"127.0.0.1:{export_port(server)}", application="a") as direct:
            assert await direct.call(DEMO_SERVICE, "hello", "x", group=DEMO_GROUP) == "hello x"
        assert await _get(server, "/200") == (200, "ok.")
        _status, body = await _get(server, "/registry/status")
        rows = json.loads(body)
        assert "not started" in json.dumps(rows), body
        assert "not a database" in json.dumps(rows), body
        assert db.read_bytes() == CORRUPT  # nothing overwrote the operator's file

        # the operator moves the broken file away: both agents start the registry on their
        # own, the server's service appears available, and the client finds it
        db.rename(tmp_path / "registry.db.broken")
        await _wait(
            "the service to be registered as available",
            lambda: _servers(db) == {f"127.0.0.1:{export_port(server)}"},
        )
        await _wait(
            "the client agent to see the provider",
            lambda: bool(client.clusters["demo"].endpoints),
        )
        assert await _call(client) == "hello x"
        _status, body = await _get(server, "/registry/status")
        assert "not started" not in body, body
    finally:
        await client.stop(drain=False)
        await server.stop(drain=False)
