"""``motanmesh agent -c BAD`` exits with code 2 and one line naming the file and the key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import child_env, cli_argv

REGISTRY = """\
motan-registry:
  local:
    protocol: direct
    address: 127.0.0.1:9982
"""

# name -> (file content, substrings stderr must hold after "<file>: ")
BAD_CONFIGS: dict[str, tuple[str, list[str]]] = {
    "invalid-yaml": (
        "motan-agent:\n  port: [9981\n  mport: 8002\n",
        ["invalid YAML at line"],
    ),
    "port-not-a-number": (
        "motan-agent:\n  port: abc\n",
        ["motan-agent.port: ", "expected a port number", "'abc'"],
    ),
    "mport-out-of-range": (
        "motan-agent:\n  mport: 70000\n",
        ["motan-agent.mport: expected a port number in 1..65535, got 70000"],
    ),
    "unknown-registry": (
        REGISTRY + "motan-refer:\n  demo:\n    registry: nosuch\n    path: com.example.Demo\n",
        ["motan-refer.demo.registry: ", "unknown registry id 'nosuch'", "defines local"],
    ),
    "missing-path": (
        REGISTRY + "motan-refer:\n  demo:\n    registry: local\n    group: g\n",
        ["motan-refer.demo.path: required key is missing"],
    ),
    "unknown-basic-refer": (
        REGISTRY
        + "motan-refer:\n  demo:\n    registry: local\n    path: com.example.Demo\n"
        + "    basicRefer: nosuch\n",
        ["motan-refer.demo.basicRefer: ", "unknown motan-basicRefer id 'nosuch'"],
    ),
    "retries-not-a-number": (
        REGISTRY
        + "motan-refer:\n  demo:\n    registry: local\n    path: com.example.Demo\n"
        + "    retries: many\n",
        ["motan-refer.demo.retries: ", "'many'"],
    ),
    "service-without-export-port": (
        REGISTRY
        + "motan-service:\n  demo:\n    registry: local\n    path: com.example.Demo\n"
        + "    export: motan2:port\n",
        ["motan-service.demo.export: expected 'protocol:port'", "'motan2:port'"],
    ),
}


def run_agent(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_argv("agent", *args),
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_names_file_and_key(tmp_path: Path, name: str) -> None:
    text, expected = BAD_CONFIGS[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)

    result = run_agent("-c", str(path), cwd=tmp_path)

    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"motanmesh agent: {path}: "), lines[0]
    for part in expected:
        assert part in lines[0], (part, lines[0])


def test_directory_without_pool(tmp_path: Path) -> None:
    (tmp_path / "basic.yaml").write_text("motan-agent:\n  port: 9981\n")

    result = run_agent("-c", str(tmp_path), cwd=tmp_path)

    assert result.returncode == 2, result
    assert result.stderr.strip() == (
        f"motanmesh agent: {tmp_path}: is a directory; directory (pool) mode needs -pool "
        "or -application"
    )


def test_bad_key_in_a_pool_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "basic.yaml").write_text("motan-agent:\n  port: 9981\n")
    pools = tmp_path / "pools"
    pools.mkdir()
    (pools / "app-yf.yaml").write_text("motan-agent:\n  eport: nine\n")

    result = run_agent("-pool", "app-yf", "-c", str(tmp_path), cwd=tmp_path)

    assert result.returncode == 2, result
    assert f"{pools / 'app-yf.yaml'}: motan-agent.eport: " in result.stderr, result.stderr


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    result = run_agent("-c", str(missing), cwd=tmp_path)

    assert result.returncode == 2, result
    assert result.stderr.startswith(f"motanmesh agent: {missing}: cannot read file"), result.stderr
