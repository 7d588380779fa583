"""How fast traffic follows a registry change, on ZooKeeper, etcd and the embedded registry.

Real processes: a client agent, two server agents ``a`` and ``b`` serving an in-process
service that answers with its instance name, and this script as the application, sending a
steady stream of calls through the client agent (``--workers`` loops). ``b`` starts at 503
(registered but not in ``server``). Each round:

* **add**: ``/200`` on ``b`` (its node moves to ``server``); the figure is the time from
  sending that request to the first reply served by ``b``;
* **remove**: ``/503`` on ``b`` (its node leaves ``server``); the figure is the time from
  sending that request to the last reply served by ``b``.

Both include the management call, the registry write, the notification reaching the client
agent, and (for add) the client agent connecting to ``b``. The registries run with their
default settings; ZooKeeper and etcd are real servers on 127.0.0.1 (``tests/servers``).

    python benchmarks/bench_registry_latency.py [--rounds 5] [--backends zookeeper,etcd,embedded]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import (
    INSTANCE_ENV,
    INSTANCE_GROUP,
    INSTANCE_SERVICE,
    AgentProcess,
    Mesh,
    agent_section,
    export_port,
    instance_client,
    instance_export,
    refer,
    set_available,
    wait_endpoints,
)
from tests.servers.etcd import EtcdServer, etcd_binary
from tests.servers.zookeeper import ZooKeeperServer, zookeeper_missing

#: how long to keep watching for late replies of a removed provider
REMOVE_WINDOW = 3.0
PAUSE = 1.0
FOLLOW_TIMEOUT = 15.0


@contextmanager
def registry(kind: str, work: Path) -> Iterator[dict[str, Any]]:
    """A running registry server (none for ``embedded``) and the agents' registry entry."""
    if kind == "zookeeper":
        zk = ZooKeeperServer()
        zk.start()
        try:
            yield {"protocol": "zookeeper", "address": zk.hosts}
        finally:
            zk.close()
    elif kind == "etcd":
        etcd = EtcdServer(work / "etcd")
        etcd.start()
        try:
            yield {"protocol": "etcd", "address": etcd.address}
        finally:
            etcd.stop()
    else:
        yield {"protocol": "embedded", "address": str(work / "registry.db")}


def agent(mesh: Mesh, name: str, entry: dict[str, Any], **sections: Any) -> AgentProcess:
    config = {
        "motan-agent": agent_section(name, snapshot_dir=f"./{name}-snapshot"),
        "motan-registry": {"local": entry},
        **sections,
    }
    return mesh.agent(name, config, env={INSTANCE_ENV: name})


class Stream:
    """Calls in a loop; remembers when each reply of ``watched`` came back."""

    def __init__(self, client: Any, workers: int, watched: str) -> None:
        self.watched = watched
        self.times: list[float] = []
        self.calls = 0
        self.failures = 0
        self._client = client
        self._running = True
        self._tasks = [asyncio.ensure_future(self._worker()) for _ in range(workers)]

    async def _worker(self) -> None:
        client, clock = self._client, time.monotonic
        while self._running:
            try:
                reply = await client.call(INSTANCE_SERVICE, "whoami")
            except Exception:
                self.failures += 1
                continue
            self.calls += 1
            if reply == self.watched:
                self.times.append(clock())

    async def stop(self) -> None:
        self._running = False
        await asyncio.gather(*self._tasks)


async def first_after(stream: Stream, start: float) -> float:
    deadline = time.monotonic() + FOLLOW_TIMEOUT
    while time.monotonic() < deadline:
        later = [t for t in stream.times if t >= start]
        if later:
            return later[0] - start
        await asyncio.sleep(0.001)
    return float("nan")


async def measure(kind: str, rounds: int, workers: int) -> tuple[list[float], list[float], int]:
    with tempfile.TemporaryDirectory(prefix="motanmesh-bench-") as tmp:
        work = Path(tmp)
        mesh = Mesh(work)
        try:
            with registry(kind, work) as entry:
                exports = {}
                servers = {}
                for name in ("a", "b"):
                    export = instance_export()
                    services = {"motan-service": {"i": export}}
                    servers[name] = agent(mesh, name, entry, **services)
                    exports[name] = f"127.0.0.1:{export_port(export)}"
                set_available(servers["a"])
                refers = {"i": refer(INSTANCE_SERVICE, INSTANCE_GROUP, loadbalance="roundrobin")}
                client = agent(mesh, "client", entry, **{"motan-refer": refers})
                await asyncio.to_thread(wait_endpoints, client, "i", {exports["a"]})
                adds: list[float] = []
                removes: list[float] = []
                async with instance_client(client) as app:
                    stream = Stream(app, workers, "b")
                    for _ in range(rounds):
                        await asyncio.sleep(PAUSE)
                        start = time.monotonic()
                        await asyncio.to_thread(servers["b"].management, "/200")
                        adds.append(await first_after(stream, start))
                        await asyncio.sleep(PAUSE)
                        start = time.monotonic()
                        await asyncio.to_thread(servers["b"].management, "/503")
                        await asyncio.sleep(REMOVE_WINDOW)
                        last = max((t for t in stream.times if t >= start), default=start)
                        late = time.monotonic() - last < PAUSE  # still served lately
                        removes.append(float("nan") if late else last - start)
                    await stream.stop()
                return adds, removes, stream.failures
        finally:
            mesh.close()


def ms(values: list[float], how: str) -> str:
    good = [v for v in values if not math.isnan(v)]
    if len(good) < len(values):
        return "did not follow"
    value = statistics.median(good) if how == "median" else max(good)
    return f"{value * 1000:.0f}"


def missing_server(kinds: list[str]) -> str | None:
    """The one line to print when a chosen backend's server is not installed."""
    if "zookeeper" in kinds:
        why = zookeeper_missing()
        if why:
            return f"cannot measure zookeeper: {why} (Debian: zookeeperd; or --backends embedded)"
    if "etcd" in kinds and etcd_binary() is None:
        return "cannot measure etcd: no etcd binary (Debian: etcd-server; or --backends embedded)"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--backends", default="zookeeper,etcd,embedded")
    args = parser.parse_args()
    problem = missing_server(args.backends.split(","))
    if problem:
        print(problem, file=sys.stderr)
        return 2
    print(f"{args.rounds} rounds, {args.workers} call loops; figures in ms (median / max)")
    print(f"{'registry':<10} {'add':>16} {'remove':>16}  failed calls")
    for kind in args.backends.split(","):
        adds, removes, failures = asyncio.run(measure(kind, args.rounds, args.workers))
        add = f"{ms(adds, 'median')} / {ms(adds, 'max')}"
        remove = f"{ms(removes, 'median')} / {ms(removes, 'max')}"
        print(f"{kind:<10} {add:>16} {remove:>16}  {failures}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
