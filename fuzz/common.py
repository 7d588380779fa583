"""Running one fuzz target: coverage-guided with atheris (libFuzzer), else with hypothesis.

``python fuzz/fuzz_<name>.py [libFuzzer flags] [corpus dirs]`` fuzzes target ``<name>``.
With atheris, the wire modules are loaded interpreted (a copy of the sources without their
mypyc extensions, so coverage reaches their code) and instrumented; libFuzzer's flags apply
(``-max_total_time=S``, ``-runs=N``, ``-artifact_prefix=DIR/``). Without atheris, hypothesis
draws inputs (seeds, mutated seeds, random bytes) for ``-max_total_time`` seconds or ``-runs``
inputs and stops at the first finding, written to ``-artifact_prefix``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: a prepared interpreted copy (see ``make_interpreted_copy``), shared by the targets of a run
COPY_ENV = "MOTANMESH_FUZZ_COPY"


def _interpreted_copy() -> None:
    """Put a copy of the installed motanmesh without compiled extensions first on sys.path."""
    work = Path(os.environ.get(COPY_ENV) or make_interpreted_copy())
    for name in [m for m in sys.modules if m == "motanmesh" or m.startswith("motanmesh.")]:
        del sys.modules[name]
    sys.path.insert(0, str(work))


def make_interpreted_copy() -> str:
    """A temporary directory holding motanmesh's sources without compiled extensions."""
    import motanmesh  # noqa: PLC0415

    work = Path(tempfile.mkdtemp(prefix="motanmesh-fuzz-"))
    shutil.copytree(Path(motanmesh.__file__).parent, work / "motanmesh")
    for ext in work.rglob("*.so"):
        ext.unlink()
    return str(work)


def _flags(argv: list[str]) -> dict[str, str]:
    return dict(a[1:].split("=", 1) for a in argv if a.startswith("-") and "=" in a)


def main(name: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        import atheris  # noqa: PLC0415
    except ImportError:
        atheris = None
    if atheris is not None and not os.environ.get("MOTANMESH_FUZZ_HYPOTHESIS"):
        _interpreted_copy()
        with atheris.instrument_imports(include=["motanmesh", "targets"]):
            from targets import TARGETS  # noqa: PLC0415
        atheris.Setup(sys.argv, TARGETS[name].one_input)
        atheris.Fuzz()
        return
    from targets import TARGETS, seeds  # noqa: PLC0415

    fuzz_with_hypothesis(name, TARGETS[name].one_input, seeds(name), _flags(sys.argv[1:]))


def fuzz_with_hypothesis(
    name: str, one_input: Callable[[bytes], None], corpus: list[bytes], flags: dict[str, str]
) -> None:
    from hypothesis import HealthCheck, Phase, given, settings  # noqa: PLC0415
    from hypothesis import strategies as st  # noqa: PLC0415

    seconds = float(flags.get("max_total_time", "0") or 0)
    runs = int(flags.get("runs", "0") or 0) or (10**9 if seconds else 1000)
    end = time.monotonic() + seconds if seconds else float("inf")
    count = 0

    def mutate(seed: bytes, edits: list[tuple[int, int]]) -> bytes:
        data = bytearray(seed)
        for pos, value in edits:
            if data and value < 256:
                data[pos % len(data)] = value
            elif value < 300:
                del data[pos % max(len(data), 1) :]
            else:
                data.insert(pos % (len(data) + 1), value & 0xFF)
        return bytes(data)

    inputs = st.one_of(
        st.binary(max_size=512),
        st.builds(
            mutate,
            st.sampled_from(corpus or [b""]),
            st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 600)), max_size=8),
        ),
    )

    @settings(
        max_examples=runs,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs)
    def run(data: bytes) -> None:
        nonlocal count
        if time.monotonic() > end:
            return
        count += 1
        try:
            one_input(data)
        except Exception:
            prefix = flags.get("artifact_prefix", "")
            if prefix:
                Path(prefix).mkdir(parents=True, exist_ok=True)
                Path(prefix, f"crash-{name}-{data.hex()[:40]}").write_bytes(data)
            raise

    for seed in corpus:
        one_input(seed)
    run()
    print(f"Done {count} runs (hypothesis) for {name}", flush=True)
