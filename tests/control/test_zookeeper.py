"""``ctl commands`` against a real ZooKeeper server: the nodes a Go agent or the Java manager
would read and write, checked with a plain kazoo client."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from kazoo.client import KazooClient

from motanmesh.control.audit import AUDIT_GROUP
from tests.control.conftest import run_ctl
from tests.control.test_commands_cli import GO_20_PERCENT, JAVA_MANAGER_DOC, SHIFT_FLAGS
from tests.servers import servers_required
from tests.servers.zookeeper import ZooKeeperServer, free_port, zookeeper_missing

GROUP = "user-rpc-yf"


@pytest.fixture(scope="module")
def server() -> Iterator[ZooKeeperServer]:
    reason = zookeeper_missing()
    if reason is not None:
        if servers_required():
            pytest.fail(f"ZooKeeper is required here: {reason}")
        pytest.skip(reason)
    zk = ZooKeeperServer()
    zk.start()
    try:
        yield zk
    finally:
        zk.close()


@pytest.fixture
def client(server: ZooKeeperServer) -> Iterator[Any]:
    zk = KazooClient(hosts=server.hosts, timeout=10.0)
    zk.start(timeout=15)
    zk.delete("/motan", recursive=True)
    try:
        yield zk
    finally:
        zk.stop()
        zk.close()


@pytest.fixture
def reg_args(server: ZooKeeperServer) -> list[str]:
    return ["--registry", f"zookeeper://{server.hosts}?connectTimeout=15000"]


def _data(client: Any, path: str) -> str | None:
    if client.exists(path) is None:
        return None
    data, _ = client.get(path)
    return bytes(data).decode()


def test_set_show_clear_history(client: Any, reg_args: list[str]) -> None:
    done = run_ctl("commands", "set", *reg_args, "--group", GROUP, *SHIFT_FLAGS)
    assert done.code == 0, str(done)
    assert _data(client, f"/motan/{GROUP}/command") == GO_20_PERCENT

    shown = run_ctl("commands", "show", *reg_args, "--group", GROUP, "--json")
    assert shown.code == 0, str(shown)
    assert shown.json()["raw"] == GO_20_PERCENT

    refused = run_ctl("commands", "set", *reg_args, "--group", GROUP, "--type", "traffic",
                      "--pattern", "*", "--index", "1", "--merge-groups", "x:101")  # fmt: skip
    assert refused.code == 1
    assert _data(client, f"/motan/{GROUP}/command") == GO_20_PERCENT

    cleared = run_ctl("commands", "clear", *reg_args, "--group", GROUP, "--reason", "rollback")
    assert cleared.code == 0, str(cleared)
    assert _data(client, f"/motan/{GROUP}/command") == '{"clientCommandList":[]}'

    history = run_ctl("commands", "history", *reg_args, "--group", GROUP, "--json")
    assert history.code == 0, str(history)
    records = history.json()
    assert [(r["action"], r["remark"]) for r in records] == [
        ("set-command", "shift 20% yf->tc"),
        ("clear", "rollback"),
    ]
    index = json.loads(_data(client, f"/motan/{AUDIT_GROUP}/command") or "")
    assert index["clientCommandList"] == []
    assert index["motanmeshAudit"]["targets"] == [f"group:{GROUP}"]


def test_java_serialized_manager_node_is_read(client: Any, reg_args: list[str]) -> None:
    text = JAVA_MANAGER_DOC.encode()
    client.create(
        f"/motan/{GROUP}/command",
        b"\xac\xed\x00\x05\x74" + struct.pack(">H", len(text)) + text,
        makepath=True,
    )
    shown = run_ctl("commands", "show", *reg_args, "--group", GROUP, "--json")
    assert shown.code == 0, str(shown)
    assert shown.json()["raw"] == JAVA_MANAGER_DOC
    assert shown.json()["document"]["clientCommandList"][0]["pattern"] == "com.weibo.api.*"


def test_unreachable_zookeeper_exits_2() -> None:
    result = run_ctl("commands", "show", "--registry",
                     f"zookeeper://127.0.0.1:{free_port()}?connectTimeout=500",
                     "--group", GROUP)  # fmt: skip
    assert result.code == 2
    assert "not connected" in result.err
