"""A filter shipped as its own package (``examples/filter-plugin``): ``pip install`` it and
a real agent process finds it by its entry point and runs it."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from motanmesh.filters import filter_class
from motanmesh.sdk import MotanClient
from motanmesh.sdk.errors import MotanBizError, MotanRemoteError
from tests.e2e.harness import (
    DATA_DIR,
    DEMO_GROUP,
    DEMO_SERVICE,
    REPO_ROOT,
    Mesh,
    agent_section,
    demo_export,
    embedded_registry,
)

PLUGIN = REPO_ROOT / "examples" / "filter-plugin"


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    m = Mesh(tmp_path)
    try:
        yield m
    finally:
        m.close()


def test_an_installed_plugin_filter_runs_in_a_real_agent(mesh: Mesh, tmp_path: Path) -> None:
    assert filter_class("methodAcl") is None  # not installed where the tests run
    target = tmp_path / "site"
    source = shutil.copytree(PLUGIN, tmp_path / "plugin")  # building writes next to it
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run(
        [*pip, "--no-build-isolation", "--no-index", "--target", str(target), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert list(target.glob("motanmesh_method_acl-*.dist-info"))

    _proc, backend = mesh.demo_service("demo")
    export = {
        **demo_export(backend),
        "filter": "methodAcl",
        "methodAcl.deny": "fail,sleep",
    }
    server = mesh.agent(
        "server",
        {
            "motan-agent": agent_section("server"),
            "motan-registry": {"local": embedded_registry(mesh.registry)},
            "motan-service": {"demo": export},
        },
        env={"PYTHONPATH": os.pathsep.join([str(target), str(DATA_DIR)])},
    )
    eport = str(export["export"]).rpartition(":")[2]

    async def calls() -> None:
        async with MotanClient(f"127.0.0.1:{eport}", group=DEMO_GROUP, timeout=10) as c:
            assert await c.call(DEMO_SERVICE, "hello", "plugin") == "hello plugin"
            with pytest.raises(MotanRemoteError) as denied:
                await c.call(DEMO_SERVICE, "fail", "never reaches the service")
            assert not isinstance(denied.value, MotanBizError)
            assert denied.value.errcode == 403
            assert denied.value.errmsg == "method fail is denied by methodAcl"

    asyncio.run(calls())
    info = server.management_json("/runtime/info?keys=servers")
    filters = info["servers"]["agentPortServer"][eport]["filters"]
    (acl,) = [f for fs in filters.values() for f in fs if f["name"] == "methodAcl"]
    assert acl["denied"] == ["fail", "sleep"] and acl["refused"] == 1
    assert "unknown filter" not in server.output()
