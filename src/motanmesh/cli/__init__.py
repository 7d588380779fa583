"""The ``motanmesh`` command line.

Each subcommand lives in its own module ``motanmesh.cli.<name>`` exposing
``add_parser(subparsers)``, which registers the subcommand's parser and binds its run function
(``parser.set_defaults(func=...)``, a callable taking the parsed arguments and returning the exit
code). Register a new subcommand by adding its module name to :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Final

from motanmesh import __version__

#: modules under ``motanmesh.cli`` that provide a subcommand, in the order ``--help`` lists them
SUBCOMMANDS: Final = ("agent", "autopilot", "ca", "call", "ctl", "decode", "demo", "demo-service")

RunFunction = Callable[[argparse.Namespace], int]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of ``only`` (so that running one subcommand
    imports none of the others: an agent does not load the autopilot's libraries)."""
    parser = argparse.ArgumentParser(
        prog="motanmesh",
        description="motanmesh: a Motan2 service-mesh agent and its control plane.",
    )
    parser.add_argument("--version", action="version", version=f"motanmesh {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in SUBCOMMANDS:
        if only is not None and name != only:
            continue
        module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    words = sys.argv[1:] if argv is None else argv
    chosen = next((w for w in words if not w.startswith("-")), None)
    parser = build_parser(chosen if chosen in SUBCOMMANDS else None)
    args = parser.parse_args(words)
    run: RunFunction | None = getattr(args, "func", None)
    if run is None:
        parser.print_help()
        return 2
    return run(args)
