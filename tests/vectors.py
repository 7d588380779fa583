"""The byte vectors the tests compare against, kept in ``tests/data/vectors`` (see its README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parent / "data" / "vectors"
PHP_VECTORS = "motan-php-vectors.json"
GO_CAPTURES = "motan-go-captures.json"


def load_vectors(name: str) -> dict[str, Any]:
    """One vector file of ``tests/data/vectors`` as parsed JSON."""
    data: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return data
