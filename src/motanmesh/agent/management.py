"""The agent's management HTTP API, on ``mport``.

Paths, parameters and answers follow the Go agent, so deploy scripts, health checks and the
mesh registries of Go and Java applications keep working:

* ``/`` (and any unknown path): HTTP status = agent status (200 or 503) with its reason text.
* ``/200``, ``/503``: every registered service available / unavailable; ``ok.``.
* ``/version``, ``/status``, ``/registry/status``, ``/getConfig`` (merged config as YAML),
  ``/getReferService``, ``/getAllService``, ``/runtime/info?keys=clusters,exporters,...``.
* ``/switcher/set?name=&value=``, ``/switcher/get?name=``, ``/switcher/getAll``.
* ``/registry/register``, ``/registry/unregister``, ``/registry/subscribe``: a JSON service
  URL in the body (``{protocol, host, port, path, group, parameters}``; ``group`` may be a
  comma list; ``parameters.proxyRegistry`` names a configured registry as
  ``protocol://host:port`` or by its id). Register exports the application's own port
  through the server agent on ``eport`` and registers it; unregister undoes that; subscribe
  adds a refer so the application calls through the client port. The request URI must be
  exactly the path: a query string is refused with 400. State is kept in
  ``runtime_dir/registry.snap`` and replayed at start with ``-recover``.
* ``/registry/list``, ``/registry/info`` (the client port as ``mesh_port``).
* ``/reload/clusters``: re-read the refers.
* ``/logConfig/get``, ``/logConfig/set?level=|access=|metrics=`` (:mod:`.log_config`).
* ``/metrics``: call metrics and runtime gauges in the Prometheus text format
  (``docs/telemetry.md``); ``/status`` counts the last metrics period's calls.
* ``/debug/graph``: the dependency graph this agent has seen (``motanmesh.graph``), as JSON.

Any HTTP method is accepted; parameters come from the form body or the query string.

Listening: ``managementUnixSock`` if set, else the first free port of
``managementPortRange`` (``start-end``), else ``mport``, on ``managementHost`` (default
127.0.0.1; the Go agent listens on every interface).

Permission: the mutating paths (``/200``, ``/503``, ``/switcher/set``, ``/registry/register``,
``/registry/unregister``, ``/registry/subscribe``, ``/reload/clusters``) need a token whenever
one is configured (the agent parameter ``managementToken`` or the environment variable
``MOTANMESH_ADMIN_TOKEN``), given as header ``Token`` or query ``token``; otherwise the answer
is 403 ``need permission!``. Listening beyond loopback without a configured token is refused at
start. The token is compared in constant time, shown as ``***`` by ``/getConfig`` and never
logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hmac
import ipaddress
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

import yaml

from motanmesh.agent.filtering import FilteredProvider
from motanmesh.agent.http_server import HttpRequest, HttpResponse, HttpServer, redact_path
from motanmesh.agent.log_config import LogConfig
from motanmesh.agent.state import (
    STATUS_AVAILABLE,
    STATUS_UNAVAILABLE,
    VERSION,
    AgentError,
    ManagedAgent,
)
from motanmesh.registry.base import RegistrationStatus, RegistryStatus
from motanmesh.transport.server import MotanServer
from motanmesh.url import URL
from motanmesh.wire import compiled_modules

__all__ = [
    "MUTATING_PATHS",
    "PERMISSION_DENIED",
    "TOKEN_ENV",
    "ManagementServer",
    "aggregate_registry_status",
    "configured_token",
    "is_loopback_host",
    "token_matches",
    "token_required",
    "url_from_json",
    "url_to_json",
]

log = logging.getLogger("motanmesh.agent.management")

TOKEN_ENV: Final = "MOTANMESH_ADMIN_TOKEN"
PERMISSION_DENIED: Final = "need permission!"
SNAPSHOT_FILE: Final = "registry.snap"
DYNAMIC_REFER_PREFIX: Final = "dynamic:"
INSTANCE_TYPE: Final = "motan-agent"
RUNTIME_KEYS: Final = ("clusters", "exporters", "servers", "basic")
ADDITIONAL_GROUP_ENV: Final = "MESH_SERVICE_ADDITIONAL_GROUP"
SUB_GROUP_SUFFIX_ENV: Final = "MESH_MULTI_SUB_GROUP_SUFFIX"
_AGENT_FILTER_PREFIX: Final = "af_"

MUTATING_PATHS: Final = frozenset(
    {
        "/200",
        "/503",
        "/switcher/set",
        "/logConfig/set",
        "/registry/register",
        "/registry/unregister",
        "/registry/subscribe",
        "/reload/clusters",
    }
)
_EXACT_URI_PATHS: Final = frozenset(
    {"/registry/register", "/registry/unregister", "/registry/subscribe"}
)
_TRUE: Final = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "false", "FALSE", "False"})

Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class BadRequestError(Exception):
    """A management request that cannot be served as sent (answered with 400)."""


# ---------------------------------------------------------------------------- permission


def is_loopback_host(host: str) -> bool:
    """Whether a bind address only accepts local callers. Names other than ``localhost``
    and wildcard addresses (``""``, ``0.0.0.0``, ``::``) are not loopback."""
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def token_required(bind_host: str | None) -> bool:
    """Whether mutating requests need a token: only when listening beyond loopback
    (``None`` stands for a unix socket, which never needs one)."""
    return bind_host is not None and not is_loopback_host(bind_host)


def configured_token(params: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> str:
    """The expected token: agent parameter ``managementToken``, else ``MOTANMESH_ADMIN_TOKEN``."""
    return params.get("managementToken") or environ.get(TOKEN_ENV, "")


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison; an empty expected token matches nothing."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


# ---------------------------------------------------------------------------- JSON forms


def url_to_json(url: URL) -> dict[str, Any]:
    """The JSON object of a URL as the management API and ``registry.snap`` write it."""
    return {
        "protocol": url.protocol,
        "host": url.host,
        "port": url.port,
        "path": url.path,
        "group": url.group,
        "parameters": dict(url.parameters),
    }


def _text_field(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {type(value).__name__}")
    return value.strip()


def url_from_json(obj: Any) -> URL:
    """A URL from its JSON object; ``ValueError`` with a clear message when malformed.
    A missing protocol means ``motan2``; ``parameters.group`` is used when ``group`` is
    empty; scalar parameter values are turned into strings."""
    if not isinstance(obj, dict):
        raise ValueError("the body must be a JSON object describing a service URL")
    port = obj.get("port", 0)
    if port is None:
        port = 0
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"'port' must be an integer in 0..65535, got {port!r}")
    raw_params = obj.get("parameters")
    if raw_params is None:
        raw_params = {}
    if not isinstance(raw_params, dict):
        raise ValueError("'parameters' must be a JSON object")
    params: dict[str, str] = {}
    for key, value in raw_params.items():
        if isinstance(value, bool):
            params[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            params[key] = str(value)
        elif value is not None:
            raise ValueError(f"parameter {key!r} must be a scalar, got {type(value).__name__}")
    return URL(
        _text_field(obj, "protocol") or "motan2",
        _text_field(obj, "host"),
        port,
        _text_field(obj, "path"),
        _text_field(obj, "group"),
        params,
    )


def aggregate_registry_status(rows: Iterable[RegistrationStatus], agent_status: int) -> str:
    """The overall ``/registry/status``: the expected outcome of the agent status
    (``register-success`` at 200, ``unregister-success`` otherwise), overridden by rows
    with ``check=true`` — a failure of the expected kind wins over ``not-register``."""
    online = agent_status == STATUS_AVAILABLE
    failed = RegistryStatus.REGISTER_FAILED if online else RegistryStatus.UNREGISTER_FAILED
    result = RegistryStatus.REGISTER_SUCCESS if online else RegistryStatus.UNREGISTER_SUCCESS
    for row in rows:
        if not row.is_check:
            continue
        if row.status == failed:
            return failed.value
        if row.status == RegistryStatus.NOT_REGISTER:
            result = RegistryStatus.NOT_REGISTER
    return result.value


# ---------------------------------------------------------------------------- responses


def _json(obj: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(status, json.dumps(obj), "application/json")


def _text(text: str, status: int = 200) -> HttpResponse:
    return HttpResponse(status, text)


def _reply(code: int, message: str, body: Any = None) -> HttpResponse:
    out: dict[str, Any] = {"code": code, "message": message}
    if body is not None:
        out["body"] = body
    return _json(out, code)


def _parse_bool(value: str) -> bool | None:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def _redact_token(raw: Any) -> Any:
    """The config with ``motan-agent.managementToken`` shown as ``***``."""
    section = raw.get("motan-agent") if isinstance(raw, dict) else None
    if not isinstance(section, dict) or "managementToken" not in section:
        return raw
    return {**raw, "motan-agent": {**section, "managementToken": "***"}}


def _connection_info(server: MotanServer | None) -> dict[str, Any]:
    """The connections of one port and the limits they hit."""
    if server is None:
        return {}
    info: dict[str, Any] = {
        "connections": server.connection_count,
        "limitHits": dict(server.limit_hits),
    }
    if server.tls is not None:
        info["tls"] = {
            "mode": "strict" if server.tls.strict else "permissive",
            "connections": dict(server.tls_connections),
            "refused": dict(server.tls_refused),
        }
    return info


def _rss_bytes() -> int:
    """Resident memory now (``/proc/self/status``), else the peak from ``getrusage``."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    import resource  # noqa: PLC0415

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


# ---------------------------------------------------------------------------- server


class ManagementServer:
    """The management HTTP API of one agent."""

    def __init__(self, agent: ManagedAgent) -> None:
        self.agent = agent
        #: whether mutating requests need the token (decided by :meth:`start`)
        self.token_required = False
        self.token = configured_token(agent.config.agent.params)
        self.address: tuple[str, int] | None = None
        #: dynamic registrations: identity → (requested export URL, registered URL)
        self.register_nodes: dict[str, tuple[URL, URL]] = {}
        #: dynamic subscriptions: identity → refer URL
        self.subscribe_nodes: dict[str, URL] = {}
        self._lock = asyncio.Lock()
        self._http: HttpServer | None = None
        self._unix_path = ""
        self.log_config = LogConfig(agent.filter_context)
        self._routes: dict[str, Handler] = {
            "/200": self._available,
            "/503": self._unavailable,
            "/version": self._version,
            "/status": self._status,
            "/registry/status": self._registry_status,
            "/getConfig": self._get_config,
            "/getReferService": self._get_refer_service,
            "/getAllService": self._get_all_service,
            "/runtime/info": self._runtime_info,
            "/switcher/set": self._switcher_set,
            "/switcher/get": self._switcher_get,
            "/switcher/getAll": self._switcher_get_all,
            "/registry/register": self._register,
            "/registry/unregister": self._unregister,
            "/registry/subscribe": self._subscribe,
            "/registry/list": self._list,
            "/registry/info": self._info,
            "/reload/clusters": self._reload_clusters,
            "/logConfig/get": self._log_config_get,
            "/logConfig/set": self._log_config_set,
            "/metrics": self._metrics,
            "/debug/graph": self._graph,
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> tuple[str, int]:
        """Replay ``registry.snap`` when the agent recovers, then listen. Returns the bound
        ``(host, port)``; on a unix socket, ``(path, mport)``: the configured ``mport`` still
        names the agent's registry node, as in the Go agent. Raises :class:`AgentError`."""
        a = self.agent.config.agent
        if self.agent.recover:
            await self._recover()
        http = HttpServer(self._handle)
        try:
            if a.management_unix_sock:
                self.token_required = bool(self.token)
                try:
                    await http.serve_unix(a.management_unix_sock)
                except OSError as e:
                    raise AgentError(
                        f"motan-agent.managementUnixSock: cannot listen on "
                        f"{a.management_unix_sock}: {e}"
                    ) from e
                self._unix_path = a.management_unix_sock
                self.address = (a.management_unix_sock, a.mport)
            else:
                host = a.params.get("managementHost") or "127.0.0.1"
                self.token_required = token_required(host) or bool(self.token)
                if self.token_required and not self.token:
                    raise AgentError(
                        f"management API on {host} is reachable beyond loopback: set "
                        f"motan-agent.managementToken or {TOKEN_ENV}, or listen on 127.0.0.1"
                    )
                sock = self._bind(host)
                await http.serve_socket(sock)
                bound = sock.getsockname()
                self.address = (str(bound[0]), int(bound[1]))
        except BaseException:
            await http.close()
            raise
        self._http = http
        log.info(
            "management API on %s (token %s)",
            self.address,
            "required" if self.token_required else "not required",
        )
        return self.address

    def _bind(self, host: str) -> socket.socket:
        a = self.agent.config.agent
        if a.management_port_range is not None:
            start, end = a.management_port_range
            ports = list(range(start, end + 1))
            what = f"managementPortRange {start}-{end}"
        else:
            ports = [a.mport]
            what = "mport"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        last: OSError | None = None
        for port in ports:
            try:
                sock = socket.create_server((host, port), family=family, backlog=128)
            except OSError as e:
                last = e
                continue
            sock.setblocking(False)
            return sock
        raise AgentError(f"motan-agent.{what}: cannot listen on {host}: {last}")

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()
        if self._unix_path:
            with contextlib.suppress(OSError):
                os.unlink(self._unix_path)
            self._unix_path = ""

    # ------------------------------------------------------------------ dispatch

    async def _handle(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        handler = self._routes.get(path, self._root)
        if path in MUTATING_PATHS and self.token_required and not self._permitted(request):
            response = _text(PERMISSION_DENIED, 403)
        else:
            try:
                response = await handler(request)
            except Exception as e:
                log.exception("management %s failed", path)
                response = _text(f"internal error: {e}", 500)
        log.info(
            "management %s %s from %s: %d",
            request.method,
            redact_path(request.path_qs),
            request.remote,
            response.status,
        )
        return response

    def _permitted(self, request: HttpRequest) -> bool:
        given = request.headers.get("token") or request.query.get("token")
        return token_matches(self.token, given)

    @staticmethod
    async def _param(request: HttpRequest, name: str) -> str:
        value = request.form().get(name)
        if value is not None:
            return value
        return request.query.get(name, "")

    # ------------------------------------------------------------------ status

    async def _root(self, request: HttpRequest) -> HttpResponse:
        status = self.agent.status
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = str(status)
        return _text(phrase, status)

    async def _available(self, request: HttpRequest) -> HttpResponse:
        await self.agent.set_status(STATUS_AVAILABLE)
        return _text("ok.")

    async def _unavailable(self, request: HttpRequest) -> HttpResponse:
        await self.agent.set_status(STATUS_UNAVAILABLE)
        return _text("ok.")

    async def _version(self, request: HttpRequest) -> HttpResponse:
        return _text(VERSION)

    async def _status(self, request: HttpRequest) -> HttpResponse:
        exported = [(u.group, u.path) for u in self.agent.services + self.agent.dynamic_services]
        body = self.agent.telemetry.status(exported, self.agent.status)
        return _json({"code": 200, "body": body})

    async def _metrics(self, request: HttpRequest) -> HttpResponse:
        body, content_type = self.agent.telemetry.prometheus()
        return HttpResponse(200, body.decode(), content_type)

    async def _graph(self, request: HttpRequest) -> HttpResponse:
        graph = self.agent.graph
        if graph is None:
            return _reply(404, "the dependency graph is off (motan-agent.dependencyGraph)")
        return _json(graph.snapshot())

    async def _registry_status(self, request: HttpRequest) -> HttpResponse:
        rows = [row for r in self.agent.registries.values() for row in r.status()]
        return _json(
            {
                "status": aggregate_registry_status(rows, self.agent.status),
                "registryStatus": [row.to_dict() for row in rows],
            }
        )

    # ------------------------------------------------------------------ information

    async def _get_config(self, request: HttpRequest) -> HttpResponse:
        text = yaml.safe_dump(
            _redact_token(self.agent.config.raw), sort_keys=False, allow_unicode=True
        )
        return HttpResponse(200, text, "text/yaml")

    async def _get_refer_service(self, request: HttpRequest) -> HttpResponse:
        service = [{"name": c.key, "status": c.available} for c in self.agent.clusters.values()]
        return _json({"code": 200, "body": {"service": service}})

    async def _get_all_service(self, request: HttpRequest) -> HttpResponse:
        return _json(
            {
                "services": [url_to_json(u) for u in self.agent.services],
                "dynamic_services": [url_to_json(u) for u in self.agent.dynamic_services],
            }
        )

    async def _runtime_info(self, request: HttpRequest) -> HttpResponse:
        text = await self._param(request, "keys")
        keys = [k.strip() for k in text.split(",") if k.strip()] if text else RUNTIME_KEYS
        sections: dict[str, Callable[[], dict[str, Any]]] = {
            "clusters": self._clusters_info,
            "exporters": self._exporters_info,
            "servers": self._servers_info,
            "basic": self._basic_info,
        }
        result: dict[str, Any] = {"result": "ok", "instanceType": INSTANCE_TYPE}
        for key in keys:
            section = sections.get(key)
            if section is not None:
                result[key] = section()
        return _json(result)

    def _clusters_info(self) -> dict[str, Any]:
        return {rid: c.runtime_info() for rid, c in self.agent.clusters.items()}

    def _exporters_info(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for dynamic, urls in ((False, self.agent.services), (True, self.agent.dynamic_services)):
            for u in urls:
                out[u.identity] = {
                    "url": u.to_ext_info(),
                    "provider": u.get("provider"),
                    "proxy": u.get("proxy"),
                    "dynamic": dynamic,
                }
        return out

    def _servers_info(self) -> dict[str, Any]:
        agent = self.agent
        client = agent.client_address
        ports: dict[str, Any] = {}
        for port, dispatcher in agent.dispatchers.items():
            host, bound = agent.export_addresses[port]
            server = agent.export_servers.get(port)
            ports[str(bound)] = {
                "address": f"{host}:{bound}",
                "providers": sorted(dispatcher.providers),
                "notFoundProviderCount": dispatcher.not_found_count,
                "filters": {
                    key: provider.info()
                    for key, provider in sorted(dispatcher.providers.items())
                    if isinstance(provider, FilteredProvider)
                },
                **_connection_info(server),
            }
        return {
            "agentServer": {
                "address": f"{client[0]}:{client[1]}" if client else "",
                "unixSock": agent.config.agent.unix_sock,
                "notFoundServiceCount": agent.router.not_found_count,
                **_connection_info(agent.client_server),
            },
            "agentPortServer": ports,
            **self._http_proxy_info(),
            **self._tls_info(),
        }

    def _tls_info(self) -> dict[str, Any]:
        material = getattr(self.agent, "tls_material", None)
        return {} if material is None else {"tls": material.info()}

    def _http_proxy_info(self) -> dict[str, Any]:
        proxy = self.agent.http_proxy
        if proxy is None or proxy.address is None:
            return {}
        host, port = proxy.address
        return {
            "httpProxyServer": {
                "address": f"{host}:{port}",
                "deny": sorted(proxy.deny),
                "defaultDomain": proxy.default_domain,
                "httpClients": proxy.domains.runtime_info(),
            }
        }

    def _basic_info(self) -> dict[str, Any]:
        start = self.agent.start_time
        elapsed = max(time.time() - start, 1e-9)
        times = os.times()
        started = datetime.datetime.fromtimestamp(start, datetime.UTC).astimezone()
        return {
            "startTime": started.isoformat(),
            "cpuPercent": int((times.user + times.system) / elapsed * 100),
            "rssMemory": _rss_bytes() >> 20,
            "pid": os.getpid(),
            "version": VERSION,
            "compiledWireModules": compiled_modules(),
        }

    # ------------------------------------------------------------------ switchers

    async def _switcher_set(self, request: HttpRequest) -> HttpResponse:
        name = await self._param(request, "name")
        value = await self._param(request, "value")
        if not name:
            return _text("missing parameter: name", 400)
        if not value:
            return _text("missing parameter: value", 400)
        parsed = _parse_bool(value)
        if parsed is None:
            return _text(f"invalid switcher value (must be true or false): {value}", 400)
        if not self.agent.switchers.set(name, parsed):
            return _text(f"switcher not found: {name}", 404)
        return _text(f"switcher {name} set to {'true' if parsed else 'false'}")

    async def _switcher_get(self, request: HttpRequest) -> HttpResponse:
        name = await self._param(request, "name")
        if not name:
            return _text("missing parameter: name", 400)
        value = self.agent.switchers.get(name)
        if value is None:
            return _text(f"switcher not found: {name}", 404)
        return _text(f"switcher {name} is {'true' if value else 'false'}")

    async def _switcher_get_all(self, request: HttpRequest) -> HttpResponse:
        return _json(self.agent.switchers.all())

    # ------------------------------------------------------------------ logs

    async def _log_config_get(self, request: HttpRequest) -> HttpResponse:
        return self.log_config.get()

    async def _log_config_set(self, request: HttpRequest) -> HttpResponse:
        return self.log_config.set(
            await self._param(request, "level"),
            await self._param(request, "access"),
            await self._param(request, "metrics"),
        )

    # ------------------------------------------------------------------ dynamic registration

    async def _register(self, request: HttpRequest) -> HttpResponse:
        return await self._dynamic(request, self._prepare_export, self.register)

    async def _unregister(self, request: HttpRequest) -> HttpResponse:
        return await self._dynamic(request, self._prepare_export, self.unregister)

    async def _subscribe(self, request: HttpRequest) -> HttpResponse:
        return await self._dynamic(request, self._prepare_refer, self.subscribe)

    async def _dynamic(
        self,
        request: HttpRequest,
        prepare: Callable[[URL], URL],
        apply: Callable[[URL], Awaitable[None]],
    ) -> HttpResponse:
        if request.raw_path not in _EXACT_URI_PATHS:
            return _reply(
                400,
                f"unexpected query string in {request.raw_path!r}; send the "
                "service URL as the JSON body and the token as a header",
            )
        try:
            urls = [prepare(u) for u in self._read_urls(request.body)]
        except BadRequestError as e:
            return _reply(400, str(e))
        async with self._lock:
            for url in urls:
                try:
                    await apply(url)
                except BadRequestError as e:
                    return _reply(400, str(e))
                except Exception as e:
                    log.error("%s %s failed: %s", request.path, url.to_ext_info(), e)
                    return _reply(500, str(e))
            self._save_snapshot()
        return _reply(200, "ok")

    def _read_urls(self, body: bytes) -> list[URL]:
        """One URL per group of the JSON body (plus ``MESH_SERVICE_ADDITIONAL_GROUP``)."""
        try:
            url = url_from_json(json.loads(body or b"null"))
        except ValueError as e:
            raise BadRequestError(f"invalid service URL: {e}") from e
        if not url.path:
            raise BadRequestError("invalid service URL: 'path' is required")
        groups = url.group.split(",")
        extra = os.environ.get(ADDITIONAL_GROUP_ENV, "")
        if extra:
            groups.extend(extra.split(","))
        unique = list(dict.fromkeys(g.strip() for g in groups if g.strip()))
        if not unique:
            raise BadRequestError("invalid service URL: 'group' is required")
        return [self._with_registry(url.copy(group=g)) for g in unique]

    def _with_registry(self, url: URL) -> URL:
        """Resolve ``proxyRegistry`` (``protocol://host:port`` or an id) or
        ``proxyRegistryUrlString`` to a configured registry id; keep only ``af_`` filters."""
        rid = self._find_registry(url)
        if rid is None:
            raise BadRequestError("registry not found")
        extra = {"registry": rid}
        agent_filters = [
            f[len(_AGENT_FILTER_PREFIX) :].strip()
            for f in url.get_list("filter")
            if f.startswith(_AGENT_FILTER_PREFIX) and f != _AGENT_FILTER_PREFIX
        ]
        if agent_filters:
            extra["filter"] = ",".join(agent_filters)
        return url.with_params(extra)

    def _find_registry(self, url: URL) -> str | None:
        registries = self.agent.registries
        wanted = url.get("proxyRegistry")
        if wanted:
            if wanted in registries:
                return wanted
            for rid, registry in registries.items():
                r = registry.url
                if f"{r.protocol}://{r.host}:{r.port}" == wanted:
                    return rid
        text = url.get("proxyRegistryUrlString")
        if text:
            try:
                target = URL.parse(unquote(text))
            except ValueError:
                return None
            for rid, registry in registries.items():
                r = registry.url
                if (r.protocol, r.host, r.port) == (target.protocol, target.host, target.port):
                    return rid
        return None

    def _prepare_export(self, url: URL) -> URL:
        """The server-agent export of an application's service: provider ``proxy`` = the
        application's own port, exported on ``eport`` on the agent's address."""
        if not url.port:
            raise BadRequestError(
                "invalid service URL: 'port' (the application's port) is required"
            )
        agent = self.agent
        eport = agent.config.agent.eport
        extra = {"proxy": f"{url.protocol}:{url.port}", "export": f"{url.protocol}:{eport}"}
        if not url.application:
            extra["application"] = agent.application
        return url.with_params(extra).copy(host=agent.local_ip, port=eport)

    @staticmethod
    def _prepare_refer(url: URL) -> URL:
        return url.copy(host="", port=0)

    async def register(self, url: URL) -> None:
        """Export and register a prepared service URL (idempotent)."""
        key = url.identity
        if key in self.register_nodes:
            return
        registered = await self.agent.export_service(
            url, what=f"dynamic service {url.path}", dynamic=True
        )
        self.register_nodes[key] = (url, registered)

    async def unregister(self, url: URL) -> None:
        """Undo :meth:`register` (nothing to do when it was not registered)."""
        entry = self.register_nodes.pop(url.identity, None)
        if entry is not None:
            await self.agent.unexport_service(entry[1])

    async def subscribe(self, url: URL) -> None:
        """Add a refer (plus ``group + MESH_MULTI_SUB_GROUP_SUFFIX`` when that is set)."""
        refers = [url]
        suffix = os.environ.get(SUB_GROUP_SUFFIX_ENV, "")
        if suffix:
            refers.append(url.copy(group=url.group + suffix))
        for refer in refers:
            key = refer.identity
            if key in self.subscribe_nodes:
                continue
            self.subscribe_nodes[key] = refer
            known = {c.refer.identity for c in self.agent.clusters.values()}
            if key not in known:
                await self.agent.subscribe_refer(DYNAMIC_REFER_PREFIX + key, refer)

    # ------------------------------------------------------------------ list, info, snapshot

    async def _list(self, request: HttpRequest) -> HttpResponse:
        return _reply(200, "ok", self._snapshot())

    async def _info(self, request: HttpRequest) -> HttpResponse:
        client = self.agent.client_address
        port = client[1] if client else self.agent.config.agent.port
        return _reply(200, "ok", {"mesh_port": port})

    def _snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "register_nodes": [url_to_json(u) for u, _ in self.register_nodes.values()],
            "subscribe_nodes": [url_to_json(u) for u in self.subscribe_nodes.values()],
        }

    @property
    def snapshot_path(self) -> Path:
        return self.agent.runtime_dir / SNAPSHOT_FILE

    def _save_snapshot(self) -> None:
        path = self.snapshot_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(self._snapshot()))
            os.replace(tmp, path)
        except OSError as e:
            log.error("cannot write %s: %s", path, e)

    async def _recover(self) -> None:
        path = self.snapshot_path
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            log.warning("no dynamic registrations recovered from %s: %s", path, e)
            return
        if not isinstance(data, dict):
            log.warning("%s does not hold a JSON object; ignored", path)
            return
        steps: tuple[tuple[str, Callable[[URL], Awaitable[None]]], ...] = (
            ("register_nodes", self.register),
            ("subscribe_nodes", self.subscribe),
        )
        for key, apply in steps:
            for node in data.get(key) or ():
                try:
                    await apply(url_from_json(node))
                except Exception as e:
                    log.error("recovering %s %r failed: %s", key, node, e)

    # ------------------------------------------------------------------ reload

    async def _reload_clusters(self, request: HttpRequest) -> HttpResponse:
        try:
            refers = await self.agent.reload_clusters()
        except Exception as e:
            log.error("reload of the refers failed: %s", e)
            return _json({"code": 500, "body": f"reload failed: {e}"}, 500)
        clusters = self.agent.clusters
        body = {rid: url_to_json(clusters[rid].refer) for rid in refers if rid in clusters}
        return _json({"code": 200, "body": json.dumps(body)})
