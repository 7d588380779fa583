"""The deployment files under ``deploy/`` and the ``Dockerfile``, checked as far as this
machine allows: the systemd unit with ``systemd-analyze verify`` and by running its command
and stop signal; the Kubernetes manifests parsed, their agent config loaded, and their probe
and preStop commands run against a real agent; the Dockerfile with hadolint and by its
instructions."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from motanmesh.config import load_config
from tests.e2e.harness import AGENT_READY, AgentProcess, Mesh, free_port

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "motanmesh-agent.service"
SIDECAR = REPO / "deploy" / "kubernetes" / "sidecar.yaml"
DOCKERFILE = REPO / "Dockerfile"
EXAMPLE = REPO / "examples" / "demo" / "server-agent.yaml"
REQUIRED = os.environ.get("MOTANMESH_REQUIRE_SERVERS") == "1"


def tool(name: str) -> str:
    """A tool from this venv or PATH; skipped when absent (failed when CI requires tools)."""
    found = shutil.which(
        name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    if found is None:
        message = f"{name} is not installed"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_ports_config(mesh: Mesh, text: str, ports: dict[str, int]) -> Path:
    """``text`` (an agent YAML) with each ``<key>: N`` of ``ports`` set, in the mesh's dir."""
    for key, value in ports.items():
        text, count = re.subn(rf"(?m)^(\s+{key}:\s+)\d+", rf"\g<1>{value}", text)
        assert count == 1, key
    path = mesh.workdir / "agent.yaml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------- systemd


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    # verify needs ExecStart's program to exist: point it at this installation's motanmesh
    motanmesh = Path(sys.executable).with_name("motanmesh")
    assert motanmesh.exists()
    text = UNIT.read_text().replace("/opt/motanmesh/bin/motanmesh", str(motanmesh))
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    ours = [line for line in (done.stdout + done.stderr).splitlines() if UNIT.name in line]
    assert done.returncode == 0, done.stderr
    assert ours == []  # no warning about the unit (unknown keys are only warnings)


def test_unit_stop_is_the_agent_drain() -> None:
    service = unit()["Service"]
    assert service["KillSignal"] == "SIGTERM"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["ExecStart"].split()[1:] == ["agent", "-c", "/etc/motanmesh/agent.yaml"]
    # the stop timeout leaves room for the default drain (5 s) and the exit
    assert int(service["TimeoutStopSec"]) > 5 + 5
    assert service["RestartPreventExitStatus"] == "2"  # a bad config is not retried in a loop


def test_unit_command_drains_on_its_stop_signal(mesh: Mesh) -> None:
    """The unit's ExecStart (with this installation's motanmesh and the example config on
    free ports) and its KillSignal: the agent drains and exits 0 within TimeoutStopSec."""
    service = unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    ports = {"port": free_port(), "mport": free_port(), "eport": free_port()}
    config = free_ports_config(mesh, EXAMPLE.read_text(), ports)
    text = config.read_text().replace("motan2:9982", f"motan2:{free_port()}")
    config.write_text(text.replace("motan2:8100", f"motan2:{free_port()}"))
    argv[0] = str(Path(sys.executable).with_name("motanmesh"))
    argv[argv.index("/etc/motanmesh/agent.yaml")] = str(config)
    agent = AgentProcess(
        "unit",
        argv,
        mesh.workdir,
        {**os.environ, "PYTHONUNBUFFERED": "1"},
        mesh.log("unit"),
        port=0,
        mport=0,
        config=config,
    )
    mesh.procs.append(agent)
    agent.wait_output(AGENT_READY)
    agent.send(getattr(signal, service["KillSignal"]))
    assert agent.wait(float(service["TimeoutStopSec"])) == 0, agent.describe()
    assert "draining for" in agent.output()


# ------------------------------------------------------------------------------- kubernetes


def manifests() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(SIDECAR.read_text()) if d is not None]
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
    return {d["kind"]: d for d in docs}


def sidecar() -> dict[str, Any]:
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "motanmesh"]
    return dict(container)


def agent_yaml() -> str:
    return str(manifests()["ConfigMap"]["data"]["agent.yaml"])


def test_manifests_are_a_pod_with_the_agent_beside_the_app(tmp_path: Path) -> None:
    docs = manifests()
    assert set(docs) == {"ConfigMap", "Deployment"}
    deployment = docs["Deployment"]
    assert deployment["apiVersion"] == "apps/v1"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["app", "motanmesh"]
    container = sidecar()
    assert container["args"][:3] == ["agent", "-c", "/etc/motanmesh/agent.yaml"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["motanmesh-config"] == "/etc/motanmesh"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["motanmesh-config"]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    # the ports are the config's ports
    config_file = tmp_path / "agent.yaml"
    config_file.write_text(agent_yaml())
    config = load_config(config_file)  # the ConfigMap's config is valid for the agent
    ports = {p["containerPort"] for p in container["ports"]}
    assert ports == {config.agent.port, config.agent.eport, config.agent.mport}
    # room for the preStop pause plus the drain
    pause = float(re.findall(r"time\.sleep\((\d+)\)", json.dumps(container["lifecycle"]))[0])
    drain = float(config.agent.params["drainTime"])
    assert pod["terminationGracePeriodSeconds"] > pause + drain
    assert not config.warnings


def run_probe(command: list[str], mport: int) -> int:
    """Run a probe or hook command of the manifest here, aimed at ``mport``."""
    argv = [c.replace(":8002/", f":{mport}/") for c in command]
    assert argv[0] == "python"
    argv[0] = sys.executable
    argv = [a.replace("time.sleep(10)", "time.sleep(0)") for a in argv]
    return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode


def test_probes_and_prestop_against_a_real_agent(mesh: Mesh) -> None:
    container = sidecar()
    readiness = container["readinessProbe"]["exec"]["command"]
    liveness = container["livenessProbe"]["exec"]["command"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    mport = free_port()
    # nothing listens yet: the probes fail
    assert run_probe(readiness, mport) != 0
    # the ConfigMap's agent, on free ports and the embedded registry instead of ZooKeeper
    text = (
        agent_yaml()
        .replace("protocol: zookeeper", "protocol: embedded")
        .replace("zookeeper.motan.svc.cluster.local:2181", str(mesh.registry))
    )
    for path in ("/var/lib/motanmesh/runtime", "/var/lib/motanmesh/snapshot"):
        text = text.replace(path, str(mesh.workdir / Path(path).name))
    text = text.replace("/var/lib/motanmesh/agent.pid", str(mesh.workdir / "agent.pid"))
    text = text.replace("motan2:9982", f"motan2:{free_port()}")
    text = text.replace("motan2:8100", f"motan2:{free_port()}")
    ports = {"port": free_port(), "eport": free_port(), "mport": mport, "drainTime": 1}
    config = free_ports_config(mesh, text, ports)
    agent = mesh.agent("sidecar", config, port=ports["port"], mport=mport)
    assert run_probe(readiness, mport) == 0
    assert run_probe(liveness, mport) == 0
    status, _ = agent.management("/200")
    assert status == 200
    assert agent.management("/")[0] == 200
    assert run_probe(pre_stop, mport) == 0
    assert agent.management("/")[0] == 503  # preStop took the services out of the registry
    agent.send(signal.SIGTERM)
    assert agent.wait(30) == 0, agent.describe()


# ------------------------------------------------------------------------------- Dockerfile


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_passes_hadolint() -> None:
    hadolint = tool("hadolint")
    done = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_installs_the_wheel_and_runs_the_agent() -> None:
    steps = instructions()
    words = [w for w, _ in steps]
    assert words[0] == "FROM"
    assert re.fullmatch(r"python:3\.11-slim-\w+", steps[0][1])
    copied = [rest for w, rest in steps if w == "COPY"]
    assert copied == ["dist/motanmesh-*.whl /tmp/wheels/"]
    (install,) = [rest for w, rest in steps if w == "RUN"]
    assert "pip install --no-cache-dir --no-compile /tmp/wheels/motanmesh-*.whl" in install
    user = next(rest for w, rest in steps if w == "USER")
    assert not user.startswith(("0", "root"))
    exposed = {int(p) for w, rest in steps if w == "EXPOSE" for p in rest.split()}
    assert exposed == {9981, 9982, 8002}
    assert ("STOPSIGNAL", "SIGTERM") in steps
    entry = json.loads(next(rest for w, rest in steps if w == "ENTRYPOINT"))
    cmd = json.loads(next(rest for w, rest in steps if w == "CMD"))
    assert entry + cmd == ["motanmesh", "agent", "-c", "/etc/motanmesh/agent.yaml"]
    # what the build context lets in: the wheel only
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert [line for line in ignore if not line.startswith("#")] == ["*", "!dist/motanmesh-*.whl"]


def test_dockerfile_lint_catches_a_bad_instruction(tmp_path: Path) -> None:
    """hadolint can fail: an unpinned apt install in a copy is reported."""
    hadolint = tool("hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text(DOCKERFILE.read_text() + "RUN apt-get install curl\n")
    done = subprocess.run(
        [hadolint, str(bad)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0
    assert "DL3008" in done.stdout
