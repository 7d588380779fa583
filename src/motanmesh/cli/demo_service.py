"""``motanmesh demo-service``: run the demo service
(``com.weibo.motan.demo.service.MotanDemoService``, group ``motan-demo-rpc``) until SIGINT or
SIGTERM, then close gracefully.

It listens on ``--host``:``--port`` (default 127.0.0.1:8100; port 0 picks a free one), and on
the unix socket ``--unix`` when given (then only there, unless ``--port`` is given too), and
prints one line when ready: ``demo-service listening on 127.0.0.1:8100``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from motanmesh.demo.service import DEMO_GROUP, run_demo_service
from motanmesh.sdk.service import ServiceServer
from motanmesh.transport.loop import install

__all__ = ["DEFAULT_PORT", "add_parser", "configure", "main", "run"]

DEFAULT_PORT = 8100


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=None, help=f"TCP port (default {DEFAULT_PORT}; 0: any free)"
    )
    parser.add_argument("--unix", default=None, metavar="PATH", help="unix socket to listen on")
    parser.add_argument("--group", default=DEMO_GROUP, help=f"service group ({DEMO_GROUP})")
    parser.add_argument(
        "--capacity",
        type=float,
        default=0.0,
        metavar="N",
        help="serve at most N calls/s (hello, echo): beyond, latency rises, then calls fail",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=1.0,
        metavar="S",
        help="with --capacity: refuse a call that would queue longer than S seconds (1)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=5.0,
        help="seconds calls in flight get to finish on shutdown (5)",
    )


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``demo-service`` on the ``motanmesh`` command line."""
    parser = subparsers.add_parser(
        "demo-service",
        help="run the Motan demo service",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    configure(parser)
    parser.set_defaults(func=run)


def _ready(server: ServiceServer) -> None:
    print("demo-service listening on " + ", ".join(server.addresses), flush=True)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; return the exit status."""
    port: int | None = args.port
    if port is None and args.unix is None:
        port = DEFAULT_PORT
    install()
    try:
        asyncio.run(
            run_demo_service(
                args.host,
                port,
                unix_path=args.unix,
                group=args.group,
                capacity=args.capacity,
                max_wait=args.max_wait,
                on_ready=_ready,
                deadline=args.deadline,
            )
        )
    except OSError as e:
        print(f"motanmesh demo-service: cannot listen: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="motanmesh demo-service", description=__doc__)
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
