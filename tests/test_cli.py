"""The command line loads only the subcommand it runs."""

from __future__ import annotations

import subprocess
import sys

from motanmesh.cli import SUBCOMMANDS, build_parser

PROBE = """
import sys
from motanmesh.cli import build_parser
build_parser({only!r})
heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {{'aiohttp', 'prometheus_client'}})
loaded = sorted(m for m in sys.modules if m.startswith('motanmesh.cli.'))
print(heavy, loaded)
"""


def _probe(only: str | None) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(only=only)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def test_the_agent_subcommand_loads_no_other_subcommand() -> None:
    assert _probe("agent") == "[] ['motanmesh.cli.agent']"


def test_help_lists_every_subcommand() -> None:
    text = build_parser().format_help()
    for name in SUBCOMMANDS:
        assert name in text
    assert "'aiohttp'" in _probe(None)  # the full parser does load them all


def test_the_demo_subcommand_loads_its_demo_only_when_run() -> None:
    # the autopilot scenario (and its libraries) is imported by ``demo autopilot`` itself
    assert _probe("demo") == "[] ['motanmesh.cli.demo']"
