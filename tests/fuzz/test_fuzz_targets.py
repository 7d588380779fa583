"""The fuzz targets of fuzz/: every seed and every kept finding (fuzz/regressions/) passes on
the installed build, and each target runs briefly under its fuzzer (atheris, else hypothesis).
Long runs are ``python fuzz/run.py --seconds S`` (see fuzz/README.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
sys.path.insert(0, str(FUZZ))

from common import COPY_ENV, fuzz_with_hypothesis, make_interpreted_copy  # noqa: E402
from targets import TARGETS, seeds  # noqa: E402

#: inputs per target in the brief run (the whole file stays well under a minute)
BRIEF_RUNS = 300


def regressions(name: str) -> list[Path]:
    folder = FUZZ / "regressions" / name
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_pass(name: str) -> None:
    corpus = seeds(name)
    assert corpus, f"no seeds for {name}"
    for seed in corpus:
        TARGETS[name].one_input(seed)


@pytest.mark.parametrize(
    "finding",
    [pytest.param(p, id=f"{p.parent.name}/{p.name}") for n in TARGETS for p in regressions(n)],
)
def test_kept_findings_pass(finding: Path) -> None:
    TARGETS[finding.parent.name].one_input(finding.read_bytes())


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_brief_fuzz_run(name: str, tmp_path: Path) -> None:
    """Hypothesis draws inputs (random bytes and mutated seeds) in this process."""
    fuzz_with_hypothesis(
        name,
        TARGETS[name].one_input,
        seeds(name),
        {"runs": str(BRIEF_RUNS), "artifact_prefix": str(tmp_path)},
    )
    assert not list(tmp_path.iterdir()), "a finding was written"


def test_the_coverage_guided_harness_runs(tmp_path: Path) -> None:
    """fuzz/run.py's way: a target in its own process under atheris (hypothesis where atheris
    is not installed), from its seed corpus."""
    import shutil  # noqa: PLC0415

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(seeds("decoder")):
        (corpus / f"seed-{i}").write_bytes(seed)
    copy = make_interpreted_copy()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                str(FUZZ / "fuzz_decoder.py"),
                "-runs=300",
                f"-artifact_prefix={tmp_path}/",
                "-timeout=10",
                str(corpus),
            ],
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, COPY_ENV: copy},
            timeout=120,
        )
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "Done" in output, output[-4000:]
