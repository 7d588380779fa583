"""Typed views of YAML values, and the ``export``/``proxy`` syntax.

Converters raise ``ValueError`` with the detail part of a config error message
(``expected an integer, got 'abc'``); the builder adds the file and key path.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from motanmesh.url import URL

__all__ = [
    "DEFAULT_EXPORT",
    "ProxyTarget",
    "describe",
    "parse_export",
    "service_proxy",
    "to_bool",
    "to_int",
    "to_list",
    "to_param",
    "to_port",
]

DEFAULT_EXPORT = ("motan2", 9982)
_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})
_EXPORT_RE = re.compile(r"\s*(?:([A-Za-z][A-Za-z0-9+.\-_]*)?\s*:)?\s*([0-9]+)\s*\Z")


def describe(value: Any) -> str:
    """How a bad value is quoted in an error message."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return repr(value)


def _float_text(value: float) -> str:
    # Plain decimal notation, shortest round-trip digits: 1e20 -> "100000000000000000000".
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    from decimal import Decimal  # noqa: PLC0415 - rarely needed, 0.3 MB resident

    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def to_param(value: Any) -> str | None:
    """A YAML scalar as a URL parameter string; ``None`` stays ``None``.

    Booleans are ``true``/``false``, numbers are written in plain decimal, and a list of
    scalars is joined with commas. Mappings raise ``ValueError``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        items = [to_param(item) for item in value if not isinstance(item, dict | list)]
        if len(items) != len(value):
            raise ValueError("expected a scalar or a list of scalars, got a nested list")
        return ",".join(item for item in items if item)
    raise ValueError(f"expected a scalar value, got {describe(value)}")


def to_int(value: Any, *, minimum: int | None = None) -> int:
    """An integer from an int, an integral float or a decimal string."""
    result: int | None = None
    if isinstance(value, bool):
        result = None
    elif isinstance(value, int):
        result = value
    elif isinstance(value, float) and value.is_integer():
        result = int(value)
    elif isinstance(value, str) and _INT_RE.match(value.strip()):
        result = int(value.strip())
    if result is None:
        raise ValueError(f"expected an integer, got {describe(value)}")
    if minimum is not None and result < minimum:
        raise ValueError(f"expected an integer >= {minimum}, got {describe(value)}")
    return result


def to_port(value: Any, *, allow_zero: bool = False) -> int:
    """A TCP port: 1..65535 (0 too when ``allow_zero``)."""
    low = 0 if allow_zero else 1
    try:
        port = to_int(value)
    except ValueError:
        port = -1
    if not low <= port <= 65535:
        raise ValueError(f"expected a port number in {low}..65535, got {describe(value)}")
    return port


def to_bool(value: Any) -> bool:
    """A boolean from a YAML bool or the strings/ints Go's ParseBool accepts."""
    if isinstance(value, bool):
        return value
    text = str(value).strip() if isinstance(value, str | int) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected a boolean, got {describe(value)}")


def to_list(value: Any) -> list[str]:
    """A comma-separated string or a YAML list of names, blanks dropped."""
    if value is None:
        return []
    text = to_param(value) or ""
    return [item for item in (part.strip() for part in text.split(",")) if item]


def parse_export(text: str) -> tuple[str, int]:
    """``"motan2:9982"`` or ``"9982"`` → ``(protocol, port)``; empty → ``("motan2", 9982)``."""
    if not text.strip():
        return DEFAULT_EXPORT
    m = _EXPORT_RE.match(text)
    if m is None:
        raise ValueError(f"expected 'protocol:port' or 'port', got {text!r}")
    port = int(m.group(2))
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be in 1..65535, got {text!r}")
    return (m.group(1) or DEFAULT_EXPORT[0]), port


@dataclass(frozen=True, slots=True)
class ProxyTarget:
    """The local backend a service forwards to (``proxy`` / ``proxy.host``)."""

    protocol: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return self.host if self.host.startswith("unix") else f"{self.host}:{self.port}"


def service_proxy(url: URL) -> ProxyTarget | None:
    """The ``proxy`` target of a service URL, or ``None`` when it has none."""
    text = url.get("proxy")
    if not text:
        return None
    protocol, port = parse_export(text)
    return ProxyTarget(protocol, url.get("proxy.host", "127.0.0.1"), port)
