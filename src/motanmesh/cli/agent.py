"""``motanmesh agent -c agent.yaml``: run the mesh agent (the Go agent's flags work)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from motanmesh.agent.agent import Agent, AgentError
from motanmesh.config.errors import ConfigError
from motanmesh.config.loader import load_config
from motanmesh.config.model import Config
from motanmesh.config.overrides import apply_overrides
from motanmesh.transport.loop import install as install_loop
from motanmesh.transport.memory import RELEASE_INTERVAL, release_memory, tune_for_large_buffers


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "agent",
        help="run the mesh agent (client and server sides, management API)",
        description="Run the mesh agent. Flags follow the Go agent (-c, -pool, -port, ...).",
    )
    p.add_argument(
        "-c",
        dest="config",
        default=None,
        help="config file or directory (default ./motan.yaml; ./ with -pool)",
    )
    p.add_argument("-pool", default="", help="pool name, e.g. app-idc-level (directory mode)")
    p.add_argument("-application", default="", help="application name (directory mode)")
    p.add_argument("-idc", default="", help="IDC name; replaces ${idc} in refer groups")
    p.add_argument(
        "-localIP",
        dest="local_ip",
        default="",
        help="the IP registered for this host (default 127.0.0.1)",
    )
    p.add_argument("-port", type=int, default=0, help="client-side port (default 9981)")
    p.add_argument("-eport", type=int, default=0, help="export port for dynamic services (9982)")
    p.add_argument("-hport", type=int, default=0, help="HTTP proxy port (9983)")
    p.add_argument("-mport", type=int, default=0, help="management port (8002)")
    p.add_argument("-pidfile", default="", help="pid file (default ./agent.pid)")
    p.add_argument(
        "-recover",
        action="store_true",
        help="restore the 200/503 status from runtime_dir after a crash",
    )
    p.add_argument("-log_dir", default="", help="log directory ('stdout' logs to the console)")
    p.add_argument("-log_level", default="info", help="debug, info, warning or error")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # kazoo reports every refused reconnect while ZooKeeper is down; the registry logs the outage
    logging.getLogger("motanmesh.registry.zookeeper.kazoo").setLevel(logging.ERROR)
    path = args.config or ("./" if args.pool else "./motan.yaml")
    try:
        config = load_config(path, pool=args.pool, application=args.application)
        config = apply_overrides(
            config,
            port=args.port or None,
            eport=args.eport or None,
            hport=args.hport or None,
            mport=args.mport or None,
            idc=args.idc or None,
            local_ip=args.local_ip or None,
            pidfile=args.pidfile or None,
            application=args.application or None,
            log_dir=args.log_dir or None,
        )
    except ConfigError as e:
        print(f"motanmesh agent: {e}", file=sys.stderr)
        return 2
    install_loop()
    tune_for_large_buffers()
    try:
        return asyncio.run(_serve(config, recover=args.recover))
    except AgentError as e:
        print(f"motanmesh agent: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


async def _serve(config: Config, *, recover: bool) -> int:
    agent = Agent(config, recover=recover)
    await agent.start()
    # what starting left behind (the configuration's documents, import-time garbage) is
    # freed and its pages given back before serving
    gc.collect()
    release_memory()
    loop = asyncio.get_running_loop()

    def release() -> None:
        # the heap keeps freed memory for the next large buffers (transport.memory); what a
        # burst left free is given back every few seconds rather than never
        release_memory()
        loop.call_later(RELEASE_INTERVAL, release)

    loop.call_later(RELEASE_INTERVAL, release)
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGTERM, lambda: spawn(agent.drain()))
    loop.add_signal_handler(signal.SIGINT, lambda: spawn(agent.stop(drain=False)))
    loop.add_signal_handler(signal.SIGHUP, lambda: spawn(_reload(agent)))
    print(
        f"motanmesh agent ready: client {_fmt(agent.client_address)}, "
        f"management {_fmt(agent.management_address)}, "
        f"exports {', '.join(_fmt(a) for a in agent.export_addresses.values()) or '-'}"
        + (f", grpc {_fmt(agent.grpc_address)}" if agent.grpc_address else "")
        + (f", http proxy {_fmt(agent.http_proxy_address)}" if agent.http_proxy_address else ""),
        flush=True,
    )
    await agent.wait_stopped()
    return 0


async def _reload(agent: Agent) -> None:
    try:
        refers = await agent.reload_clusters()
    except ConfigError as e:
        logging.getLogger("motanmesh.agent").error("reload refused: %s", e)
        return
    logging.getLogger("motanmesh.agent").info("reloaded %d refers", len(refers))


def _fmt(addr: tuple[str, int] | None) -> str:
    return f"{addr[0]}:{addr[1]}" if addr else "-"
