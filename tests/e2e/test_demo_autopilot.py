"""``motanmesh demo autopilot --quick``, the command a person runs to see the autopilot at
work: it starts the scenario's processes, prints a line of the timeline every second, the
decisions that moved traffic and a summary, writes the SVG picture of the run, and says the
scenario succeeded."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import child_env, cli_argv

pytestmark = pytest.mark.slow

TIMELINE = re.compile(
    r"^t= *(\d+\.\d)s  demand A +(\d+)% B +(\d+)%  level A +(\d+)% B +(\d+)%  "
    r"A->B +(\d+)%  p99 A +\d+ms B +\d+ms  calls +\d+ ok +(\d+) failed$"
)


def test_motanmesh_demo_autopilot_quick(tmp_path: Path) -> None:
    picture = tmp_path / "run.svg"
    result = subprocess.run(
        cli_argv("demo", "autopilot", "--quick", "--picture", str(picture)),
        cwd=tmp_path,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,  # a bound for a hang only: the quick scenario runs 79 s
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert out.splitlines()[-1] == "scenario succeeded", out
    rows = [m.groups() for m in map(TIMELINE.match, out.splitlines()) if m]
    assert len(rows) >= 60, out  # one line a second
    moved = [int(r[5]) for r in rows]
    assert max(moved) >= 20 and moved[-1] == 0, out
    assert max(int(r[1]) for r in rows) >= 100, out  # the surge is in the timeline
    assert "decisions that changed the split:" in out
    assert re.search(r"demo-rpc-a shift: \{.*\} -> \{.*'demo-rpc-b': \d+", out), out
    assert re.search(r"demo-rpc-a return: .* -> \{'demo-rpc-a': 100\}", out), out
    assert f"picture: {picture}" in out
    svg = picture.read_text()
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<polyline") == 4  # A's and B's levels, A's demand, the share moved
    assert "water levels" in svg and "share of IDC A" in svg
