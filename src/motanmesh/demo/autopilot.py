"""The autopilot scenario: a surge in one IDC, traffic moved to the other and back.

``scripts/demo autopilot`` (``python -m motanmesh.demo.autopilot``) starts, as processes on
127.0.0.1, on the embedded registry (or ZooKeeper with ``--registry zookeeper://host:port``):

* IDC A and IDC B: one demo service each, able to serve ``--capacity`` calls/s (beyond that
  latency rises, then calls fail), behind a server agent of group ``demo-rpc-a`` / ``-b``;
* one client agent per IDC (its application refers to its own IDC's group), both with the
  ``metrics`` and ``clusterMetrics`` filters, so demand is counted where it starts;
* the autopilot (``motanmesh autopilot``) with its console;

then sends calls into each IDC's client agent, raising IDC A's demand over its warning level
and later lowering it. Every second it prints a line of the timeline (demand, water levels,
the share of A's calls moved to B, failed calls); at the end it writes a picture of the run
(SVG: water levels and split over time) and a summary: how soon traffic moved after the
surge crossed the warning level, failed calls, changes of direction, and how soon traffic
came home after the surge.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from motanmesh.autopilot.chart import chart_svg
from motanmesh.demo.ports import reserve_port
from motanmesh.sdk.client import MotanClient

__all__ = ["QUICK", "STANDARD", "Failure", "Phase", "Sample", "Scenario", "Summary", "main"]

SERVICE = "com.weibo.motan.demo.service.MotanDemoService"
GROUPS = {"a": "demo-rpc-a", "b": "demo-rpc-b"}
WARNING, TARGET = 0.8, 0.6
# The SLO guard: a saturated demo service queues calls up to ``max_wait`` (3 s) before it
# refuses them, so a real overload drives the p99 latency towards 3 s and keeps it there.
# A CPU stall of one process on a busy machine (rarely over 1.5 s) holds up the calls in
# flight for one telemetry window (3 s); with few calls in the window (B's 4 calls/s) the
# p99 is the slowest call, read from the histogram as the top of its bucket: a call of
# 1.1 s reads as a p99 of about 2.4 s (bucket 1-2.5 s). The limit is that bucket's top, so
# only calls over 2.5 s (a real queue) can break it, and the breach must last longer than
# a window.
P99_LIMIT, SLO_SUSTAIN = 2.5, 5.0
#: rounds the autopilot makes (interval 0.5 s), with fresh telemetry, before the profile starts
SETTLE_ROUNDS = 10
#: how late (s) the load generator may fall behind its schedule before it skips calls
LATE = 0.5
READY = {"agent": "motanmesh agent ready:", "service": "demo-service listening on"}


@dataclass(frozen=True)
class Phase:
    """``seconds`` during which A's demand goes linearly from ``a_from`` to ``a_to`` (as a
    fraction of A's capacity) while B's stays at ``b``."""

    seconds: float
    a_from: float
    a_to: float
    b: float = 0.2


# A surges to 110% of its capacity while B runs at 10%: the need (46% of A's calls moved,
# to bring A to the target level) leaves B well under its own warning level (74%), so that
# noise in the measured rates cannot make the receiver look full. (With B at 20% and A at
# 120%, need and room were both 50%: every wobble of the rates lowered and raised the split.)
SURGE, B_LEVEL = 1.1, 0.1
STANDARD = (
    Phase(15, 0.4, 0.4, B_LEVEL),
    Phase(15, 0.4, SURGE, B_LEVEL),
    Phase(30, SURGE, SURGE, B_LEVEL),
    Phase(5, SURGE, 0.35, B_LEVEL),
    Phase(45, 0.35, 0.35, B_LEVEL),
)
QUICK = (
    Phase(8, 0.4, 0.4, B_LEVEL),
    Phase(10, 0.4, SURGE, B_LEVEL),
    Phase(18, SURGE, SURGE, B_LEVEL),
    Phase(3, SURGE, 0.35, B_LEVEL),
    Phase(40, 0.35, 0.35, B_LEVEL),
)


def demand_at(phases: tuple[Phase, ...], t: float) -> tuple[float, float]:
    """(A, B) demand as fractions of capacity at ``t`` seconds."""
    start = 0.0
    for phase in phases:
        if t < start + phase.seconds:
            x = (t - start) / phase.seconds
            return phase.a_from + (phase.a_to - phase.a_from) * x, phase.b
        start += phase.seconds
    return phases[-1].a_to, phases[-1].b


def free_port() -> int:
    return reserve_port()


@dataclass
class Sample:
    t: float
    want_a: float  # demand of A the load generator aims at (fraction of capacity)
    want_b: float
    ok: int
    failed: int
    moved: int  # % of A's calls sent to B by the command in force
    level_a: float = 0.0
    level_b: float = 0.0
    p99_a: float = 0.0  # p99 latency (s) at each IDC's server agent, over the window
    p99_b: float = 0.0


@dataclass(frozen=True)
class Failure:
    """A failed call: when it was sent (s since the start), how long it took, from which
    IDC's application, and why."""

    t: float
    took: float
    idc: str
    reason: str


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:160]


def failure_report(failures: list[Failure], limit: int = 20) -> list[str]:
    """The failed calls grouped by reason (count, first and last time), then the first few."""
    by_reason: dict[str, list[Failure]] = {}
    for f in failures:
        by_reason.setdefault(f.reason, []).append(f)
    lines = [
        f"{len(fs)} x {reason} (sent t={fs[0].t:.1f}s..{fs[-1].t:.1f}s, IDC "
        f"{','.join(sorted({f.idc for f in fs}))}, took up to {max(f.took for f in fs):.1f}s)"
        for reason, fs in sorted(by_reason.items(), key=lambda kv: -len(kv[1]))
    ]
    lines += [
        f"  t={f.t:.2f}s took {f.took:.2f}s IDC {f.idc}: {f.reason}" for f in failures[:limit]
    ]
    return lines


@dataclass
class Summary:
    crossed_at: float | None = None
    moved20_at: float | None = None
    fell_at: float | None = None
    home_at: float | None = None
    calls: int = 0
    failed: int = 0
    direction_changes: int = 0
    max_moved: int = 0
    max_p99: tuple[float, float] = (0.0, 0.0)  # the highest p99 seen in A and in B, seconds
    unsent: int = 0  # calls the load generator skipped while it was held up

    @property
    def failure_ratio(self) -> float:
        return self.failed / self.calls if self.calls else 0.0

    def lines(self) -> list[str]:
        def since(a: float | None, b: float | None) -> str:
            return "never" if a is None or b is None else f"{a - b:.1f}s"

        return [
            f"A's demand crossed the warning level at t={self.crossed_at or 0:.1f}s; "
            f">=20% of A's calls moved to B {since(self.moved20_at, self.crossed_at)} later "
            f"(at most {self.max_moved}%)",
            f"A's demand fell at t={self.fell_at or 0:.1f}s; all traffic home "
            f"{since(self.home_at, self.fell_at)} later",
            f"calls: {self.calls}, failed: {self.failed} ({self.failure_ratio:.3%}); "
            f"the split changed direction {self.direction_changes} time(s)",
            f"highest p99 latency: A {self.max_p99[0] * 1000:.0f}ms, "
            f"B {self.max_p99[1] * 1000:.0f}ms (SLO guard at {P99_LIMIT * 1000:.0f}ms)",
            f"calls the load generator skipped while it was held up (CPU): {self.unsent}",
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "crossedAt": self.crossed_at,
            "moved20At": self.moved20_at,
            "fellAt": self.fell_at,
            "homeAt": self.home_at,
            "calls": self.calls,
            "failed": self.failed,
            "failureRatio": self.failure_ratio,
            "directionChanges": self.direction_changes,
            "maxMoved": self.max_moved,
            "maxP99": list(self.max_p99),
            "unsent": self.unsent,
        }


def summarize(samples: list[Sample], phases: tuple[Phase, ...]) -> Summary:
    summary = Summary()
    surge_end = sum(p.seconds for p in phases[:3])
    for s in samples:
        if summary.crossed_at is None and s.want_a > WARNING:
            summary.crossed_at = s.t
        if summary.crossed_at is not None and summary.moved20_at is None and s.moved >= 20:
            summary.moved20_at = s.t
        if summary.fell_at is None and s.t >= surge_end:
            summary.fell_at = s.t
        if summary.fell_at is not None and summary.home_at is None and s.moved == 0:
            summary.home_at = s.t
        summary.calls += s.ok + s.failed
        summary.failed += s.failed
        summary.max_moved = max(summary.max_moved, s.moved)
        summary.max_p99 = (max(summary.max_p99[0], s.p99_a), max(summary.max_p99[1], s.p99_b))
    steps = [b.moved - a.moved for a, b in itertools.pairwise(samples)]
    signs = [d > 0 for d in steps if d != 0]
    summary.direction_changes = sum(1 for x, y in itertools.pairwise(signs) if x != y)
    return summary


def timeouts(max_wait: float) -> tuple[int, int]:
    """(server agent, client agent) ``requestTimeout`` in ms for demo services that queue a
    call up to ``max_wait`` seconds: each hop waits longer than the one behind it, so that an
    overload shows as latency and then as the service's own refusals (503), never as a hop
    giving up first. (With the default 1000 ms, calls queued over 1 s failed as ``channel
    call error ... timed out`` at the server agent, and ten of those in a row marked the
    server agent down at the client agent: ``no available endpoints``.)"""
    server = round((max_wait + 1.0) * 1000)
    return server, server + 2000


def server_agent_yaml(
    name: str, ports: dict[str, int], registry: dict[str, Any], max_wait: float
) -> str:
    doc = {
        "motan-agent": {
            "port": ports["port"],
            "mport": ports["mport"],
            "eport": ports["export"],
            "application": f"demo-server-{name}",
            "registry": "reg",
            "runtime_dir": f"./server-{name}-runtime",
            "pidfile": f"./server-{name}.pid",
            "drainTime": 1,
        },
        "motan-registry": {"reg": registry},
        "motan-service": {
            "demo": {
                "registry": "reg",
                "path": SERVICE,
                "group": GROUPS[name],
                "export": f"motan2:{ports['export']}",
                "proxy": f"motan2:{ports['service']}",
                "filter": "metrics",
                "requestTimeout": timeouts(max_wait)[0],
            }
        },
    }
    return json.dumps(doc, indent=1)


def client_agent_yaml(
    name: str, ports: dict[str, int], registry: dict[str, Any], max_wait: float
) -> str:
    doc = {
        "motan-agent": {
            "port": ports["port"],
            "mport": ports["mport"],
            "application": f"demo-client-{name}",
            "registry": "reg",
            "runtime_dir": f"./client-{name}-runtime",
            "pidfile": f"./client-{name}.pid",
            "drainTime": 1,
            "defaultFilter": "metrics,clusterMetrics",
        },
        "motan-registry": {"reg": registry},
        "motan-refer": {
            "demo": {
                "registry": "reg",
                "path": SERVICE,
                "group": GROUPS[name],
                "requestTimeout": timeouts(max_wait)[1],
            }
        },
    }
    return json.dumps(doc, indent=1)


def autopilot_yaml(registry: dict[str, Any], capacity: float, console_port: int) -> str:
    doc = {
        "registry": registry,
        "name": "demo",
        "interval": 0.5,
        "window": 3,
        "staleAfter": 6,
        "decisionLog": "./autopilot-decisions.jsonl",
        "telemetry": [{"type": "agents", "interval": 0.5}],
        "console": {"host": "127.0.0.1", "port": console_port},
        "services": [
            {
                "service": SERVICE,
                "groups": list(GROUPS.values()),
                "capacity": {"perInstance": capacity},
                "policy": {
                    "warning": WARNING,
                    "target": TARGET,
                    "stepLimit": 0.3,
                    "maxShare": 0.6,
                    "hold": 10,
                    "cooldown": 3,
                    "hysteresis": 0.05,
                },
                "slo": {"p99": P99_LIMIT, "errorRatio": 0.02, "sustain": SLO_SUSTAIN},
            }
        ],
    }
    return json.dumps(doc, indent=1)


@dataclass
class Scenario:
    workdir: Path
    registry: str = "embedded"
    capacity: float = 40.0
    # the capacity per instance the autopilot is told (0: the real one); a model that
    # overstates it leaves the overload to the SLO guard
    declared: float = 0.0
    phases: tuple[Phase, ...] = STANDARD
    max_wait: float = 3.0  # a backlog the demo services absorb before refusing calls
    console_port: int = 0
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    unsent: int = 0  # calls the load generator skipped because it was held up

    def __post_init__(self) -> None:
        self.ports = {
            name: {k: free_port() for k in ("service", "port", "mport", "export", "cport", "cm")}
            for name in GROUPS
        }
        self.console_port = self.console_port or free_port()

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.console_port}/"

    def registry_entry(self) -> dict[str, Any]:
        if self.registry == "embedded":
            # nodes live 10 s without a renewal (3 s by default): on a busy machine a server
            # agent starved of CPU for a few seconds must not vanish from the registry (its
            # group's capacity would read 0, and the autopilot take all traffic back)
            file = str(self.workdir / "registry.db")
            return {"protocol": "embedded", "file": file, "ttl": 10}
        protocol, _, address = self.registry.partition("://")
        return {"protocol": protocol, "address": address}

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "motanmesh.cli", *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.workdir / f"{name}.log", "wb") as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                cmd, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self.procs[name] = proc
        return proc

    def wait_output(self, name: str, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        path = self.workdir / f"{name}.log"
        while time.monotonic() < deadline:
            if text in path.read_text(errors="replace"):
                return
            if self.procs[name].poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not print {text!r}:\n{path.read_text(errors='replace')}")

    def start(self) -> None:
        registry = self.registry_entry()
        for name, ports in self.ports.items():
            self.spawn(
                f"service-{name}",
                "demo-service",
                "--port",
                str(ports["service"]),
                "--group",
                GROUPS[name],
                "--capacity",
                str(self.capacity),
                "--max-wait",
                str(self.max_wait),
            )
            server = self.workdir / f"server-{name}.yaml"
            server.write_text(server_agent_yaml(name, ports, registry, self.max_wait))
            client = self.workdir / f"client-{name}.yaml"
            client_ports = {"port": ports["cport"], "mport": ports["cm"]}
            client.write_text(client_agent_yaml(name, client_ports, registry, self.max_wait))
            self.spawn(f"server-{name}", "agent", "-c", str(server))
            self.spawn(f"client-{name}", "agent", "-c", str(client))
        for name in GROUPS:
            self.wait_output(f"service-{name}", READY["service"])
            self.wait_output(f"server-{name}", READY["agent"])
            self.wait_output(f"client-{name}", READY["agent"])
            self.management(self.ports[name]["mport"], "/200")
        # the autopilot starts on a working mesh: every client agent reaches its group's
        # server agent through the registry (so the registry lists every group's instances
        # when the autopilot first counts them; a group counted at 0 instances has no
        # capacity, and its demand would look like an overload)
        asyncio.run(self._warm_up())
        config = self.workdir / "autopilot.yaml"
        declared = self.declared or self.capacity
        config.write_text(autopilot_yaml(registry, declared, self.console_port))
        self.spawn("autopilot", "autopilot", "-c", str(config))
        self.wait_output("autopilot", "motanmesh autopilot ready:")
        # the profile starts once the autopilot has settled: its first rounds (discovery,
        # first scrapes, the console) are a burst of CPU that, on a busy machine, stalled
        # the agents and made the first seconds of the load look like a surge
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            state = self.state()
            if int(state.get("rounds", 0)) >= SETTLE_ROUNDS and not state.get("stale"):
                break
            time.sleep(0.2)

    async def _warm_up(self, timeout: float = 60.0) -> None:
        for name, group in GROUPS.items():
            address = f"127.0.0.1:{self.ports[name]['cport']}"
            deadline = time.monotonic() + timeout
            async with MotanClient(address, application="demo-warm-up", timeout=5.0) as client:
                while True:
                    try:
                        await client.call(SERVICE, "echo", "warm-up", group=group)
                        break
                    except Exception as exc:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"IDC {name}: no call went through: {exc}") from exc
                        await asyncio.sleep(0.2)

    @staticmethod
    def management(port: int, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return str(r.read().decode())

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.console_url + "api/state", timeout=5) as r:
            data: dict[str, Any] = json.loads(r.read())
        return data

    def moved(self, state: dict[str, Any]) -> int:
        split = state["services"][SERVICE]["split"].get(GROUPS["a"], {})
        return 100 - int(split.get(GROUPS["a"], 100))

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = (self.workdir / f"{name}.log").read_text(errors="replace")
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log[-3000:]}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    async def _load(
        self, name: str, stop: asyncio.Event, start: float, counts: dict[str, list[int]]
    ) -> None:
        """Open-loop calls into IDC ``name``'s client agent at the profile's rate."""
        address = f"127.0.0.1:{self.ports[name]['cport']}"
        in_flight: set[asyncio.Task[None]] = set()
        timeout = timeouts(self.max_wait)[1] / 1000 + 2.0
        async with MotanClient(address, application=f"demo-app-{name}", timeout=timeout) as client:

            async def one() -> None:
                sent = time.monotonic()
                try:
                    await client.call(SERVICE, "hello", "autopilot", group=GROUPS[name])
                    counts[name][0] += 1
                except Exception as exc:
                    counts[name][1] += 1
                    now = time.monotonic()
                    self.failures.append(
                        Failure(round(sent - start, 2), round(now - sent, 2), name, describe(exc))
                    )

            next_at = time.monotonic()
            while not stop.is_set():
                t = time.monotonic() - start
                want = demand_at(self.phases, t)[0 if name == "a" else 1] * self.capacity
                next_at += 1.0 / max(want, 0.5)
                late = time.monotonic() - next_at
                if late > LATE:
                    # the generator itself was held up (a CPU stall of this process): the
                    # calls it owes are not sent in a burst, which would look like a surge
                    self.unsent += round(late * want)
                    next_at = time.monotonic()
                if len(in_flight) < 500:
                    task = asyncio.create_task(one())
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if in_flight:
                await asyncio.wait(in_flight, timeout=timeout + 1.0)

    async def run(self, on_sample: Any = None) -> Summary:
        """Drive the load through the phases; sample once a second."""
        total = sum(p.seconds for p in self.phases)
        stop = asyncio.Event()
        start = time.monotonic()
        counts = {n: [0, 0] for n in GROUPS}
        loads = [asyncio.create_task(self._load(n, stop, start, counts)) for n in GROUPS]
        seen = [0, 0]
        try:
            while (t := time.monotonic() - start) < total:
                await asyncio.sleep(1.0 - (t % 1.0))
                t = time.monotonic() - start
                self.check_alive()
                state = await asyncio.to_thread(self.state)
                levels = state["services"][SERVICE]["state"]
                ok = sum(c[0] for c in counts.values())
                failed = sum(c[1] for c in counts.values())
                want_a, want_b = demand_at(self.phases, t)
                sample = Sample(
                    t=round(t, 1),
                    want_a=want_a,
                    want_b=want_b,
                    ok=ok - seen[0],
                    failed=failed - seen[1],
                    moved=self.moved(state),
                    level_a=float(levels.get(GROUPS["a"], {}).get("level", 0.0)),
                    level_b=float(levels.get(GROUPS["b"], {}).get("level", 0.0)),
                    p99_a=float(levels.get(GROUPS["a"], {}).get("p99") or 0.0),
                    p99_b=float(levels.get(GROUPS["b"], {}).get("p99") or 0.0),
                )
                seen = [ok, failed]
                self.samples.append(sample)
                if on_sample is not None:
                    on_sample(sample)
        finally:
            stop.set()
            await asyncio.gather(*loads, return_exceptions=True)
        last = Sample(total, 0, 0, 0, 0, self.samples[-1].moved if self.samples else 0)
        extra_ok = sum(c[0] for c in counts.values()) - seen[0]
        extra_failed = sum(c[1] for c in counts.values()) - seen[1]
        last.ok, last.failed = extra_ok, extra_failed
        if extra_ok or extra_failed:
            self.samples.append(last)
        summary = summarize(self.samples, self.phases)
        summary.unsent = self.unsent
        return summary

    def picture(self) -> str:
        """Water levels, demand and the share moved over time (SVG)."""
        levels = {
            "A water level": [(s.t, s.level_a) for s in self.samples],
            "B water level": [(s.t, s.level_b) for s in self.samples],
            "A demand": [(s.t, s.want_a) for s in self.samples],
        }
        top = chart_svg(
            levels,
            title="autopilot scenario: water levels (load / capacity) and A's demand",
            width=760,
            height=260,
            lines={"warning": WARNING, "target": TARGET},
            percent=True,
        )
        split = chart_svg(
            {"moved A to B": [(s.t, s.moved / 100) for s in self.samples]},
            title="split: share of IDC A's calls routed to IDC B",
            width=760,
            height=180,
            y_max=1.0,
            percent=True,
        )
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" width="760" height="440">'
            f'<g>{top}</g><g transform="translate(0,260)">{split}</g></svg>'
        )


def timeline_line(s: Sample) -> str:
    return (
        f"t={s.t:5.1f}s  demand A {s.want_a:4.0%} B {s.want_b:4.0%}  "
        f"level A {s.level_a:4.0%} B {s.level_b:4.0%}  A->B {s.moved:3d}%  "
        f"p99 A {s.p99_a * 1000:4.0f}ms B {s.p99_b * 1000:4.0f}ms  "
        f"calls {s.ok:3d} ok {s.failed:3d} failed"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="motanmesh demo autopilot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--registry", default="embedded", help="embedded or zookeeper://h:p")
    parser.add_argument("--capacity", type=float, default=40.0, help="calls/s per IDC (40)")
    parser.add_argument("--quick", action="store_true", help="a shorter profile (~80 s)")
    parser.add_argument("--picture", default="autopilot-demo.svg", help="SVG file to write")
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="motanmesh-autopilot-demo-"))
    phases = QUICK if args.quick else STANDARD
    scenario = Scenario(workdir, registry=args.registry, capacity=args.capacity, phases=phases)
    print(f"run directory {workdir}", flush=True)
    print(
        "starting: IDC A and B (demo service with capacity "
        f"{args.capacity:g} calls/s, server agent, client agent each), the autopilot",
        flush=True,
    )
    try:
        scenario.start()
        print(f"console: {scenario.console_url}", flush=True)
        summary = asyncio.run(scenario.run(on_sample=lambda s: print(timeline_line(s), flush=True)))
    finally:
        scenario.stop()
    Path(args.picture).write_text(scenario.picture())
    decisions = (workdir / "autopilot-decisions.jsonl").read_text().splitlines()
    print("\ndecisions that changed the split:")
    for line in decisions:
        d = json.loads(line)
        if d.get("written"):
            print(f"  {d['time']} {d['group']} {d['rule']}: {d['before']} -> {d['after']}")
    print()
    for line in summary.lines():
        print(line)
    if scenario.failures:
        print("failed calls:")
        for line in failure_report(scenario.failures):
            print(f"  {line}")
    print(f"picture: {Path(args.picture).resolve()}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    good = (
        summary.moved20_at is not None
        and summary.crossed_at is not None
        and summary.moved20_at - summary.crossed_at <= 10
        and summary.failure_ratio < 0.001
        and summary.direction_changes <= 1
        and summary.home_at is not None
        and summary.fell_at is not None
        and summary.home_at - summary.fell_at <= 60
    )
    print("scenario " + ("succeeded" if good else "FAILED"))
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
