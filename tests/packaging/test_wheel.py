"""The installable artifact: ``python -m build`` on a copy of the sources, the wheel installed
into a fresh virtual environment, and the installed ``motanmesh`` run from there.

The wheel is built interpreted (``MOTANMESH_PURE_PYTHON=1``, what a machine without a C
compiler gets) to keep the test short; pip fetches the build backend and the runtime
dependencies from the package index (its cache makes later runs quick).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import motanmesh
from tests.e2e.harness import AGENT_READY, free_port

REPO = Path(__file__).resolve().parents[2]
#: what a source distribution is built from (MANIFEST.in adds the rest)
SOURCES = ("pyproject.toml", "setup.py", "README.md", "MANIFEST.in", "src")
EXAMPLE = REPO / "examples" / "demo" / "server-agent.yaml"
#: building and installing fetch packages; generous, only a hung step reaches it
STEP_TIMEOUT = 600

pytestmark = pytest.mark.slow


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of a fresh venv with the freshly built wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    tree = work / "tree"
    tree.mkdir()
    ignore = shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info")
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=ignore)
        else:
            shutil.copy2(source, tree / name)
    env = {**os.environ, "MOTANMESH_PURE_PYTHON": "1"}
    env.pop("PYTHONPATH", None)
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist")], tree, env)
    wheels = list((work / "dist").glob("motanmesh-*.whl"))
    assert [w.name for w in wheels] == [f"motanmesh-{motanmesh.__version__}-py3-none-any.whl"]
    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)], work, env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    run([*pip, "install", str(wheels[0])], work, env)
    return venv / "bin"


def clean_env() -> dict[str, str]:
    """This environment without anything that would import from the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "mport")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_version(installed: Path, tmp_path: Path) -> None:
    out = run([str(installed / "motanmesh"), "--version"], tmp_path, clean_env())
    assert out.strip() == f"motanmesh {motanmesh.__version__}"


def test_installed_from_the_venv_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    code = "import motanmesh, sys; print(motanmesh.__file__)"
    where = run([str(installed / "python"), "-c", code], tmp_path, clean_env()).strip()
    assert Path(where).is_relative_to(installed.parent), where
    # runtime dependencies only: the test and dev tools stay in the extra
    listed = run([str(installed / "python"), "-m", "pip", "list"], tmp_path, clean_env())
    names = {line.split()[0].lower() for line in listed.splitlines()[2:] if line.strip()}
    assert {"pyyaml", "aiohttp", "kazoo", "h11"} <= names
    assert not names & {"pytest", "mypy", "ruff", "hypothesis", "build"}


def test_agent_from_the_example_config(installed: Path, tmp_path: Path) -> None:
    """``motanmesh agent -c examples/demo/server-agent.yaml`` on free ports: ready, serving
    its management API, and draining to exit 0 on SIGTERM."""
    text = EXAMPLE.read_text()
    port, mport, eport = free_port(), free_port(), free_port()
    for key, value in (("port", port), ("mport", mport), ("eport", eport)):
        text, count = re.subn(rf"(?m)^(  {key}: )\d+", rf"\g<1>{value}", text)
        assert count == 1, key
    text = text.replace('"motan2:9982"', f'"motan2:{eport}"')
    config = tmp_path / "agent.yaml"
    # a short drain (default 5 s): the test only needs to see it end in exit 0
    text = text.replace(
        "  application: demo-server\n", "  application: demo-server\n  drainTime: 1\n"
    )
    assert "drainTime: 1" in text
    config.write_text(text)
    log = tmp_path / "agent.log"
    with log.open("wb") as out:
        agent = subprocess.Popen(
            [str(installed / "motanmesh"), "agent", "-c", str(config)],
            cwd=tmp_path,
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while AGENT_READY not in log.read_text(errors="replace"):
                assert agent.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.05)
            with urllib.request.urlopen(f"http://127.0.0.1:{mport}/version", timeout=10) as r:
                assert r.status == 200
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(60) == 0, log.read_text(errors="replace")
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait(10)
