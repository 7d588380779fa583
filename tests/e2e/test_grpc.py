"""gRPC through the mesh, with real processes: a grpcio echo server behind a server agent
(provider ``grpc``), a client agent with its gRPC port, a grpcio client with generated stubs,
and the Motan2 SDK client."""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from motanmesh.sdk.client import BlockingMotanClient
from motanmesh.sdk.errors import MotanRemoteError
from tests.e2e.grpc_echo import READY, SERVICE, compile_stubs, load_stubs
from tests.e2e.harness import (
    Mesh,
    Process,
    child_env,
    client_agent_config,
    export_port,
    free_port,
    refer,
    server_agent_config,
    set_available,
    wait_endpoints,
)

GROUP = "grpc-e2e"
MISSING = "motanmesh.test.Missing"  # a refer whose service nobody exports
DEAD = "motanmesh.test.Dead"  # exported, its gRPC backend not running


@dataclass
class GrpcMesh:
    mesh: Mesh
    pb: Any
    stub: Any
    channel: Any
    client_address: str
    export_address: str
    grpc_address: str


@pytest.fixture(scope="module")
def gm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcMesh]:
    work = tmp_path_factory.mktemp("grpc-mesh")
    stubs = work / "stubs"
    compile_stubs(stubs)
    pb, pb_grpc = load_stubs(stubs)
    mesh = Mesh(work)
    try:
        backend_port = free_port()
        echo = Process(
            "grpc-echo",
            [
                sys.executable,
                str(Path(__file__).with_name("grpc_echo.py")),
                "--port",
                str(backend_port),
                "--name",
                "echo-1",
                "--stubs",
                str(stubs),
            ],
            work,
            child_env(),
            mesh.log("grpc-echo"),
        )
        mesh.procs.append(echo)
        echo.wait_output(READY)
        export = {
            "registry": "local",
            "path": SERVICE,
            "group": GROUP,
            "export": f"motan2:{free_port()}",
            "proxy": f"grpc:{backend_port}",
            "requestTimeout": 3000,
            "mingzSize": 1024 * 1024,  # answers over 1 MiB travel gzipped between the agents
        }
        dead = dict(export, path=DEAD, proxy=f"grpc:{free_port()}")
        server = mesh.agent(
            "server",
            server_agent_config("server", mesh.registry, {"echo": export, "dead": dead}),
        )
        set_available(server)
        config = client_agent_config(
            "client",
            mesh.registry,
            {
                "echo": refer(SERVICE, GROUP, requestTimeout=3000),
                "dead": refer(DEAD, GROUP, requestTimeout=3000),
                "missing": refer(MISSING, GROUP),
            },
        )
        grpc_port = free_port()
        config["motan-agent"]["grpcPort"] = grpc_port
        client = mesh.agent("client", config)
        address = f"127.0.0.1:{export_port(export)}"
        wait_endpoints(client, "echo", {address})
        wait_endpoints(client, "dead", {f"127.0.0.1:{export_port(dead)}"})
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        try:
            yield GrpcMesh(
                mesh,
                pb,
                pb_grpc.EchoStub(channel),
                channel,
                client.address,
                address,
                f"127.0.0.1:{grpc_port}",
            )
        finally:
            channel.close()
    finally:
        mesh.close()


def _metadata(pairs: Any) -> dict[str, Any]:
    return dict(pairs or ())


def test_unary_call_and_metadata_both_ways(gm: GrpcMesh) -> None:
    reply, call = gm.stub.Say.with_call(
        gm.pb.EchoRequest(text="hello mesh"),
        metadata=(("x-user", "alice"), ("trace-bin", b"\x00\xff"), ("motan-s", "grpc-app")),
        timeout=5,
    )
    assert reply.text == "hello mesh"
    assert reply.server == "echo-1"
    seen = dict(reply.metadata)
    assert seen["x-user"] == "alice"
    assert seen["trace-bin"] == "00ff"  # binary metadata arrives as the same bytes
    assert seen["motan-s"] == "grpc-app"  # M_s, the caller's application
    trailing = _metadata(call.trailing_metadata())
    assert trailing["x-served-by"] == "echo-1"
    assert trailing["x-trace-bin"] == b"\x01\xfe"
    assert trailing["x-initial"] == "yes"  # the backend's initial metadata, as trailing
    assert "motan-pt" in trailing


def test_deadline_reaches_the_backend(gm: GrpcMesh) -> None:
    # gRPC rounds a deadline it sends up a little: allow 100 ms
    reply = gm.stub.Say(gm.pb.EchoRequest(text="d"), timeout=1.5)
    assert 0 < reply.deadline_ms <= 1600
    # without a deadline the backend gets the refer's requestTimeout (3000 ms)
    reply = gm.stub.Say(gm.pb.EchoRequest(text="d"))
    assert 1600 < reply.deadline_ms <= 3100


def test_deadline_exceeded(gm: GrpcMesh) -> None:
    with pytest.raises(grpc.RpcError) as info:
        gm.stub.Sleep(gm.pb.EchoRequest(text="slow", sleep_ms=2000), timeout=0.5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # the mesh still serves
    assert gm.stub.Say(gm.pb.EchoRequest(text="after"), timeout=5).text == "after"


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAUTHENTICATED,
    ],
)
def test_server_error_codes_cross_the_mesh(gm: GrpcMesh, code: Any) -> None:
    with pytest.raises(grpc.RpcError) as info:
        gm.stub.Fail(gm.pb.EchoRequest(text="x", code=code.value[0]), timeout=5)
    assert info.value.code() == code
    assert info.value.details() == "failed: x"
    assert _metadata(info.value.trailing_metadata())["x-error-detail"] == "echo-1"


def test_server_exception_is_unknown(gm: GrpcMesh) -> None:
    with pytest.raises(grpc.RpcError) as info:
        gm.stub.Fail(gm.pb.EchoRequest(text="boom", code=-1), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNKNOWN


def test_unknown_service_and_method(gm: GrpcMesh) -> None:
    unknown = gm.channel.unary_unary("/motanmesh.test.Nobody/Say")
    with pytest.raises(grpc.RpcError) as info:
        unknown(b"", timeout=5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "motanmesh.test.Nobody" in info.value.details()
    # a method the backend does not have: its own UNIMPLEMENTED comes back
    missing_method = gm.channel.unary_unary(f"/{SERVICE}/Nothing")
    with pytest.raises(grpc.RpcError) as info:
        missing_method(b"", timeout=5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_mesh_failures_become_unavailable(gm: GrpcMesh) -> None:
    for path in (f"/{DEAD}/Say", f"/{MISSING}/Say"):  # backend down; no provider at all
        with pytest.raises(grpc.RpcError) as info:
            gm.channel.unary_unary(path)(b"", timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, path


def test_streaming_requests_are_refused(gm: GrpcMesh) -> None:
    requests = iter([gm.pb.EchoRequest(text="a"), gm.pb.EchoRequest(text="b")])
    with pytest.raises(grpc.RpcError) as info:
        gm.stub.Collect(requests, timeout=5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # one message, then the end of the stream, is a unary call as far as the mesh goes
    assert gm.stub.Collect(iter([gm.pb.EchoRequest(text="a")]), timeout=5).text == "a"


def test_concurrent_calls(gm: GrpcMesh) -> None:
    # 64 calls in flight at once on one channel; each answer goes back to its own call
    futures = [
        gm.stub.Sleep.future(gm.pb.EchoRequest(text=f"call-{i}", sleep_ms=50), timeout=15)
        for i in range(64)
    ]
    assert [f.result(timeout=20).text for f in futures] == [f"call-{i}" for i in range(64)]


def test_motan2_client_reaches_the_grpc_server(gm: GrpcMesh) -> None:
    request = gm.pb.EchoRequest(text="from motan2").SerializeToString()
    for address in (gm.client_address, gm.export_address):  # through both agents; server agent
        with BlockingMotanClient(address, serialization="grpc-pb", group=GROUP) as client:
            body = client.call(SERVICE, "Say", request, attachments={"x-user": "bob"})
            reply = gm.pb.EchoReply.FromString(body)
            assert reply.text == "from motan2"
            assert reply.metadata["x-user"] == "bob"
            with pytest.raises(MotanRemoteError) as info:
                client.call(SERVICE, "Fail", gm.pb.EchoRequest(text="no", code=5))
            assert (info.value.errcode, info.value.errtype) == (404, 2)
            assert info.value.errmsg == "failed: no"


def test_large_message(gm: GrpcMesh) -> None:
    # over the 1 MiB above which the server agent gzips; under gRPC's default 4 MiB
    text = "x" * (3 * 1024 * 1024)
    reply = gm.stub.Say(gm.pb.EchoRequest(text=text), timeout=20)
    assert reply.text == text


def test_garbage_on_the_grpc_port(gm: GrpcMesh) -> None:
    host, _, port = gm.grpc_address.rpartition(":")
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00" * 64, b"PRI * HTTP/2.0\r\n\r\nxx"):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(junk)
            s.settimeout(5)
            with contextlib.suppress(OSError):
                s.recv(1024)
    assert gm.stub.Say(gm.pb.EchoRequest(text="still here"), timeout=5).text == "still here"
