"""Merged document → validated ``Config``. Every problem becomes a ``ConfigError`` that names
the file that set the offending key and the key path."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TypeVar

from motanmesh.config.document import Document
from motanmesh.config.errors import format_key_path
from motanmesh.config.model import AgentConfig, Config
from motanmesh.config.values import (
    describe,
    parse_export,
    to_bool,
    to_int,
    to_list,
    to_param,
    to_port,
)
from motanmesh.url import URL

__all__ = ["build_config"]

T = TypeVar("T")
Path_ = tuple[str | int, ...]
Items = dict[str, tuple[Any, Path_]]

AGENT, REGISTRY = "motan-agent", "motan-registry"
BASIC_REFER, REFER = "motan-basicRefer", "motan-refer"
BASIC_SERVICE, SERVICE = "motan-basicService", "motan-service"
CONF_ID = "conf-id"

_URL_FIELDS = frozenset({"protocol", "host", "port", "path", "group"})
_AGENT_STRINGS = {
    "host": "host",
    "unixSock": "unix_sock",
    "pidfile": "pidfile",
    "runtime_dir": "runtime_dir",
    "snapshot_dir": "snapshot_dir",
    "application": "application",
    "registry": "registry",
    "log_dir": "log_dir",
    "managementUnixSock": "management_unix_sock",
}
_AGENT_TYPED = frozenset(
    {"port", "eport", "hport", "mport", "initClusterTimeout", "managementPortRange"}
    | {"httpProxyEnable", "defaultFilter", "globalFilter", "grpcPort"}
    | set(_AGENT_STRINGS)
)
#: ``motan-agent`` keys whose mapping is read as dotted keys (``tls: {mode: x}`` is
#: ``tls.mode: x``)
_AGENT_NESTED = frozenset({"tls"})
_AGENT_INTS = frozenset({"processPoolSize", "log_buffer_size", "dependencyGraph.maxEdges"})
_AGENT_BOOLS = frozenset(
    {"log_async", "log_structured", "rotate_per_hour", "motanEpAsyncInit", "httpProxyKeepalive"}
    | {"log_filter_caller", "dependencyGraph"}
)
_REGISTRY_INTS = frozenset(
    {"registrySessionTimeout", "requestTimeout", "connectTimeout", "registryRetryPeriod"}
)
_CALL_INTS = frozenset(
    {"requestTimeout", "minRequestTimeout", "maxRequestTimeout", "retries", "connectTimeout"}
    | {"connectRetryInterval", "clientConnection", "errorCountThreshold", "keepaliveInterval"}
    | {"maxContentLength", "mingzSize", "weightRefreshPeriodSecond"}
)
_CALL_BOOLS = frozenset(
    {"lazyInit", "asyncInitConnection", "registerMeta", "enableRewrite", "enableHttpException"}
)
_PORT_RANGE = re.compile(r"\s*([0-9]+)\s*-\s*([0-9]+)\s*\Z")


def build_config(doc: Document, *, pool: str = "", application: str = "") -> Config:
    return _Builder(doc).build(pool, application)


def _method_suffix(key: str) -> str:
    return key.rsplit(").", 1)[1] if ")." in key else key


class _Builder:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.warnings = list(doc.warnings)

    # ------------------------------------------------------------------ helpers

    def fail(self, path: Path_, detail: str) -> NoReturn:
        raise self.doc.error(path, detail)

    def convert(self, path: Path_, fn: Callable[[Any], T], value: Any) -> T:
        try:
            return fn(value)
        except ValueError as exc:
            self.fail(path, str(exc))

    def text(self, path: Path_, value: Any) -> str:
        return self.convert(path, to_param, value) or ""

    def section(self, name: str) -> dict[str, Any]:
        value = self.doc.data.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail((name,), f"expected a mapping, got {describe(value)}")
        return value

    def entries(self, name: str) -> dict[str, dict[str, Any]]:
        sec = self.section(name)
        for key, entry in sec.items():
            if not isinstance(entry, dict):
                self.fail((name, key), f"expected a mapping, got {describe(entry)}")
        return sec

    # ------------------------------------------------------------------ sections

    def build(self, pool: str, application: str) -> Config:
        agent = self.agent()
        registries = self.registries()
        if agent.registry and agent.registry not in registries:
            self.fail((AGENT, "registry"), self.unknown_registry(agent.registry, registries))
        refers = {
            rid: self.refer(rid, entry, agent, registries)
            for rid, entry in self.entries(REFER).items()
        }
        services = {
            sid: self.service(sid, entry, agent, registries)
            for sid, entry in self.entries(SERVICE).items()
        }
        registries = self.drop_unusable_registries(
            registries,
            agent,
            [*refers.values(), *(url for urls in services.values() for url in urls)],
        )
        switchers: dict[str, bool] = {}
        for name in ("switcher", "switchers"):
            for key, value in self.section(name).items():
                switchers[key] = self.convert((name, key), to_bool, value)
        metrics = self.section("metrics")
        if "period" in metrics:
            self.convert(("metrics", "period"), lambda v: to_int(v, minimum=1), metrics["period"])
        return Config(
            agent=agent,
            registries=registries,
            refers=refers,
            services=services,
            switchers=switchers,
            metrics=copy.deepcopy(metrics),
            dynamic_params=copy.deepcopy(self.section("dynamic-param")),
            http_client=copy.deepcopy(self.section("http-client")),
            http_locations=copy.deepcopy(self.section("http-locations")),
            http_service=copy.deepcopy(self.section("http-service")),
            raw=copy.deepcopy(self.doc.data),
            files=list(self.doc.files),
            source=self.doc.source,
            pool=pool,
            application=application,
            warnings=self.warnings,
            key_files=dict(self.doc.key_files),
        )

    def agent(self) -> AgentConfig:
        sec = self.section(AGENT)
        fields: dict[str, Any] = {}
        for key in ("port", "eport", "hport", "mport"):
            if sec.get(key) is not None:
                fields[key] = self.convert((AGENT, key), to_port, sec[key])
        for key, name in _AGENT_STRINGS.items():
            value = self.text((AGENT, key), sec.get(key))
            if value:
                fields[name] = value
        if sec.get("initClusterTimeout") is not None:
            # a negative wait is no wait, as in the Go agent
            fields["init_cluster_timeout_ms"] = max(
                0, self.convert((AGENT, "initClusterTimeout"), to_int, sec["initClusterTimeout"])
            )
        if sec.get("managementPortRange") is not None:
            fields["management_port_range"] = self.convert(
                (AGENT, "managementPortRange"), _port_range, sec["managementPortRange"]
            )
        if sec.get("grpcPort") is not None:
            fields["grpc_port"] = self.convert(
                (AGENT, "grpcPort"), lambda v: to_port(v, allow_zero=True), sec["grpcPort"]
            )
        if sec.get("httpProxyEnable") is not None:
            fields["http_proxy_enable"] = self.convert(
                (AGENT, "httpProxyEnable"), to_bool, sec["httpProxyEnable"]
            )
        fields["default_filter"] = self.convert(
            (AGENT, "defaultFilter"), to_list, sec.get("defaultFilter")
        )
        fields["global_filter"] = self.convert(
            (AGENT, "globalFilter"), to_list, sec.get("globalFilter")
        )
        params: dict[str, str] = {}
        for key, value in sec.items():
            if key in _AGENT_TYPED or value is None:
                continue
            if key in _AGENT_NESTED and isinstance(value, dict):
                # ``tls: {mode: strict, ...}`` is read as ``tls.mode: strict, ...``
                for sub, item in value.items():
                    if item is None:
                        continue
                    path = (AGENT, key, str(sub))
                    name = f"{key}.{sub}"
                    if self.structured(path, name, item, _AGENT_INTS | _AGENT_BOOLS):
                        continue
                    params[name] = self.param(path, name, item, _AGENT_INTS, _AGENT_BOOLS)
                continue
            if self.structured((AGENT, key), key, value, _AGENT_INTS | _AGENT_BOOLS):
                continue
            params[key] = self.param((AGENT, key), key, value, _AGENT_INTS, _AGENT_BOOLS)
        return AgentConfig(**fields, params=params)

    def structured(self, path: Path_, key: str, value: Any, typed: frozenset[str]) -> bool:
        """True (and a warning) for a mapping, or a list holding mappings or lists, under a key
        that is not read as a number or a boolean: no URL parameter can carry it."""
        if _method_suffix(key) in typed:
            return False
        nested = isinstance(value, list) and any(isinstance(v, dict | list) for v in value)
        if not (isinstance(value, dict) or nested):
            return False
        kind = "mapping" if isinstance(value, dict) else "nested list"
        self.warnings.append(f"{self.doc.file_of(path)}: {format_key_path(path)}: {kind} ignored")
        return True

    def param(
        self, path: Path_, key: str, value: Any, ints: frozenset[str], bools: frozenset[str]
    ) -> str:
        kind = _method_suffix(key)
        if kind in ints:
            return str(self.convert(path, to_int, value))
        if kind in bools:
            return "true" if self.convert(path, to_bool, value) else "false"
        return self.text(path, value)

    def registries(self) -> dict[str, URL]:
        result: dict[str, URL] = {}
        for rid, entry in self.entries(REGISTRY).items():
            items: Items = {k: (v, (REGISTRY, rid, k)) for k, v in entry.items() if v is not None}
            url = self.make_url(items, "", _REGISTRY_INTS, frozenset())
            result[rid] = url.with_params({CONF_ID: rid})
        return result

    def drop_unusable_registries(
        self,
        registries: dict[str, URL],
        agent: AgentConfig,
        urls: Iterable[URL],
    ) -> dict[str, URL]:
        """Registries without a protocol: an error where used, else dropped with a warning
        (the Go agent builds a registry only when something uses it)."""
        used = {agent.registry, *(rid for url in urls for rid in url.registry)}
        kept: dict[str, URL] = {}
        for rid, url in registries.items():
            path = (REGISTRY, rid, "protocol")
            if url.protocol:
                kept[rid] = url
            elif rid in used:
                self.fail(path, "required key is missing")
            else:
                self.warnings.append(
                    f"{self.doc.file_of(path)}: {format_key_path(path)}: missing; "
                    "the registry is not used and is left out"
                )
        return kept

    def unknown_registry(self, rid: str, registries: dict[str, URL]) -> str:
        known = ", ".join(registries) if registries else "nothing"
        return f"unknown registry id {rid!r} ({REGISTRY} defines {known})"

    def collect(
        self, section: str, basic: str, basic_key: str, eid: str, entry: dict[str, Any]
    ) -> Items:
        """Template items, then the entry's own items over them."""
        items: Items = {}
        name = self.text((section, eid, basic_key), entry.get(basic_key))
        if name:
            templates = self.entries(basic)
            if name not in templates:
                self.fail((section, eid, basic_key), f"unknown {basic} id {name!r}")
            for key, value in templates[name].items():
                if value is not None:
                    items[key] = (value, (basic, name, key))
        for key, value in entry.items():
            if value is None:
                continue
            if key in _URL_FIELDS and key in items and value in ("", 0):
                continue  # an empty URL field does not override the template
            items[key] = (value, (section, eid, key))
        return items

    def make_url(
        self,
        items: Items,
        default_protocol: str,
        ints: frozenset[str],
        bools: frozenset[str],
    ) -> URL:
        fields: dict[str, Any] = {"protocol": default_protocol}
        params: dict[str, str] = {}
        for key, (value, origin) in items.items():
            if key == "port":
                fields["port"] = self.convert(origin, lambda v: to_port(v, allow_zero=True), value)
            elif key in _URL_FIELDS:
                fields[key] = self.text(origin, value) or fields.get(key, "")
            elif self.structured(origin, key, value, ints | bools):
                continue
            else:
                params[key] = self.param(origin, key, value, ints, bools)
        return URL(parameters=params, **fields)

    def call_url(
        self, section: str, eid: str, items: Items, agent: AgentConfig, registries: dict[str, URL]
    ) -> URL:
        url = self.make_url(items, "motan2", _CALL_INTS, _CALL_BOOLS)
        if not url.path:
            self.fail((section, eid, "path"), "required key is missing")
        for rid in url.registry:
            if rid not in registries:
                self.fail(items["registry"][1], self.unknown_registry(rid, registries))
        filters = _union(
            _minus(agent.default_filter, url.get_list("disableDefaultFilter")),
            _minus(agent.global_filter, url.get_list("disableGlobalFilter")),
            url.filters,
        )
        extra: dict[str, str] = {CONF_ID: eid}
        if filters:
            extra["filter"] = ",".join(filters)
        return url.with_params(extra)

    def refer(
        self, rid: str, entry: dict[str, Any], agent: AgentConfig, registries: dict[str, URL]
    ) -> URL:
        items = self.collect(REFER, BASIC_REFER, "basicRefer", rid, entry)
        url = self.call_url(REFER, rid, items, agent, registries)
        if url.protocol == "motanV1Compatible":
            url = url.copy(protocol="motan")
        return url

    def service(
        self, sid: str, entry: dict[str, Any], agent: AgentConfig, registries: dict[str, URL]
    ) -> list[URL]:
        items = self.collect(SERVICE, BASIC_SERVICE, "basicService", sid, entry)
        url = self.call_url(SERVICE, sid, items, agent, registries)
        export_origin = items["export"][1] if "export" in items else (SERVICE, sid, "export")
        protocol, port = self.convert(export_origin, parse_export, url.get("export"))
        url = url.copy(protocol=protocol, port=port)
        proxy = url.get("proxy")
        if proxy:
            provider, _ = self.convert(items["proxy"][1], parse_export, proxy)
            if not url.get("provider"):
                url = url.with_params(provider=provider)
        groups = list(dict.fromkeys(g for g in (p.strip() for p in url.group.split(",")) if g))
        return [url.copy(group=g) for g in groups] if groups else [url]


def _port_range(value: Any) -> tuple[int, int]:
    m = _PORT_RANGE.match(value) if isinstance(value, str) else None
    if m is not None:
        start, end = int(m.group(1)), int(m.group(2))
        if 1 <= start <= end <= 65535:
            return start, end
    raise ValueError(f"expected 'start-end' with ports in 1..65535, got {describe(value)}")


def _minus(names: Iterable[str], removed: Iterable[str]) -> list[str]:
    drop = set(removed)
    return [n for n in names if n not in drop]


def _union(*lists: list[str]) -> list[str]:
    return list(dict.fromkeys(n for names in lists for n in names))
