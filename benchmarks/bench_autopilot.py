"""The autopilot's costs: decision latency, and one round at 1,000 services x 3 IDCs.

* **latency**: an autopilot on a fresh embedded registry (``--interval`` between rounds)
  listens for Go agents' metric datagrams; the script sends one datagram saying IDC A's
  client agents sent 1.5 x A's capacity and times until the command is in the registry
  (read by another registry instance polling every 10 ms). Repeated ``--trials`` times.
* **cost**: an autopilot steering ``--services`` services of 3 groups each (``instances``
  fixed, so the registry is not listed), its telemetry store filled as by 2 agents per group
  and role, 10% of the services over their warning level; dry-run (the decisions are made
  and logged, not written). CPU time, wall time and memory allocated per evaluation round,
  and the process's RSS.

    python benchmarks/bench_autopilot.py [--trials 10] [--interval 0.2] [--services 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from motanmesh.autopilot.config import parse_config
from motanmesh.autopilot.graphite import GraphiteReceiver, escape
from motanmesh.autopilot.runner import Autopilot
from motanmesh.autopilot.store import CLIENT_ROLE, SERVER_ROLE, Delta, Key
from motanmesh.registry.embedded import EmbeddedRegistry
from motanmesh.url import URL

SERVICE = "com.example.bench.Service"


def _config(tmp: Path, services: list[dict[str, Any]], **top: Any) -> Any:
    return parse_config(
        {
            "registry": {"protocol": "embedded", "file": str(tmp / "registry.db")},
            "decisionLog": str(tmp / "decisions.jsonl"),
            "services": services,
            **top,
        },
        "bench",
    )


async def one_trial(interval: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        config = _config(
            tmp,
            [
                {
                    "service": SERVICE,
                    "groups": ["bench-a", "bench-b"],
                    "capacity": {"perInstance": 100, "instances": {"bench-a": 1, "bench-b": 1}},
                }
            ],
            interval=interval,
            window=5,
            staleAfter=30,
            telemetry=[{"type": "graphite", "port": 0, "period": 5}],
        )
        autopilot = Autopilot(config)
        await autopilot.start()
        watcher = EmbeddedRegistry(
            URL("embedded", parameters={"file": str(tmp / "registry.db"), "pollInterval": "0.01"})
        )
        await watcher.start()
        seen = asyncio.Event()

        def on_command(value: str | None) -> None:
            if value:
                seen.set()

        await watcher.subscribe_command("bench-a", on_command)
        try:
            await asyncio.sleep(interval * 2)
            receiver = autopilot.sources[0]
            assert isinstance(receiver, GraphiteReceiver)
            line = (
                f"{CLIENT_ROLE}.app.bench-a.byhost.10_0_0_1.{escape(SERVICE)}.m.total_count:750|c"
            )
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sent = time.perf_counter()
                sock.sendto(line.encode(), ("127.0.0.1", receiver.port))
            await asyncio.wait_for(seen.wait(), 30)
            observed = time.perf_counter() - sent
            await asyncio.sleep(interval)  # the decision is logged after the write returns
            written = next(d for d in autopilot.log.recent if d.written)
            decided = written.time - (time.time() - (time.perf_counter() - sent))
        finally:
            await watcher.close()
            await autopilot.close()
    return decided, observed


def fill(autopilot: Autopilot, services: int, now: float) -> None:
    deltas = []
    for i in range(services):
        name = f"{SERVICE}{i}"
        for j, group in enumerate((f"s{i}-a", f"s{i}-b", f"s{i}-c")):
            demand = 130.0 if (i % 10 == 0 and j == 0) else 40.0
            for origin in ("h1", "h2"):
                for end in (now - 2, now - 1, now):
                    deltas.append(
                        Delta(origin, Key(CLIENT_ROLE, group, name), end - 1, end, demand / 2)
                    )
                    deltas.append(
                        Delta(
                            origin,
                            Key(SERVER_ROLE, group, name),
                            end - 1,
                            end,
                            demand / 2,
                            buckets={0.05: demand / 2, float("inf"): demand / 2},
                        )
                    )
    autopilot.store.add(deltas)


async def cost(services: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        specs = [
            {
                "service": f"{SERVICE}{i}",
                "groups": [f"s{i}-a", f"s{i}-b", f"s{i}-c"],
                "capacity": {
                    "perInstance": 50,
                    "instances": {f"s{i}-a": 2, f"s{i}-b": 2, f"s{i}-c": 2},
                },
            }
            for i in range(services)
        ]
        config = _config(
            tmp,
            specs,
            dryRun=True,
            window=3,
            staleAfter=60,
            telemetry=[{"type": "graphite", "port": 0}],
        )
        autopilot = Autopilot(config)
        await autopilot.start()
        assert autopilot._task is not None
        autopilot._task.cancel()  # rounds are run by hand below
        try:
            receiver = autopilot.sources[0]
            assert isinstance(receiver, GraphiteReceiver)
            cpu, wall = [], []
            for _ in range(rounds):
                now = autopilot.clock()
                fill(autopilot, services, now)  # as the datagrams of 6 agents per service would
                receiver.last_at = now
                c0, w0 = time.process_time(), time.perf_counter()
                await autopilot.evaluate()
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
            fill(autopilot, services, autopilot.clock())
            receiver.last_at = autopilot.clock()
            tracemalloc.start()  # a round more, traced (tracing slows it: not timed)
            await autopilot.evaluate()
            alloc = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
            decisions = len(autopilot.log.recent)
        finally:
            await autopilot.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steady = slice(1, None) if rounds > 1 else slice(None)
    return {
        "cpu_ms": statistics.median(cpu[steady]) * 1000,
        "wall_ms": statistics.median(wall[steady]) * 1000,
        "first_round_ms": wall[0] * 1000,
        "alloc_peak_mb": alloc,
        "rss_mb": rss,
        "decisions": decisions,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    decided, observed = [], []
    for _ in range(args.trials):
        d, o = asyncio.run(one_trial(args.interval))
        decided.append(d * 1000)
        observed.append(o * 1000)
    print(f"decision latency, interval {args.interval:g}s, {args.trials} trials (ms):")
    print(
        f"  sample -> decision written: median {statistics.median(decided):.0f}, "
        f"max {max(decided):.0f}"
    )
    print(
        f"  sample -> command seen in the registry: median {statistics.median(observed):.0f}, "
        f"max {max(observed):.0f}"
    )
    figures = asyncio.run(cost(args.services, args.rounds))
    print(f"one round at {args.services} services x 3 groups (dry-run):")
    print(
        f"  cpu {figures['cpu_ms']:.0f} ms, wall {figures['wall_ms']:.0f} ms "
        f"(first round {figures['first_round_ms']:.0f} ms), "
        f"allocated at peak {figures['alloc_peak_mb']:.1f} MB, "
        f"process RSS {figures['rss_mb']:.0f} MB, {figures['decisions']} decisions logged"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
