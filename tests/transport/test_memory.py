"""The allocator settings for large buffers (``transport.memory``), in a child process so the
test runner's own allocator is left alone."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CHILD = """
import resource
from motanmesh.transport.memory import tune_for_large_buffers, release_memory
from motanmesh.wire.decoder import FrameDecoder
from motanmesh.wire.frame import request_frame
print(tune_for_large_buffers(), release_memory())
# what a proxy does with 64 KB bodies: reads of 256 KB, frames gathered across reads
one = request_frame(1, {"M_p": "s"}, bytes(65536)).encode()
stream = one * 16
chunks = [stream[i : i + 262144] for i in range(0, len(stream), 262144)]
decoder = FrameDecoder()
for c in chunks:
    decoder.feed(c)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    for c in chunks:
        decoder.feed(c)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc_only = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


def run_child(env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    ).stdout
    return out.split()


@glibc_only
def test_large_buffers_are_reused_without_page_faults() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUN"))}
    tuned, trimmed, faults = run_child(env)
    assert (tuned, trimmed) == ("True", "True")
    # with glibc's defaults this loop takes thousands of page faults (6,400 measured): every
    # large buffer is mapped or faulted in afresh; with the settings the heap is reused
    assert int(faults) < 200


@glibc_only
def test_the_operators_malloc_variables_win() -> None:
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "131072"}
    tuned, trimmed, _ = run_child(env)
    assert (tuned, trimmed) == ("False", "True")
