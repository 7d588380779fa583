"""The suite-wide settings of tests/conftest.py are in force."""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def test_hypothesis_measures_no_time() -> None:
    assert settings().deadline is None
    assert HealthCheck.too_slow in settings().suppress_health_check
