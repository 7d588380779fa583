"""``scripts/demo``, the README's main job, runs to the end and says it succeeded."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.harness import REPO_ROOT, child_env

pytestmark = pytest.mark.slow


def test_scripts_demo_succeeds() -> None:
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "demo")],
        cwd=REPO_ROOT,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "demo succeeded", result.stdout
    assert "200 calls while both instances are up: 200 succeeded" in result.stdout
    assert "exit codes: [0, 0, 0, 0, 0]" in result.stdout
