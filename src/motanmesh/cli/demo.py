"""``motanmesh demo``: the demos of ``scripts/demo``, as a subcommand.

``motanmesh demo`` (or ``motanmesh demo mesh [--tls] [--keep]``: a demo's own options follow
its name) runs the small mesh of the README's main job;
``motanmesh demo autopilot [--quick] [--registry zookeeper://host:port] [--picture FILE]``
runs the autopilot scenario (docs/autopilot.md): a surge in IDC A, traffic moved to IDC B
and back, a timeline every second, a summary and an SVG picture of the run. The exit code is
0 when the demo succeeded.
"""

from __future__ import annotations

import argparse
import importlib

__all__ = ["DEMOS", "add_parser", "run"]

#: demo name -> the module whose ``main(argv)`` runs it
DEMOS = {"mesh": "motanmesh.demo.mesh", "autopilot": "motanmesh.demo.autopilot"}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``demo`` on the ``motanmesh`` command line."""
    parser = subparsers.add_parser(
        "demo",
        help="run a demo: the small mesh (default) or the autopilot scenario",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    parser.add_argument("which", nargs="?", choices=tuple(DEMOS), default="mesh")
    parser.add_argument(
        "options", nargs=argparse.REMAINDER, help="the demo's own options (--help lists them)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the chosen demo (imported only now) with its own options."""
    module = importlib.import_module(DEMOS[args.which])
    code: int = module.main(list(args.options))
    return code
