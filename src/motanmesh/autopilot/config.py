"""The autopilot's configuration: YAML → validated, typed settings.

A bad value raises :class:`AutopilotConfigError` naming the file and the key
(``autopilot.yaml: services[0].policy.warning: must be a number in (0, 1], got 'x'``).
Every key is documented in ``docs/autopilot.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from motanmesh.config.errors import KeyPath, format_key_path
from motanmesh.url import URL

__all__ = [
    "AutopilotConfig",
    "AutopilotConfigError",
    "CapacityConfig",
    "ConsoleConfig",
    "PolicyConfig",
    "ServiceConfig",
    "SloConfig",
    "SourceConfig",
    "load_config",
    "parse_config",
]

SourceType = Literal["agents", "prometheus", "graphite"]
SOURCE_TYPES: Final = ("agents", "prometheus", "graphite")


class AutopilotConfigError(Exception):
    """A configuration problem found before anything starts; names the file and the key."""

    def __init__(self, file: str, key: KeyPath | str, detail: str) -> None:
        self.file, self.key, self.detail = file, format_key_path(key), detail
        where = f"{file}: {self.key}" if self.key else file
        super().__init__(f"{where}: {detail}")


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """When and how far traffic moves (levels are load ÷ capacity)."""

    warning: float = 0.8
    target: float = 0.6
    step_limit: float = 0.25
    max_share: float = 0.5
    hold: float = 20.0
    cooldown: float = 5.0
    hysteresis: float = 0.05
    guard_after: float = 5.0


@dataclass(frozen=True, slots=True)
class SloConfig:
    """Limits that count as over the warning level whatever the rate says (0: off)."""

    p99: float = 0.0
    error_ratio: float = 0.0
    min_rate: float = 1.0
    sustain: float = 3.0


@dataclass(frozen=True, slots=True)
class CapacityConfig:
    """Calls/s one instance serves, optionally per group; instances are counted in the
    registry unless ``instances`` fixes them per group."""

    per_instance: float = 0.0
    per_group: dict[str, float] = field(default_factory=dict)
    instances: dict[str, int] = field(default_factory=dict)

    def per_instance_of(self, group: str) -> float:
        return self.per_group.get(group, self.per_instance)


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    service: str
    groups: tuple[str, ...]
    capacity: CapacityConfig
    policy: PolicyConfig
    slo: SloConfig


@dataclass(frozen=True, slots=True)
class SourceConfig:
    type: SourceType
    interval: float = 1.0
    path: str = "/metrics"
    targets: tuple[str, ...] = ()
    discover: bool = True
    url: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    period: float = 5.0
    timeout: float = 2.0


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    host: str = "127.0.0.1"
    port: int = 0
    enabled: bool = False
    history: float = 300.0


@dataclass(frozen=True, slots=True)
class AutopilotConfig:
    file: str
    registry: URL
    name: str = "default"
    interval: float = 1.0
    window: float = 3.0
    stale_after: float = 10.0
    dry_run: bool = False
    decision_log: str = "./autopilot-decisions.jsonl"
    leader_ttl: float = 10.0
    sources: tuple[SourceConfig, ...] = ()
    services: tuple[ServiceConfig, ...] = ()
    console: ConsoleConfig = field(default_factory=ConsoleConfig)

    def with_dry_run(self, dry_run: bool) -> AutopilotConfig:
        return replace(self, dry_run=dry_run)


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: KeyPath, detail: str) -> AutopilotConfigError:
        return AutopilotConfigError(self.file, key, detail)

    def mapping(self, key: KeyPath, value: Any, known: tuple[str, ...]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a mapping, got {value!r}")
        for name in value:
            if name not in known:
                raise self.fail((*key, str(name)), f"unknown key (known: {', '.join(known)})")
        return value

    def number(
        self, key: KeyPath, value: Any, default: float, *, low: float = 0.0, high: float = math.inf
    ) -> float:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"must be a number, got {value!r}")
        number = float(value)
        if not (low < number <= high) or math.isnan(number):
            bound = f"({low:g}, {high:g}]" if high != math.inf else f"> {low:g}"
            raise self.fail(key, f"must be a number {bound}, got {value!r}")
        return number

    def text(self, key: KeyPath, value: Any, default: str = "") -> str:
        if value is None:
            return default
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"must be a non-empty string, got {value!r}")
        return value.strip()

    def boolean(self, key: KeyPath, value: Any, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {value!r}")
        return value

    def port(self, key: KeyPath, value: Any, default: int) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            raise self.fail(key, f"must be a port number 0..65535, got {value!r}")
        return value

    def strings(self, key: KeyPath, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise self.fail(key, f"must be a list of strings, got {value!r}")
        return tuple(self.text((*key, i), v) for i, v in enumerate(value))


_TOP: Final = (
    "registry",
    "name",
    "interval",
    "window",
    "staleAfter",
    "dryRun",
    "decisionLog",
    "leaderTtl",
    "telemetry",
    "services",
    "defaults",
    "console",
)
_POLICY: Final = (
    "warning",
    "target",
    "stepLimit",
    "maxShare",
    "hold",
    "cooldown",
    "hysteresis",
    "guardAfter",
)
_SLO: Final = ("p99", "errorRatio", "minRate", "sustain")
_CAPACITY: Final = ("perInstance", "perGroup", "instances")
_SERVICE: Final = ("service", "groups", "capacity", "policy", "slo")
_SOURCE: Final = (
    "type",
    "interval",
    "path",
    "targets",
    "discover",
    "url",
    "host",
    "port",
    "period",
    "timeout",
)


def _registry(r: _Reader, value: Any) -> URL:
    if isinstance(value, str):
        try:
            url = URL.parse(value)
        except ValueError as exc:
            raise r.fail(("registry",), str(exc)) from None
    elif isinstance(value, dict):
        entry = dict(value)
        protocol = r.text(("registry", "protocol"), entry.pop("protocol", None))
        host = str(entry.pop("host", "") or "")
        port = r.port(("registry", "port"), entry.pop("port", None), 0)
        path = str(entry.pop("path", "") or "")
        params = {
            str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in entry.items()
        }
        url = URL(protocol, host, port, path, parameters=params)
    else:
        raise r.fail(("registry",), "required: a registry URL or a mapping with protocol, address")
    if url.protocol not in ("embedded", "zookeeper", "etcd"):
        raise r.fail(
            ("registry", "protocol"),
            f"the autopilot writes commands: use embedded, zookeeper or etcd, not {url.protocol!r}",
        )
    return url


def _policy(r: _Reader, key: KeyPath, value: Any, base: PolicyConfig) -> PolicyConfig:
    m = r.mapping(key, value, _POLICY)
    policy = PolicyConfig(
        warning=r.number((*key, "warning"), m.get("warning"), base.warning, high=10.0),
        target=r.number((*key, "target"), m.get("target"), base.target, high=10.0),
        step_limit=r.number((*key, "stepLimit"), m.get("stepLimit"), base.step_limit, high=1.0),
        max_share=r.number((*key, "maxShare"), m.get("maxShare"), base.max_share, high=1.0),
        hold=r.number((*key, "hold"), m.get("hold"), base.hold, low=-1e-9),
        cooldown=r.number((*key, "cooldown"), m.get("cooldown"), base.cooldown, low=-1e-9),
        hysteresis=r.number(
            (*key, "hysteresis"), m.get("hysteresis"), base.hysteresis, low=-1e-9, high=1.0
        ),
        guard_after=r.number(
            (*key, "guardAfter"), m.get("guardAfter"), base.guard_after, low=-1e-9
        ),
    )
    if policy.target >= policy.warning:
        raise r.fail(
            (*key, "target"),
            f"must be below the warning level ({policy.target:g} >= {policy.warning:g})",
        )
    return policy


def _slo(r: _Reader, key: KeyPath, value: Any, base: SloConfig) -> SloConfig:
    m = r.mapping(key, value, _SLO)
    return SloConfig(
        p99=r.number((*key, "p99"), m.get("p99"), base.p99, low=-1e-9),
        error_ratio=r.number(
            (*key, "errorRatio"), m.get("errorRatio"), base.error_ratio, low=-1e-9, high=1.0
        ),
        min_rate=r.number((*key, "minRate"), m.get("minRate"), base.min_rate, low=-1e-9),
        sustain=r.number((*key, "sustain"), m.get("sustain"), base.sustain, low=-1e-9),
    )


def _capacity(r: _Reader, key: KeyPath, value: Any, base: CapacityConfig) -> CapacityConfig:
    m = r.mapping(key, value, _CAPACITY)
    per_group: dict[str, float] = dict(base.per_group)
    for g, v in r.mapping(
        (*key, "perGroup"), m.get("perGroup"), tuple(str(k) for k in (m.get("perGroup") or {}))
    ).items():
        per_group[str(g)] = r.number((*key, "perGroup", str(g)), v, 0.0)
    instances: dict[str, int] = dict(base.instances)
    raw = m.get("instances") or {}
    for g, v in r.mapping((*key, "instances"), raw, tuple(str(k) for k in raw)).items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise r.fail((*key, "instances", str(g)), f"must be an integer >= 0, got {v!r}")
        instances[str(g)] = v
    return CapacityConfig(
        per_instance=r.number((*key, "perInstance"), m.get("perInstance"), base.per_instance),
        per_group=per_group,
        instances=instances,
    )


def _source(r: _Reader, key: KeyPath, value: Any) -> SourceConfig:
    m = r.mapping(key, value, _SOURCE)
    kind = m.get("type")
    if kind not in SOURCE_TYPES:
        raise r.fail((*key, "type"), f"must be one of {', '.join(SOURCE_TYPES)}, got {kind!r}")
    source = SourceConfig(
        type=kind,
        interval=r.number((*key, "interval"), m.get("interval"), 1.0),
        path=r.text((*key, "path"), m.get("path"), "/metrics"),
        targets=r.strings((*key, "targets"), m.get("targets")),
        discover=r.boolean((*key, "discover"), m.get("discover"), True),
        url=r.text((*key, "url"), m.get("url"), ""),
        host=r.text((*key, "host"), m.get("host"), "127.0.0.1"),
        port=r.port((*key, "port"), m.get("port"), 0),
        period=r.number((*key, "period"), m.get("period"), 5.0),
        timeout=r.number((*key, "timeout"), m.get("timeout"), 2.0),
    )
    if kind == "prometheus" and not source.url:
        raise r.fail((*key, "url"), "required for a prometheus source (http://host:9090)")
    if kind == "graphite" and "port" not in m:
        raise r.fail(
            (*key, "port"), "required for a graphite source (the UDP port to listen on; 0: any)"
        )
    return source


def parse_config(data: Any, file: str = "<autopilot config>") -> AutopilotConfig:
    """Validate a parsed YAML document."""
    r = _Reader(file)
    top = r.mapping((), data, _TOP)
    if "registry" not in top:
        raise r.fail(("registry",), "required: the registry the agents use")
    defaults = r.mapping(("defaults",), top.get("defaults"), ("capacity", "policy", "slo"))
    base_policy = _policy(r, ("defaults", "policy"), defaults.get("policy"), PolicyConfig())
    base_slo = _slo(r, ("defaults", "slo"), defaults.get("slo"), SloConfig())
    base_capacity = _capacity(
        r, ("defaults", "capacity"), defaults.get("capacity"), CapacityConfig()
    )
    raw_services = top.get("services")
    if not isinstance(raw_services, list) or not raw_services:
        raise r.fail(("services",), "required: a non-empty list of services to steer")
    services: list[ServiceConfig] = []
    seen: set[str] = set()
    for i, item in enumerate(raw_services):
        key: KeyPath = ("services", i)
        m = r.mapping(key, item, _SERVICE)
        name = r.text((*key, "service"), m.get("service"))
        if name in seen:
            raise r.fail((*key, "service"), f"{name} is listed twice")
        seen.add(name)
        groups = r.strings((*key, "groups"), m.get("groups"))
        if len(groups) < 2 or len(set(groups)) != len(groups):
            raise r.fail((*key, "groups"), "needs at least two distinct IDC groups")
        capacity = _capacity(r, (*key, "capacity"), m.get("capacity"), base_capacity)
        for g in groups:
            if capacity.per_instance_of(g) <= 0:
                raise r.fail(
                    (*key, "capacity", "perInstance"),
                    f"required: calls/s one instance of group {g} serves",
                )
        services.append(
            ServiceConfig(
                service=name,
                groups=groups,
                capacity=capacity,
                policy=_policy(r, (*key, "policy"), m.get("policy"), base_policy),
                slo=_slo(r, (*key, "slo"), m.get("slo"), base_slo),
            )
        )
    raw_sources = top.get("telemetry")
    if raw_sources is None:
        raw_sources = [{"type": "agents"}]
    if not isinstance(raw_sources, list) or not raw_sources:
        raise r.fail(("telemetry",), "must be a non-empty list of telemetry sources")
    sources = tuple(_source(r, ("telemetry", i), s) for i, s in enumerate(raw_sources))
    console_map = r.mapping(("console",), top.get("console"), ("host", "port", "history"))
    console = ConsoleConfig(
        host=r.text(("console", "host"), console_map.get("host"), "127.0.0.1"),
        port=r.port(("console", "port"), console_map.get("port"), 0),
        enabled="console" in top and top.get("console") is not None,
        history=r.number(("console", "history"), console_map.get("history"), 300.0),
    )
    config = AutopilotConfig(
        file=file,
        registry=_registry(r, top.get("registry")),
        name=r.text(("name",), top.get("name"), "default"),
        interval=r.number(("interval",), top.get("interval"), 1.0),
        window=r.number(("window",), top.get("window"), 3.0),
        stale_after=r.number(("staleAfter",), top.get("staleAfter"), 10.0),
        dry_run=r.boolean(("dryRun",), top.get("dryRun"), False),
        decision_log=r.text(
            ("decisionLog",), top.get("decisionLog"), "./autopilot-decisions.jsonl"
        ),
        leader_ttl=r.number(("leaderTtl",), top.get("leaderTtl"), 10.0),
        sources=sources,
        services=tuple(services),
        console=console,
    )
    if any(ch in config.name for ch in "/ \t"):
        raise r.fail(("name",), f"must not contain '/' or spaces, got {config.name!r}")
    return config


def load_config(path: str | Path) -> AutopilotConfig:
    """Read and validate a YAML file."""
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise AutopilotConfigError(file, "", f"cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AutopilotConfigError(file, "", f"not valid YAML: {exc}") from None
    return parse_config(data, file)


def as_mapping(value: Mapping[str, Any]) -> dict[str, Any]:
    return dict(value)
