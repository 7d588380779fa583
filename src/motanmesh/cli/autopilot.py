"""``motanmesh autopilot``: the decision system, and its decision log.

``motanmesh autopilot -c autopilot.yaml [--dry-run]`` runs until SIGINT/SIGTERM: it reads the
agents' telemetry, keeps a capacity model per service and moves traffic between IDC groups by
writing traffic commands to the registry (only the elected leader writes; ``--dry-run``
computes and logs without writing). It prints one line when ready::

    motanmesh autopilot ready: name=default election=... console=http://127.0.0.1:8090/

``motanmesh autopilot decisions -c autopilot.yaml [--limit N] [--service S] [--json]`` prints
the decision log (``decisionLog`` in the config, or ``--log FILE``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from motanmesh.autopilot.config import AutopilotConfigError, load_config
from motanmesh.autopilot.console import Console
from motanmesh.autopilot.decisions import format_decision, read_decisions
from motanmesh.autopilot.graphite import GraphiteReceiver
from motanmesh.autopilot.runner import Autopilot
from motanmesh.transport.loop import install

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "autopilot",
        help="move traffic between IDC groups from telemetry (the decision system)",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    parser.add_argument("action", nargs="?", choices=("run", "decisions"), default="run")
    parser.add_argument("-c", "--config", help="autopilot YAML file")
    parser.add_argument("--dry-run", action="store_true", help="decide and log, write nothing")
    parser.add_argument("--log", help="decision log file (decisions; default: from the config)")
    parser.add_argument("--limit", type=int, default=50, help="decisions: the last N (50)")
    parser.add_argument("--service", default="", help="decisions: of this service only")
    parser.add_argument("--json", action="store_true", help="decisions: one JSON per line")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every round")
    parser.set_defaults(func=run)


def _decisions(args: argparse.Namespace) -> int:
    path = args.log
    if not path:
        if not args.config:
            print("motanmesh autopilot decisions: give -c CONFIG or --log FILE", file=sys.stderr)
            return 2
        path = load_config(args.config).decision_log
    try:
        items = [d for d in read_decisions(path) if not args.service or d.service == args.service]
    except OSError as exc:
        print(f"motanmesh autopilot decisions: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    for item in items[-args.limit :] if args.limit > 0 else []:
        print(json.dumps(item.to_dict()) if args.json else format_decision(item))
    return 0


async def _serve(autopilot: Autopilot) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    console: Console | None = None
    await autopilot.start()
    try:
        settings = autopilot.config.console
        if settings.enabled:
            console = Console(autopilot, settings.host, settings.port)
            await console.start()
        ports = [
            f"graphite=udp:{s.port}" for s in autopilot.sources if isinstance(s, GraphiteReceiver)
        ]
        print(
            f"motanmesh autopilot ready: name={autopilot.config.name} "
            f"election={autopilot.leadership.describe()} "
            f"console={console.url if console else 'off'} "
            f"dryRun={str(autopilot.config.dry_run).lower()}"
            + (" " + " ".join(ports) if ports else ""),
            flush=True,
        )
        await stop.wait()
    finally:
        if console is not None:
            await console.close()
        await autopilot.close()


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "decisions":
            return _decisions(args)
        if not args.config:
            print("motanmesh autopilot: -c CONFIG is required", file=sys.stderr)
            return 2
        config = load_config(args.config)
    except AutopilotConfigError as exc:
        print(f"motanmesh autopilot: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        config = config.with_dry_run(True)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("motanmesh.autopilot").setLevel(logging.INFO)
    install()
    try:
        asyncio.run(_serve(Autopilot(config)))
    except Exception as exc:  # a registry that cannot start, a port in use
        print(f"motanmesh autopilot: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
