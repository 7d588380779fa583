"""The deploy tests start agents through the end-to-end harness."""

from __future__ import annotations

from tests.e2e.conftest import mesh

__all__ = ["mesh"]
