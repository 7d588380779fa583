"""The agent configuration: the Go agent's YAML (single file or pool directory), validated.

>>> cfg = load_config("agent.yaml")                     # doctest: +SKIP
>>> cfg = apply_overrides(cfg, port=9981, idc="yf")     # doctest: +SKIP
"""

from motanmesh.config.errors import ConfigError, format_key_path
from motanmesh.config.loader import load_config
from motanmesh.config.model import AgentConfig, Config
from motanmesh.config.overrides import apply_overrides
from motanmesh.config.values import ProxyTarget, parse_export, service_proxy

__all__ = [
    "AgentConfig",
    "Config",
    "ConfigError",
    "ProxyTarget",
    "apply_overrides",
    "format_key_path",
    "load_config",
    "parse_export",
    "service_proxy",
]
