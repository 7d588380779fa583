"""Command-line flags over the YAML: flag, then (for ``mport``) the environment variable
``mport``, then the YAML value, then the default.

A flag left at ``None``, ``0`` or ``""`` counts as not given, as with the Go agent's flags.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from motanmesh.config.errors import ConfigError
from motanmesh.config.model import Config
from motanmesh.config.values import to_port

__all__ = ["apply_overrides"]


def _port(source: str, key: str, value: Any) -> int:
    try:
        return to_port(value)
    except ValueError as exc:
        raise ConfigError(source, key, str(exc)) from None


def apply_overrides(
    cfg: Config,
    *,
    port: int | None = None,
    eport: int | None = None,
    hport: int | None = None,
    mport: int | None = None,
    idc: str | None = None,
    local_ip: str | None = None,
    pidfile: str | None = None,
    application: str | None = None,
    log_dir: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """A copy of ``cfg`` with the given flags applied; invalid values raise ``ConfigError``."""
    environ = os.environ if env is None else env
    changes: dict[str, Any] = {}
    for key, value in (("port", port), ("eport", eport), ("hport", hport), ("mport", mport)):
        if value:
            changes[key] = _port("command line", f"-{key}", value)
    if "mport" not in changes and environ.get("mport", "").strip():
        changes["mport"] = _port("environment", "mport", environ["mport"].strip())
    texts = {
        "idc": idc,
        "local_ip": local_ip,
        "pidfile": pidfile,
        "application": application,
        "log_dir": log_dir,
    }
    changes.update({name: text for name, text in texts.items() if text})
    if not changes:
        return cfg
    return dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, **changes))
