"""Process helpers for the end-to-end tests: real agents and services on 127.0.0.1.

A :class:`Mesh` owns a work directory and every process started in it (``python -m
motanmesh.cli ...``, each with its output in ``<name>.log``); :meth:`Mesh.close` kills what is
still running. Configs are written as YAML from plain dicts built by the helpers below. Every
wait is bounded and fails with the process output attached.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import yaml

from motanmesh.demo.ports import reserve_port
from motanmesh.sdk.client import MotanClient

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
DATA_DIR: Final = Path(__file__).resolve().parent / "data"

DEMO_SERVICE: Final = "com.weibo.motan.demo.service.MotanDemoService"
DEMO_GROUP: Final = "motan-demo-rpc"
#: served in-process by the ``python`` provider (``tests/e2e/data/instance_service.py``)
INSTANCE_SERVICE: Final = "com.weibo.motanmesh.e2e.InstanceService"
INSTANCE_GROUP: Final = "motanmesh-e2e"
INSTANCE_FACTORY: Final = "instance_service:registry"
INSTANCE_ENV: Final = "E2E_INSTANCE"

AGENT_READY: Final = "motanmesh agent ready:"
SERVICE_READY: Final = "demo-service listening on"
#: bounds of the waits for a process to start and for a state to be reached: generous, since
#: they only bound a failure (a wait ends as soon as the state is there) and a machine running
#: several suites at once can take tens of seconds to start a Python process
START_TIMEOUT: Final = 60.0
WAIT_TIMEOUT: Final = 30.0
STOP_TIMEOUT: Final = 10.0
#: the call timeouts of the load tests (the refer's ``requestTimeout`` in ms, the test client's
#: in s): a test about losing an instance or a registry must not count a call that a busy
#: machine was merely slow to answer (a lost instance fails its calls at once, by a reset)
LOAD_TIMEOUT_MS: Final = 60_000
LOAD_TIMEOUT: Final = 60.0


class HarnessError(AssertionError):
    """A process did not do what the test waited for (its output is in the message)."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for a child process, never the same twice in one test
    session and never another process's meanwhile (see :mod:`motanmesh.demo.ports`)."""
    return reserve_port()


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: this one, unbuffered, with ``DATA_DIR`` importable
    and without the variables that would change an agent's ports."""
    env = {k: v for k, v in os.environ.items() if k not in ("mport", "MOTANMESH_ADMIN_TOKEN")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(DATA_DIR), env.get("PYTHONPATH", "")) if p)
    if extra:
        env.update(extra)
    return env


def cli_argv(*args: str) -> list[str]:
    """``motanmesh ARGS`` with this interpreter."""
    return [sys.executable, "-m", "motanmesh.cli", *args]


class Process:
    """One child process, its output going to a log file."""

    def __init__(
        self, name: str, argv: list[str], cwd: Path, env: Mapping[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - closed by stop()
        self.popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def __repr__(self) -> str:
        return f"<Process {self.name} pid={self.pid} rc={self.returncode}>"

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def describe(self) -> str:
        return f"{self.name} (pid {self.pid}, exit {self.returncode}), output:\n{self.output()}"

    def wait_output(self, text: str, timeout: float = START_TIMEOUT) -> None:
        """Wait until ``text`` appears in the output; fail at once if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            if text in self.output():
                return
            if not self.alive:
                raise HarnessError(f"exited before printing {text!r}: {self.describe()}")
            if time.monotonic() > deadline:
                raise HarnessError(f"no {text!r} within {timeout:.0f} s: {self.describe()}")
            time.sleep(0.05)

    def send(self, sig: signal.Signals) -> None:
        if self.alive:
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        """The exit code; fails (and kills) when the process is still running after
        ``timeout`` seconds."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise HarnessError(f"still running after {timeout:.0f} s: {self.describe()}") from None

    def stop(self) -> None:
        """Kill the process and what it started (its process group: php-fpm's workers, CGI
        scripts, ...), and reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # it leads its own session (start_new_session)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(STOP_TIMEOUT)
        self._log.close()


class AgentProcess(Process):
    """An agent process and the ports it was given."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
        *,
        port: int,
        mport: int,
        config: Path,
    ) -> None:
        super().__init__(name, argv, cwd, env, log_path)
        self.port = port
        self.mport = mport
        self.config = config

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def management(self, path: str, data: bytes | None = None) -> tuple[int, str]:
        """``GET`` (or ``POST`` with ``data``) on the management API: status and body."""
        return http_request(self.mport, path, data)

    def management_json(self, path: str) -> Any:
        status, body = self.management(path)
        if status != 200:
            raise HarnessError(f"{self.name} {path} answered {status}: {body}")
        return json.loads(body)


def http_request(port: int, path: str, data: bytes | None = None) -> tuple[int, str]:
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, data=data, timeout=5) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()


class Mesh:
    """The processes of one test, in one work directory (their cwd)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.registry = workdir / "registry.db"
        self.procs: list[Process] = []

    def spawn(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> Process:
        proc = Process(name, cli_argv(*args), self.workdir, child_env(env), self.log(name))
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def demo_service(self, name: str, *, group: str = DEMO_GROUP) -> tuple[Process, int]:
        """A demo service on a free port, ready."""
        port = free_port()
        proc = self.spawn(name, "demo-service", "--port", str(port), "--group", group)
        proc.wait_output(SERVICE_READY)
        return proc, port

    def write_config(self, name: str, config: Mapping[str, Any]) -> Path:
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        return path

    def agent(
        self,
        name: str,
        config: Mapping[str, Any] | Path,
        *flags: str,
        port: int | None = None,
        mport: int | None = None,
        env: Mapping[str, str] | None = None,
        ready: bool = True,
    ) -> AgentProcess:
        """Start ``motanmesh agent -c CONFIG FLAGS``. A dict config is written to
        ``<name>.yaml`` and its ports read from it; a path (file or directory) gets the
        ports as ``-port``/``-mport`` flags (free ones unless given)."""
        if isinstance(config, Path):
            path = config
            port = port or free_port()
            mport = mport or free_port()
            flags = (*flags, "-port", str(port), "-mport", str(mport))
        else:
            path = self.write_config(name, config)
            section = config["motan-agent"]
            port, mport = int(section["port"]), int(section["mport"])
        argv = cli_argv("agent", "-c", str(path), *flags)
        proc = AgentProcess(
            name,
            argv,
            self.workdir,
            child_env(env),
            self.log(name),
            port=port,
            mport=mport,
            config=path,
        )
        self.procs.append(proc)
        if ready:
            proc.wait_output(AGENT_READY)
        return proc

    def check_alive(self) -> None:
        for proc in self.procs:
            if not proc.alive:
                raise HarnessError(f"died: {proc.describe()}")

    def close(self) -> None:
        for proc in self.procs:
            proc.stop()


# ---------------------------------------------------------------------------- configs


def agent_section(name: str, **extra: Any) -> dict[str, Any]:
    """A ``motan-agent`` section on free ports, its files under ``./<name>-runtime``."""
    section: dict[str, Any] = {
        "port": free_port(),
        "mport": free_port(),
        "eport": free_port(),
        "application": f"e2e-{name}",
        "registry": "local",
        "runtime_dir": f"./{name}-runtime",
        "pidfile": f"./{name}.pid",
    }
    section.update(extra)
    return section


def embedded_registry(db: Path) -> dict[str, Any]:
    return {"protocol": "embedded", "address": str(db)}


def demo_export(backend_port: int, *, group: str = DEMO_GROUP) -> dict[str, Any]:
    """A ``motan-service`` entry: the demo service behind ``proxy``, on a free export port."""
    return {
        "registry": "local",
        "path": DEMO_SERVICE,
        "group": group,
        "export": f"motan2:{free_port()}",
        "proxy": f"motan2:{backend_port}",
    }


def instance_export() -> dict[str, Any]:
    """A ``motan-service`` entry served in-process by the ``python`` provider."""
    return {
        "registry": "local",
        "path": INSTANCE_SERVICE,
        "group": INSTANCE_GROUP,
        "export": f"motan2:{free_port()}",
        "provider": "python",
        "pythonService": INSTANCE_FACTORY,
    }


def refer(path: str, group: str, **params: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"registry": "local", "path": path, "group": group}
    entry.update(params)
    return entry


def server_agent_config(name: str, db: Path, services: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "motan-agent": agent_section(name, drainTime=2),
        "motan-registry": {"local": embedded_registry(db)},
        "motan-service": dict(services),
    }


def client_agent_config(
    name: str, db: Path, refers: Mapping[str, Any], **registries: Any
) -> dict[str, Any]:
    return {
        "motan-agent": agent_section(name),
        "motan-registry": {"local": embedded_registry(db), **registries},
        "motan-refer": dict(refers),
    }


def export_port(service: Mapping[str, Any]) -> int:
    return int(str(service["export"]).rpartition(":")[2])


@dataclass
class Instance:
    """A server agent serving ``INSTANCE_SERVICE`` in-process, and its export address."""

    name: str
    agent: AgentProcess
    export: str


def start_instances(
    mesh: Mesh, names: tuple[str, ...], *, available: bool = True, **agent_params: Any
) -> dict[str, Instance]:
    """One server agent per name (``E2E_INSTANCE`` = the name), ``/200`` unless told not to.
    ``agent_params`` go into each ``motan-agent`` section (``drainTime=...``)."""
    instances: dict[str, Instance] = {}
    for name in names:
        export = instance_export()
        config = server_agent_config(f"server-{name}", mesh.registry, {"instance": export})
        config["motan-agent"].update(agent_params)
        agent = mesh.agent(f"server-{name}", config, env={INSTANCE_ENV: name}, ready=False)
        instances[name] = Instance(name, agent, f"127.0.0.1:{export_port(export)}")
    for instance in instances.values():  # started side by side, then waited for
        instance.agent.wait_output(AGENT_READY)
    if available:
        set_available(*(i.agent for i in instances.values()))
    return instances


# ---------------------------------------------------------------------------- observing


def registry_nodes(db: Path, group: str, service: str, node_type: str) -> set[str]:
    """The live ``node_type`` (``server``, ``unavailableServer``) addresses of a service in an
    embedded registry file."""
    prefix = f"/motan/{group}/{service}/{node_type}/"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        rows = conn.execute(
            "SELECT path FROM nodes WHERE substr(path, 1, ?) = ?"
            " AND (ephemeral = 0 OR expires > ?)",
            (len(prefix), prefix, time.time()),
        ).fetchall()
    return {str(path)[len(prefix) :] for (path,) in rows}


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = WAIT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def available_endpoints(agent: AgentProcess, refer_id: str) -> set[str]:
    """The addresses of a client agent's available endpoints for one refer."""
    info = agent.management_json("/runtime/info?keys=clusters")
    cluster = info.get("clusters", {}).get(refer_id)
    if cluster is None:
        return set()
    return {str(ep["address"]) for ep in cluster["endpoints"] if ep["available"]}


def wait_endpoints(agent: AgentProcess, refer_id: str, addresses: set[str]) -> None:
    """Wait until exactly ``addresses`` are the available endpoints of ``refer_id``."""
    wait_for(
        lambda: available_endpoints(agent, refer_id) == addresses,
        f"{agent.name} refer {refer_id} to use exactly {sorted(addresses)}",
    )


def set_available(*agents: AgentProcess) -> None:
    """``/200`` on each agent."""
    for agent in agents:
        status, body = agent.management("/200")
        if (status, body) != (200, "ok."):
            raise HarnessError(f"{agent.name} /200 answered {status} {body!r}")


# ---------------------------------------------------------------------------- load


@dataclass
class Load:
    """What a run of :func:`run_load` saw: replies by value, and the failures."""

    replies: Counter[str] = field(default_factory=Counter)
    failures: list[BaseException] = field(default_factory=list)
    #: replies by value after :attr:`marked` was set
    after_mark: Counter[str] = field(default_factory=Counter)
    marked: bool = False

    @property
    def calls(self) -> int:
        return sum(self.replies.values()) + len(self.failures)


async def run_load(
    call: Callable[[], Awaitable[Any]], stop: asyncio.Event, load: Load, workers: int = 16
) -> None:
    """``workers`` concurrent loops of ``call()`` until ``stop`` is set."""

    async def worker() -> None:
        while not stop.is_set():
            marked = load.marked
            try:
                reply = str(await call())
            except Exception as e:
                load.failures.append(e)
                continue
            load.replies[reply] += 1
            if marked:
                load.after_mark[reply] += 1

    await asyncio.gather(*(worker() for _ in range(workers)))


def instance_client(agent: AgentProcess, timeout: float = LOAD_TIMEOUT) -> MotanClient:
    """A client of ``INSTANCE_SERVICE`` through ``agent``."""
    return MotanClient(agent.address, application="e2e-app", group=INSTANCE_GROUP, timeout=timeout)
