"""Agent configs and process groups of the fault tests, on a :class:`Backend` registry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from tests.e2e.harness import (
    DEMO_GROUP,
    DEMO_SERVICE,
    INSTANCE_ENV,
    INSTANCE_GROUP,
    INSTANCE_SERVICE,
    LOAD_TIMEOUT_MS,
    AgentProcess,
    Instance,
    Load,
    Mesh,
    agent_section,
    demo_export,
    export_port,
    instance_export,
    refer,
    run_load,
    set_available,
    wait_for,
)
from tests.faults.conftest import REGISTRY_ID, Backend

#: failover with one retry: a call that meets a dead instance is sent to another one
FAILOVER = {
    "haStrategy": "failover",
    "retries": 1,
    "loadbalance": "roundrobin",
    "requestTimeout": LOAD_TIMEOUT_MS,
}


def agent_config(
    name: str,
    registry: Mapping[str, Any],
    *,
    services: Mapping[str, Any] | None = None,
    refers: Mapping[str, Any] | None = None,
    **agent_params: Any,
) -> dict[str, Any]:
    """An agent on free ports whose registry ``local`` is ``registry``; its snapshots go to
    ``./<name>-snapshot``."""
    config: dict[str, Any] = {
        "motan-agent": agent_section(
            name, drainTime=1, snapshot_dir=f"./{name}-snapshot", **agent_params
        ),
        "motan-registry": {REGISTRY_ID: dict(registry)},
    }
    if services:
        config["motan-service"] = dict(services)
    if refers:
        config["motan-refer"] = dict(refers)
    return config


def demo_servers(
    mesh: Mesh, backend: Backend, count: int
) -> tuple[dict[str, AgentProcess], set[str]]:
    """A demo service and ``count`` server agents proxying it, available; their export
    addresses."""
    _service, backend_port = mesh.demo_service("demo-service")
    agents: dict[str, AgentProcess] = {}
    exports: set[str] = set()
    for i in range(count):
        export = demo_export(backend_port)
        name = f"server-{i}"
        config = agent_config(name, backend.registry(), services={"demo": export})
        agents[name] = mesh.agent(name, config)
        exports.add(f"127.0.0.1:{export_port(export)}")
    set_available(*agents.values())
    return agents, exports


def instance_servers(
    mesh: Mesh, registry: Mapping[str, Any], names: tuple[str, ...]
) -> dict[str, Instance]:
    """A server agent per name serving ``INSTANCE_SERVICE`` in-process, available."""
    instances: dict[str, Instance] = {}
    for name in names:
        export = instance_export()
        config = agent_config(f"server-{name}", registry, services={"instance": export})
        agent = mesh.agent(f"server-{name}", config, env={INSTANCE_ENV: name})
        instances[name] = Instance(name, agent, f"127.0.0.1:{export_port(export)}")
    set_available(*(i.agent for i in instances.values()))
    return instances


def demo_refer(**params: Any) -> dict[str, Any]:
    return refer(DEMO_SERVICE, DEMO_GROUP, **{**FAILOVER, **params})


def instance_refer(**params: Any) -> dict[str, Any]:
    return refer(INSTANCE_SERVICE, INSTANCE_GROUP, **{**FAILOVER, **params})


async def wait_nodes(backend: Backend, group: str, service: str, addresses: set[str]) -> None:
    """Wait until exactly ``addresses`` are the service's ``server`` nodes (read raw)."""

    def check() -> bool:
        try:
            return set(backend.servers(group, service)) == addresses
        except Exception:  # the server is coming up
            return False

    await asyncio.to_thread(
        wait_for, check, f"{backend.name} server nodes {sorted(addresses)}", 30.0
    )


class Traffic:
    """A steady stream of calls running in the background until :meth:`stop`."""

    def __init__(self, call: Callable[[], Awaitable[Any]], workers: int = 8) -> None:
        self.load = Load()
        self._stop = asyncio.Event()
        self._task = asyncio.ensure_future(run_load(call, self._stop, self.load, workers))

    async def stop(self) -> Load:
        self._stop.set()
        await asyncio.wait_for(self._task, 15)
        return self.load
