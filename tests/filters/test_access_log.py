"""``accessLog`` and ``clusterAccessLog`` in real agent processes: the lines they write match
the Go agent's format (``log/log.go``: the zap console encoder, ISO8601 time, a tab, the
``|``-separated fields; with ``log_structured`` the fields as a spaced JSON object after two
tabs), the ``/logConfig`` switch, and the drop counter of a full buffer."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from motanmesh.filters import error_kind
from motanmesh.sdk import MotanClient
from motanmesh.wire.frame import M_EXCEPTION, M_METHOD_DESC, Frame
from tests.e2e.harness import (
    DEMO_GROUP,
    DEMO_SERVICE,
    AgentProcess,
    Mesh,
    agent_section,
    demo_export,
    embedded_registry,
    refer,
    set_available,
    wait_for,
)

#: zap's ISO8601TimeEncoder: 2006-01-02T15:04:05.000Z0700
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:Z|[+-]\d{4})"
NUM = r"\d+"
ACCESS_FILE = "motanmesh-access.log"


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    m = Mesh(tmp_path)
    try:
        yield m
    finally:
        m.close()


def _plain(fields: list[str]) -> re.Pattern[str]:
    """One plain line: the time, a tab, the fields joined by ``|`` (each either a literal
    or a regular expression given as ``re:...``)."""
    parts = [f[3:] if f.startswith("re:") else re.escape(f) for f in fields]
    return re.compile(TIME + "\t" + re.escape("|").join(parts) + "\n")


def _lines(path: Path, count: int) -> list[str]:
    wait_for(
        lambda: path.exists() and path.read_text().count("\n") >= count,
        f"{count} lines in {path}",
    )
    return path.read_text().splitlines(keepends=True)


def _start(
    mesh: Mesh, *, server_extra: dict[str, Any], client_extra: dict[str, Any]
) -> tuple[AgentProcess, AgentProcess]:
    _proc, backend = mesh.demo_service("demo")
    server_conf = {
        "motan-agent": agent_section("server", log_dir="./server-logs", **server_extra),
        "motan-registry": {"local": embedded_registry(mesh.registry)},
        "motan-service": {"demo": {**demo_export(backend), "filter": "accessLog"}},
    }
    server = mesh.agent("server", server_conf)
    set_available(server)
    client_conf = {
        "motan-agent": agent_section("client", log_dir="./client-logs", **client_extra),
        "motan-registry": {"local": embedded_registry(mesh.registry)},
        "motan-refer": {
            "demo": refer(DEMO_SERVICE, DEMO_GROUP, filter="accessLog,clusterAccessLog")
        },
    }
    client = mesh.agent("client", client_conf)
    return server, client


async def _call(address: str, method: str, arg: str, desc: str = "") -> tuple[Frame, Frame]:
    async with MotanClient(address, application="log-app", group=DEMO_GROUP, timeout=10) as client:
        attachments = {M_METHOD_DESC: desc} if desc else None
        request = client.request(DEMO_SERVICE, method, [arg], attachments=attachments)
        for _ in range(100):  # the refer finds its provider shortly after the agent starts
            response = await client.call_frame(request)
            if error_kind(response, None) != "other":  # answered by the service
                break
            await asyncio.sleep(0.1)
        return request, response


def test_plain_lines_match_the_go_format(mesh: Mesh) -> None:
    server, client = _start(mesh, server_extra={}, client_extra={})
    request, response = asyncio.run(_call(client.address, "hello", "mesh", "java.lang.String"))
    assert not response.status
    req_size, res_size = str(len(request.body)), str(len(response.body))
    rid = "re:" + NUM  # the id the client library gave the request on its connection
    server_log = mesh.workdir / "server-logs" / ACCESS_FILE
    client_log = mesh.workdir / "client-logs" / ACCESS_FILE
    (server_line,) = _lines(server_log, 1)
    assert _plain(
        [
            "accessLog",
            "server-agent",
            "re:" + NUM,  # the client agent's own request id towards the server agent
            DEMO_SERVICE,
            "hello",
            "java.lang.String",
            "127.0.0.1",  # the caller's host metadata
            req_size,
            res_size,
            "re:" + NUM,
            "re:" + NUM,
            "true",
            "200",
            "",
            "",
        ]
    ).fullmatch(server_line), server_line
    endpoint_line, cluster_line = _lines(client_log, 2)
    provider = f"127.0.0.1:{server_conf_port(server)}"
    common = [DEMO_SERVICE, "hello", "java.lang.String"]
    tail = [req_size, res_size, "re:" + NUM, "re:" + NUM, "true", "200", "", ""]
    assert _plain(["accessLog", "client-agent", rid, *common, provider, *tail]).fullmatch(
        endpoint_line
    ), endpoint_line
    assert _plain(["clusterAccessLog", "client-agent", rid, *common, "", *tail]).fullmatch(
        cluster_line
    ), cluster_line
    assert endpoint_line.split("|")[2] == cluster_line.split("|")[2]

    # a business exception: the exception as Go's encoding/json writes it, no response size
    _request, failed = asyncio.run(_call(client.address, "fail", "bad <input> & more"))
    assert failed.status
    exception = '{"errcode":500,"errmsg":"bad \\u003cinput\\u003e \\u0026 more","errtype":2}'
    assert json.loads(failed.metadata[M_EXCEPTION])["errmsg"] == "bad <input> & more"
    lines = _lines(client_log, 4)[2:]
    for name, line in zip(("accessLog", "clusterAccessLog"), lines, strict=True):
        assert _plain(
            [
                name,
                "client-agent",
                "re:" + NUM,
                DEMO_SERVICE,
                "fail",
                "",
                provider if name == "accessLog" else "",
                "re:" + NUM,
                "0",
                "re:" + NUM,
                "re:" + NUM,
                "false",
                "500",
                exception,
                "",
            ]
        ).fullmatch(line), line

    # /logConfig: the access switch stops the lines at once, and comes back
    status, body = client.management("/logConfig/set?access=false")
    assert status == 200
    assert json.loads(body) == {"code": 200, "body": "set accessLog status:false"}
    assert (
        json.loads(json.loads(client.management("/logConfig/get")[1])["body"])["accessLog"] is False
    )
    asyncio.run(_call(client.address, "hello", "quiet"))
    client.management("/logConfig/set?access=true")
    asyncio.run(_call(client.address, "hello", "loud"))
    lines = _lines(client_log, 6)
    assert len(lines) == 6
    assert all("|hello|" in line for line in lines[4:])
    server_lines = _lines(server_log, 4)  # the server agent kept logging all along
    assert len(server_lines) == 4


def server_conf_port(server: AgentProcess) -> int:
    """The export port of the server agent's only service."""
    info = server.management_json("/runtime/info?keys=servers")
    (port,) = info["servers"]["agentPortServer"]
    return int(port)


def test_structured_lines_match_the_go_format(mesh: Mesh) -> None:
    _server, client = _start(
        mesh, server_extra={"log_structured": True}, client_extra={"log_structured": True}
    )
    request, response = asyncio.run(_call(client.address, "hello", 'a "quoted"\tname'))
    client_log = mesh.workdir / "client-logs" / ACCESS_FILE
    endpoint_line, _cluster_line = _lines(client_log, 2)
    time_part, empty, fields = endpoint_line.rstrip("\n").split("\t")
    assert re.fullmatch(TIME, time_part) and empty == ""
    # zap's console encoder: keys in the Go order, "key": value, separated by ", "
    keys = re.findall(r'"(\w+)": ', fields)
    assert keys == [
        "filterName",
        "role",
        "requestID",
        "service",
        "method",
        "desc",
        "remoteAddress",
        "reqSize",
        "resSize",
        "bizTime",
        "totalTime",
        "success",
        "responseCode",
        "exception",
        "upstreamCode",
    ]
    assert ", " in fields and '":"' not in fields
    doc = json.loads(fields)
    assert doc["filterName"] == "accessLog" and doc["role"] == "client-agent"
    assert isinstance(doc["requestID"], int)
    assert doc["reqSize"] == len(request.body) and doc["resSize"] == len(response.body)
    assert doc["success"] is True and doc["responseCode"] == "200"
    assert isinstance(doc["bizTime"], int) and isinstance(doc["totalTime"], int)
    server_line = _lines(mesh.workdir / "server-logs" / ACCESS_FILE, 1)[0]
    assert json.loads(server_line.split("\t")[2])["role"] == "server-agent"


def test_a_full_buffer_drops_and_counts_lines(mesh: Mesh) -> None:
    _server, client = _start(mesh, server_extra={}, client_extra={"log_buffer_size": 1})
    calls = 200

    async def burst() -> None:
        async with MotanClient(
            client.address, application="burst", group=DEMO_GROUP, timeout=10
        ) as c:
            await c.call(DEMO_SERVICE, "hello", "warm")  # wait for the provider
            await asyncio.gather(*(c.call(DEMO_SERVICE, "hello", str(i)) for i in range(calls)))

    asyncio.run(burst())

    def counters() -> dict[str, int]:
        info = client.management_json("/runtime/info?keys=clusters")
        filters = info["clusters"]["demo"]["filters"]
        return next(f["accessLog"] for f in filters if f["name"] == "accessLog")

    wait_for(lambda: counters()["buffered"] == 0, "the access-log buffer to drain")
    seen = counters()
    # both filters of the refer share one writer: two entries per call (plus the warm-up)
    assert seen["discarded"] > 0
    assert seen["written"] + seen["discarded"] == 2 * (calls + 1)
    lines = (mesh.workdir / "client-logs" / ACCESS_FILE).read_text().splitlines()
    assert len(lines) == seen["written"]
