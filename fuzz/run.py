"""Run the fuzz targets for a given time (or number of inputs) each and report the counts.

    python fuzz/run.py [--seconds 60 | --runs N] [--targets frame,decoder,...] [--jobs 1]

Each target starts from its seed corpus (written from tests/data by fuzz/targets.py into
``fuzz/corpus/<target>/``, which also keeps what the fuzzer finds) and writes a failing input
to ``fuzz/crashes/<target>/``. A failing input, once fixed, goes to
``fuzz/regressions/<target>/``, which the tests replay on every run. Exit status 1 when any
target found something.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import COPY_ENV, make_interpreted_copy  # noqa: E402
from targets import TARGETS, seeds  # noqa: E402

_DONE = re.compile(r"Done (\d+) runs")


def write_seeds(name: str, corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in seeds(name):
        (corpus / f"seed-{hashlib.sha1(seed).hexdigest()}").write_bytes(seed)
    regressions = HERE / "regressions" / name
    if regressions.is_dir():
        for path in regressions.iterdir():
            shutil.copy(path, corpus / f"regression-{path.name}")


def run_target(
    name: str, seconds: float, runs: int, env: dict[str, str]
) -> tuple[str, int, int, float]:
    corpus = HERE / "corpus" / name
    crashes = HERE / "crashes" / name
    crashes.mkdir(parents=True, exist_ok=True)
    write_seeds(name, corpus)
    flags = [
        f"-artifact_prefix={crashes}/",
        "-timeout=10",
        "-rss_limit_mb=1024",
        "-print_final_stats=1",
    ]
    flags.append(f"-max_total_time={int(seconds)}" if seconds else f"-runs={runs}")
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(HERE / f"fuzz_{name}.py"), *flags, str(corpus)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    took = time.monotonic() - start
    out = proc.stdout + proc.stderr
    (HERE / "crashes" / f"{name}.log").write_text(out[-20000:])
    found = _DONE.findall(out)
    count = int(found[-1]) if found else 0
    return name, proc.returncode, count, took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.0)
    parser.add_argument("--runs", type=int, default=0)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    if not args.seconds and not args.runs:
        args.seconds = 60.0
    names = [n for n in args.targets.split(",") if n]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        print(f"unknown targets: {', '.join(unknown)}; known: {', '.join(TARGETS)}")
        return 2
    copy = make_interpreted_copy()
    env = {**os.environ, COPY_ENV: copy}
    failed = False
    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            results = pool.map(lambda n: run_target(n, args.seconds, args.runs, env), names)
            for name, code, count, took in results:
                status = (
                    "ok" if code == 0 else f"FOUND SOMETHING (exit {code}, fuzz/crashes/{name}.log)"
                )
                failed |= code != 0
                print(f"{name:9s} {count:>10,d} inputs in {took:7.1f} s  {status}", flush=True)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
