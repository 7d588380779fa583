"""Agents started inside the test process from a config document, on real loopback sockets
(every port chosen by the system)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from motanmesh.agent.agent import Agent
from motanmesh.config.loader import load_config
from motanmesh.demo.service import DEMO_GROUP, DEMO_SERVICE


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


async def start_agent(path: Path, doc: dict[str, Any] | None = None) -> Agent:
    """Start the agent configured in ``path`` (written from ``doc`` when given), with its
    client, export and management ports on free loopback ports."""
    if doc is not None:
        write_yaml(path, doc)
    config = load_config(path)
    agent_section = dataclasses.replace(config.agent, port=0, eport=0, mport=0)
    services = {sid: [u.copy(port=0) for u in urls] for sid, urls in config.services.items()}
    agent = Agent(dataclasses.replace(config, agent=agent_section, services=services))
    await agent.start()
    return agent


def agent_section(tmp_path: Path, name: str, **extra: Any) -> dict[str, Any]:
    """A ``motan-agent`` section whose files live under ``tmp_path``."""
    return {
        "application": name,
        "pidfile": str(tmp_path / f"{name}.pid"),
        "runtime_dir": str(tmp_path / f"{name}-runtime"),
        "snapshot_dir": str(tmp_path / f"{name}-snapshot"),
        "initClusterTimeout": 2000,
        "drainTime": 0,
        **extra,
    }


def demo_service(registry: str = "local", **extra: Any) -> dict[str, Any]:
    """A ``motan-service`` entry serving the demo service in process."""
    return {
        "path": DEMO_SERVICE,
        "group": DEMO_GROUP,
        "registry": registry,
        "provider": "python",
        "pythonService": "motanmesh.demo.service:demo_registry",
        "export": "motan2:9982",
        **extra,
    }


def export_port(agent: Agent) -> int:
    """The port the agent's (first) export listens on."""
    return next(iter(agent.export_addresses.values()))[1]
