"""Wire codec throughput on one core.

Cases (a typical request: 5 metadata keys, a 100-byte simple body holding one string):

* ``full``: parse the frame, decode the body values, encode them again, encode the frame;
* ``passthrough``: ``FrameDecoder.feed`` on the frame bytes, then ``forward`` with a new id,
  ``M_rid`` added and the proxy bit set (what the agent does per request);
* ``passthrough x16``: the same with 16 frames arriving in one read;
* ``decoder``: ``FrameDecoder.feed`` only;
* ``forward``: ``forward`` only, on an already decoded frame.

Usage: ``python benchmarks/bench_wire.py [--seconds S] [--rounds N]``: each case runs for ``S``
seconds in all, split into ``N`` rounds that alternate between the cases; the best round of each
case is printed, with the wire modules that ran compiled (mypyc).

``--builds installed,interpreted`` measures the installed build against the interpreted one
(the same sources without their compiled extensions) within one run: each round runs one child
process per build, in turn, and the best round of each case and build is printed with the
ratio of the two.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness import interpreted_env

from motanmesh.wire import compiled_modules
from motanmesh.wire.decoder import FrameDecoder
from motanmesh.wire.frame import FLAG_PROXY, Frame, encode_frame, parse_frame, request_frame
from motanmesh.wire.passthrough import forward
from motanmesh.wire.serialization import get_serialization

SIMPLE = get_serialization("simple")
METADATA = {
    "M_p": "com.weibo.motan.demo.service.MotanDemoService",
    "M_m": "hello",
    "M_g": "motan-demo-rpc",
    "M_s": "bench-app",
    "M_pp": "motan2",
}
BODY = SIMPLE.encode_multi(["x" * 95])
assert len(BODY) == 100
RAW = encode_frame(request_frame(1795642070079111169, METADATA, BODY))
BATCH = 16
RAW_BATCH = RAW * BATCH
NEW_ID = 1795642070081208321


def case_full() -> Callable[[], int]:
    def op() -> int:
        frame = parse_frame(RAW)
        values = SIMPLE.decode_multi(frame.body)
        frame.body = SIMPLE.encode_multi(values)
        encode_frame(frame)
        return 1

    return op


def case_passthrough() -> Callable[[], int]:
    dec = FrameDecoder()
    feed = dec.feed
    changes = {"M_rid": "1795642070079111169"}

    def op() -> int:
        for frame in feed(RAW):
            assert isinstance(frame, Frame)
            forward(frame, NEW_ID, changes, set_flags=FLAG_PROXY)
        return 1

    return op


def case_passthrough_batch() -> Callable[[], int]:
    dec = FrameDecoder()
    feed = dec.feed
    changes = {"M_rid": "1795642070079111169"}

    def op() -> int:
        n = 0
        for frame in feed(RAW_BATCH):
            assert isinstance(frame, Frame)
            forward(frame, NEW_ID, changes, set_flags=FLAG_PROXY)
            n += 1
        return n

    return op


def case_decoder() -> Callable[[], int]:
    dec = FrameDecoder()
    feed = dec.feed

    def op() -> int:
        feed(RAW)
        return 1

    return op


def case_forward() -> Callable[[], int]:
    (frame,) = FrameDecoder().feed(RAW)
    assert isinstance(frame, Frame)
    changes = {"M_rid": "1795642070079111169"}

    def op() -> int:
        forward(frame, NEW_ID, changes, set_flags=FLAG_PROXY)
        return 1

    return op


CASES: list[tuple[str, Callable[[], Callable[[], int]]]] = [
    ("(a) full decode+encode", case_full),
    ("(b) passthrough", case_passthrough),
    (f"(b) passthrough x{BATCH}", case_passthrough_batch),
    ("(c) decoder", case_decoder),
    ("(d) forward", case_forward),
]


def measure(
    ops: list[Callable[[], int]], seconds: float, rounds: int, inner: int = 200
) -> list[float]:
    """Best frames-per-second of each op over ``rounds`` rounds of ``seconds / rounds``.

    The cases take turns round by round, so a busy machine slows them alike, and the best round
    of each is reported (as ``timeit`` does): other processes only ever slow a round down.
    """
    for op in ops:
        for _ in range(1000):
            op()
    clock = time.perf_counter
    best = [0.0] * len(ops)
    for _ in range(rounds):
        for i, op in enumerate(ops):
            frames = 0
            start = clock()
            deadline = start + seconds / rounds
            while True:
                for _ in range(inner):
                    frames += op()
                now = clock()
                if now >= deadline:
                    break
            best[i] = max(best[i], frames / (now - start))
    return best


def check() -> None:
    """The cases compute what they claim (cheap, run before measuring)."""
    out = forward(parse_frame(RAW), NEW_ID, {"M_rid": "1"}, set_flags=FLAG_PROXY)
    back = parse_frame(out)
    assert back.is_proxy and back.request_id == NEW_ID and back.metadata["M_rid"] == "1"
    assert SIMPLE.decode_multi(back.body) == ["x" * 95]


def compare_builds(seconds: float, rounds: int) -> None:
    """Best rate per case of the installed and the interpreted build, rounds alternating."""
    work = Path(tempfile.mkdtemp(prefix="motanmesh-bench-wire-"))
    try:
        envs = {"installed": dict(os.environ), "interpreted": interpreted_env(work)}
        best: dict[str, list[float]] = {build: [0.0] * len(CASES) for build in envs}
        for _ in range(rounds):
            for build, env in envs.items():
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--seconds",
                        str(seconds / rounds),
                        "--rounds",
                        "1",
                        "--json",
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                rates = json.loads(out)
                best[build] = [max(a, b) for a, b in zip(best[build], rates, strict=True)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"python {platform.python_version()} on {platform.machine()}, frame {len(RAW)} bytes")
    print(f"installed build compiles: {', '.join(compiled_modules()) or 'nothing'}")
    print(f"{'case':<26} {'installed/s':>12} {'interpreted/s':>14} {'ratio':>6}")
    for i, (name, _) in enumerate(CASES):
        a, b = best["installed"][i], best["interpreted"][i]
        print(f"{name:<26} {a:>12,.0f} {b:>14,.0f} {a / b:>6.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per case")
    parser.add_argument("--rounds", type=int, default=15, help="rounds per case; the best is shown")
    parser.add_argument("--builds", default="installed", help="installed[,interpreted]")
    parser.add_argument("--json", action="store_true", help="print the rates as one JSON list")
    args = parser.parse_args(argv)
    check()
    if args.builds == "installed,interpreted":
        compare_builds(args.seconds, args.rounds)
        return 0
    if args.builds != "installed":
        parser.error("--builds is installed or installed,interpreted")
    rates = measure([make() for _, make in CASES], args.seconds, args.rounds)
    if args.json:
        print(json.dumps(rates))
        return 0
    print(f"python {platform.python_version()} on {platform.machine()}, frame {len(RAW)} bytes")
    print(f"compiled: {', '.join(compiled_modules()) or 'nothing'}")
    print(f"{'case':<26} {'frames/s':>12} {'us/frame':>10}")
    for (name, _), rate in zip(CASES, rates, strict=True):
        print(f"{name:<26} {rate:>12,.0f} {1e6 / rate:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
