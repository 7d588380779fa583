"""Runtime gauges: the agent's own state (memory, CPU, connections, requests that found no
provider) and whatever shared objects of the filters report (access-log drops, breaker
states).

A source is a callable returning :class:`RuntimeSample` values; a shared object in the
filters' ``services`` reports by having a ``runtime_samples()`` method with the same
answer. Prometheus reads every sample at each scrape; the metric datagrams carry the ones
with a ``go_name`` every ``sampleInterval`` (counters as their increase since the last
sample, as the Go agent's samplers swap their counts to zero).
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

__all__ = ["RuntimeSample", "SampleSource", "process_samples", "rss_bytes"]

_PAGE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class RuntimeSample:
    """One runtime value.

    * ``name``: the Prometheus name (``motan_...``; counters end in ``_total``);
    * ``kind``: ``"counter"`` (only grows) or ``"gauge"``;
    * ``labels``: extra labels (``application`` is added by the exporter);
    * ``go_name``: the Go agent's sampler name for the datagrams (``memory``,
      ``accesslog_discard_count``...), ``""`` for none; ``go_divisor`` scales the value
      there (``memory`` is in MB).
    """

    name: str
    kind: Literal["counter", "gauge"]
    value: float
    help: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    go_name: str = ""
    go_divisor: int = 1


SampleSource = Callable[[], Iterable[RuntimeSample]]


def rss_bytes() -> int:
    """Resident memory now (``/proc/self/statm``), else the peak from ``getrusage``."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def process_samples(started: float) -> list[RuntimeSample]:
    """Memory and CPU of this process (CPU percent since ``started``, a ``time.time()``)."""
    times = os.times()
    cpu = times.user + times.system
    elapsed = max(time.time() - started, 1e-9)
    return [
        RuntimeSample(
            "motan_agent_resident_memory_bytes",
            "gauge",
            rss_bytes(),
            "Resident memory of the agent process",
            go_name="memory",
            go_divisor=1 << 20,
        ),
        RuntimeSample(
            "motan_agent_cpu_seconds_total",
            "counter",
            cpu,
            "CPU time (user and system) used by the agent process",
        ),
        RuntimeSample(
            "motan_agent_cpu_percent",
            "gauge",
            cpu / elapsed * 100,
            "CPU used by the agent process since it started, in percent of one core",
            go_name="cpu",
        ),
    ]
