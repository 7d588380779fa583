"""Settings for the whole suite.

Hypothesis: no per-example deadline and no "too slow" health check. Both measure time, and the
suite runs beside other work (CI machines, parallel runs): an example of a CPU-bound property
that takes 20 microseconds alone can take over 200 ms while the machine is busy. Speed is
measured by the benchmarks, never by a test (a property that is slow for a real reason shows
there, and in the statistics of ``pytest --hypothesis-show-statistics``).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile("motanmesh", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("motanmesh")
