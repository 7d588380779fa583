"""The gRPC ingress in-process: one agent on uvloop serving both sides (its gRPC port, a refer
to its own export, the ``grpc`` provider, a grpcio backend), and its start-up errors."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
import uvloop
import yaml

from motanmesh.agent.agent import Agent, AgentError
from motanmesh.config.errors import ConfigError
from motanmesh.config.loader import load_config
from tests.e2e.harness import free_port

SERVICE = "pkg.Echo"
GROUP = "g1"


class _Backend(grpc.GenericRpcHandler):  # type: ignore[misc]
    def service(self, details: Any) -> Any:
        if details.method != "/pkg.Echo/Say":
            return None

        async def say(request: bytes, context: Any) -> bytes:
            seen = dict(context.invocation_metadata())
            context.set_trailing_metadata((("x-seen", seen.get("x-in", "")),))
            return b"echo:" + request

        return grpc.unary_unary_rpc_method_handler(say)


def _config(tmp_path: Path, *, grpc_port: int, backend: int = 1) -> Path:
    export = free_port()
    doc: dict[str, Any] = {
        "motan-agent": {
            "port": free_port(),
            "mport": free_port(),
            "grpcPort": grpc_port,
            "application": "grpc-ingress-test",
            "pidfile": str(tmp_path / "agent.pid"),
            "runtime_dir": str(tmp_path / "runtime"),
            "snapshot_dir": str(tmp_path / "snapshot"),
            "drainTime": 0,
        },
        "motan-registry": {"direct": {"protocol": "direct", "address": f"127.0.0.1:{export}"}},
        "motan-service": {
            "echo": {
                "path": SERVICE,
                "group": GROUP,
                "registry": "direct",
                "export": f"motan2:{export}",
                "proxy": f"grpc:{backend}",
            }
        },
        "motan-refer": {"echo": {"path": SERVICE, "group": GROUP, "registry": "direct"}},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_one_agent_both_sides_on_uvloop(tmp_path: Path) -> None:
    async def scenario() -> None:
        import asyncio  # noqa: PLC0415

        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        backend = grpc.aio.server()
        backend.add_generic_rpc_handlers((_Backend(),))
        backend_port = backend.add_insecure_port("127.0.0.1:0")
        await backend.start()
        grpc_port = free_port()
        agent = Agent(load_config(_config(tmp_path, grpc_port=grpc_port, backend=backend_port)))
        await agent.start()
        try:
            assert agent.grpc_address == ("127.0.0.1", grpc_port)
            cluster = agent.clusters["echo"]
            for _ in range(200):  # the refer's endpoint connects in the background
                if any(ep.available for ep in cluster.endpoints.values()):
                    break
                await asyncio.sleep(0.05)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                call = channel.unary_unary(f"/{SERVICE}/Say")(
                    b"\x0a\x01a", metadata=(("x-in", "v"),), timeout=5
                )
                assert await call == b"echo:\x0a\x01a"
                assert dict(await call.trailing_metadata())["x-seen"] == "v"
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await channel.unary_unary("/other.Service/Say")(b"", timeout=5)
                assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await channel.unary_unary("not-a-path")(b"", timeout=5)
                assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        finally:
            await agent.stop(drain=False)
            await backend.stop(0)

    uvloop.run(scenario())


async def test_grpc_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        agent = Agent(load_config(_config(tmp_path, grpc_port=taken.getsockname()[1])))
        with pytest.raises(AgentError, match=r"motan-agent\.grpcPort: cannot listen"):
            await agent.start()


async def test_grpc_port_off_by_default(tmp_path: Path) -> None:
    path = _config(tmp_path, grpc_port=0)
    config = load_config(path)
    assert config.agent.grpc_port == 0
    agent = Agent(config)
    await agent.start()
    try:
        assert agent.grpc_address is None and agent.grpc_ingress is None
    finally:
        await agent.stop(drain=False)


async def test_without_grpcio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n == "grpc" or n.startswith("grpc.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "grpc", None)
    monkeypatch.delitem(sys.modules, "motanmesh.ingress.grpc", raising=False)
    monkeypatch.delitem(sys.modules, "motanmesh.agent.grpc_provider", raising=False)
    agent = Agent(load_config(_config(tmp_path, grpc_port=free_port())))
    with pytest.raises(AgentError, match=r"motan-service.echo: provider grpc needs grpcio"):
        await agent.start()
    path = _config(tmp_path, grpc_port=free_port())
    doc = yaml.safe_load(path.read_text())
    del doc["motan-service"]
    path.write_text(yaml.safe_dump(doc))
    agent = Agent(load_config(path))
    with pytest.raises(AgentError, match=r"grpcPort: .*pip install 'motanmesh\[grpc\]'"):
        await agent.start()


@pytest.mark.parametrize("value", ["x", -1, 70000])
def test_bad_grpc_port(tmp_path: Path, value: object) -> None:
    path = _config(tmp_path, grpc_port=1)
    doc = yaml.safe_load(path.read_text())
    doc["motan-agent"]["grpcPort"] = value
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="grpcPort"):
        load_config(path)
