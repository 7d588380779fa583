"""Fixtures of the ``ctl`` tests: a real embedded registry file and the real command line.

``ctl`` runs as a child process (``python -m motanmesh.cli ctl ...`` once ``ctl`` is a
registered subcommand, else ``python -m motanmesh.cli.ctl ...``), so option parsing, output
and exit statuses are tested exactly as operators see them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from motanmesh.cli import SUBCOMMANDS
from motanmesh.registry.embedded import EmbeddedRegistry
from motanmesh.url import URL

CTL_TIMEOUT = 60.0
#: long leases: providers registered by a test stay while a child process runs
SLOW_LEASES = {"ttl": "600", "leaseInterval": "1", "pollInterval": "0.05"}


def ctl_argv(*args: str) -> list[str]:
    if "ctl" in SUBCOMMANDS:
        return [sys.executable, "-m", "motanmesh.cli", "ctl", *args]
    return [sys.executable, "-m", "motanmesh.cli.ctl", *args]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MOTANMESH_ADMIN_TOKEN"}
    env["USER"] = "tester"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass(frozen=True)
class CtlResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def run_ctl(*args: str, stdin: str | None = None, cwd: Path | None = None) -> CtlResult:
    """Run ``ctl ARGS`` and wait for it (blocking)."""
    done = subprocess.run(
        ctl_argv(*args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CTL_TIMEOUT,
        env=child_env(),
        cwd=cwd,
        check=False,
    )
    return CtlResult(done.returncode, done.stdout, done.stderr)


async def arun_ctl(*args: str, stdin: str | None = None) -> CtlResult:
    """Run ``ctl ARGS`` without blocking the event loop (registries keep renewing)."""
    proc = await asyncio.create_subprocess_exec(
        *ctl_argv(*args),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    async with asyncio.timeout(CTL_TIMEOUT):
        out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    assert proc.returncode is not None
    return CtlResult(proc.returncode, out.decode(), err.decode())


def embedded(db: Path) -> URL:
    return URL("embedded", parameters={"file": str(db), **SLOW_LEASES})


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The registry file (an empty file is a new SQLite database; ``ctl`` refuses to create
    a registry file that does not exist)."""
    path = tmp_path / "registry.db"
    path.touch()
    return path


@pytest.fixture
def reg_args(db: Path) -> list[str]:
    """``--registry embedded:///<abs path>`` for ``db``."""
    return ["--registry", f"embedded://{db}"]


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[EmbeddedRegistry]:
    """A started registry on ``tmp_path/registry.db`` (for async tests)."""
    async with EmbeddedRegistry(embedded(tmp_path / "registry.db")) as reg:
        yield reg


def provider(host: str, port: int, service: str, group: str) -> URL:
    return URL("motan2", host, port, service, group, {"serialization": "simple"})


async def register(registry: EmbeddedRegistry, urls: Sequence[URL]) -> None:
    for url in urls:
        await registry.register(url)
        await registry.available(url)
