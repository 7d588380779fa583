"""The ``http`` provider: an exported Motan2 service served by a local HTTP service.

Every RPC becomes one HTTP request; the HTTP response becomes the RPC response. The mode is
chosen by the service URL:

* **proxy mode** (``proxyAddress`` set, ``host:port`` or ``unix:///path``): the request goes
  to ``proxySchema://proxyAddress`` (scheme default ``http``) and its path is the RPC method
  (``M_m``, a URI such as ``/api/hello``; a ``/`` is prefixed when missing, and a ``?query``
  in it joins the query string).
* **URL-format mode** (no ``proxyAddress``): the URL is ``URL_FORMAT`` with its one ``%s``
  replaced by the method (``http://127.0.0.1:8080/%s``; one leading ``/`` of the method is
  dropped after ``/%s``). The ``http-service`` config section may give ``URL_FORMAT`` and
  ``HTTP_REQUEST_METHOD`` per method for the service's ``conf-id``:
  ``{conf-id: {"m1,m2": {URL_FORMAT: ..., HTTP_REQUEST_METHOD: ...}}}``, with the method list
  ``http_default_motan_method`` as the fallback and the URL parameters after it. A format
  whose host part is fixed keeps every request on that host.

The HTTP request, in both modes:

* method: attachment ``HTTP_Method``, else ``HTTP_REQUEST_METHOD``, else ``GET``;
* query: attachment ``HTTP_QueryString`` (kept as written);
* headers from the other attachments: ``M_x`` becomes ``MOTAN-x`` (``M_p`` → ``MOTAN-p``),
  ``http_x`` becomes ``x``, any other key is used as it is. ``HTTP_PROXY`` is not sent; names
  that are not HTTP tokens, values holding CR/LF/NUL and connection-level headers (``Host``,
  ``Content-Length``, ``Connection``, ``Transfer-Encoding`` ...) are dropped. The caller's IP is
  appended to ``X-Forwarded-For``; ``Host`` is the ``domain`` parameter when set;
* body from the request arguments: none gives no body; one map gives form fields, sent as an
  ``application/x-www-form-urlencoded`` body for POST, PUT, PATCH and other methods, and added
  to the query for GET, HEAD, DELETE and OPTIONS; one string gives a UTF-8 ``text/plain`` body,
  one bytes value an ``application/octet-stream`` body (an attachment ``Content-Type`` wins);
  a number or boolean is sent as text.

A request with attachment ``HTTP_PROXY=true`` (HTTP-over-Motan, from a client agent's HTTP
forward proxy) is served in transparent mode instead: see :mod:`motanmesh.agent.http_transparent`.
It needs ``proxyAddress``.

The response value is the HTTP body as a string (as bytes when it is not UTF-8), encoded with
the request's serialization, with attachment ``upstreamCode`` = the HTTP status. With
``enableHttpException`` a status of 400 or more becomes an exception response instead
(errcode = the status, errtype 1, errmsg = the body text cut to 1024 characters). Redirects are
returned, not followed; cookies are never kept between calls.

Failures are exception responses with errtype 1 (service), so callers count them as errors:

====  =====================================================================================
400   arguments that do not decode, or more than one argument, or an argument of another type
500   no URL for the method (URL-format mode), or an unexpected failure
404   a transparent request whose path no ``http-locations`` entry of ``domain`` matches
502   the upstream answered with something unusable, or a body over ``maxContentLength``
503   the upstream cannot be reached (connection refused, no socket), or the provider closed
504   no complete answer within ``requestTimeout`` (ms, default 1000)
====  =====================================================================================

Connection pool: ``maxConnections`` (default 512) connections at most; idle connections are
closed after ``idleConnectionTimeout`` (or ``keepaliveTimeout``) ms, default 15000; 0 turns
keep-alive off.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping
from time import perf_counter
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
import yarl
from multidict import CIMultiDict

from motanmesh.agent import http_transparent as transparent
from motanmesh.agent.providers import ProviderError, elapsed_ms, error_answer
from motanmesh.httpmotan.locations import LocationMatcher
from motanmesh.transport.server import Responder, ServerConnection
from motanmesh.url import URL
from motanmesh.wire.frame import (
    DEFAULT_MAX_CONTENT_LENGTH,
    ERRTYPE_SERVICE,
    FLAG_GZIP,
    M_METHOD,
    M_PROCESS_TIME,
    Frame,
    exception_frame,
    gunzip,
    gzip_body,
    response_frame,
)
from motanmesh.wire.serialization import Serialization, get_serialization

__all__ = [
    "DEFAULT_METHOD_KEY",
    "UPSTREAM_CODE",
    "HttpProvider",
    "attachment_headers",
    "header_name",
    "method_table",
]

log = logging.getLogger("motanmesh.agent")

UPSTREAM_CODE: Final = "upstreamCode"
#: the ``http-service`` method list used when a method has no entry of its own
DEFAULT_METHOD_KEY: Final = "http_default_motan_method"
HTTP_METHOD_KEY: Final = "HTTP_Method"
HTTP_QUERY_KEY: Final = "HTTP_QueryString"
HTTP_PROXY_KEY: Final = "HTTP_PROXY"
URL_FORMAT: Final = "URL_FORMAT"
HTTP_REQUEST_METHOD: Final = "HTTP_REQUEST_METHOD"

E_BAD_ARGUMENTS: Final = 400
E_INTERNAL: Final = 500
E_BAD_GATEWAY: Final = 502
E_UNAVAILABLE: Final = 503
E_TIMEOUT: Final = 504
MAX_ERRMSG: Final = 1024

_TOKEN_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_PORT_END_RE: Final = re.compile(r":[0-9]+\Z")
_BAD_VALUE_RE: Final = re.compile(r"[\r\n\x00]")
_CONSUMED: Final = frozenset({HTTP_METHOD_KEY, HTTP_QUERY_KEY, HTTP_PROXY_KEY})
_DROPPED: Final = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "te",
        "trailer",
        "expect",
    }
)
_QUERY_METHODS: Final = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
_FORM: Final = "application/x-www-form-urlencoded"
_TEXT: Final = "text/plain; charset=utf-8"
_BINARY: Final = "application/octet-stream"
_TRUE_TEXT: Final = frozenset({"1", "t", "true"})
#: transparent mode sends the caller's headers only
_NO_AUTO_HEADERS: Final = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class _CallError(Exception):
    """A call that ends in an exception response with ``code``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- mapping


def header_name(key: str) -> str | None:
    """The HTTP header an attachment key becomes, or ``None`` when it is not sent."""
    if key in _CONSUMED:
        return None
    if key.startswith("M_"):
        name = "MOTAN-" + key[2:]
    elif key.startswith("http_"):
        name = key[5:]
    else:
        name = key
    if not _TOKEN_RE.match(name) or name.lower() in _DROPPED:
        return None
    return name


def attachment_headers(metadata: Mapping[str, str], caller_ip: str = "") -> CIMultiDict[str]:
    """The request headers for the attachments ``metadata`` (see the module docs)."""
    headers: CIMultiDict[str] = CIMultiDict()
    for key, value in metadata.items():
        name = header_name(key)
        if name is not None and not _BAD_VALUE_RE.search(value):
            headers[name] = value
    if caller_ip:
        prior = headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{prior}, {caller_ip}" if prior else caller_ip
    return headers


def method_table(section: Mapping[str, Any] | None, conf_id: str) -> dict[str, dict[str, str]]:
    """The ``http-service`` entries of ``conf_id``: method → ``{URL_FORMAT, ...}``."""
    if not section or not conf_id or conf_id not in section:
        return {}
    entry = section[conf_id]
    if not isinstance(entry, Mapping):
        raise ProviderError(f"http-service {conf_id}: expected a mapping of method lists")
    table: dict[str, dict[str, str]] = {}
    for methods, conf in entry.items():
        if not isinstance(conf, Mapping):
            raise ProviderError(f"http-service {conf_id}.{methods}: expected a mapping")
        values = {str(k): str(v) for k, v in conf.items() if v is not None}
        _check_format(values.get(URL_FORMAT, ""), f"http-service {conf_id}.{methods}")
        for method in str(methods).split(","):
            if method.strip():
                table[method.strip()] = values
    return table


def _check_format(fmt: str, where: str) -> None:
    if not fmt:
        return
    if fmt.count("%s") > 1:
        raise ProviderError(f"{where}: URL_FORMAT {fmt!r} has more than one %s")
    for method in ("m", "/m"):
        try:
            probe = yarl.URL(fmt.replace("%s", method))
        except ValueError:
            continue
        if probe.scheme in ("http", "https") and probe.host:
            return
    raise ProviderError(f"{where}: URL_FORMAT {fmt!r} is not an http(s) URL")


def _fixed_origin(fmt: str) -> tuple[str, int | None] | None:
    """Host and port every URL of ``fmt`` must keep, or ``None`` when ``%s`` builds them.

    ``%s`` right after an explicit port (``http://h:8080%s``) starts the path: the origin is
    fixed. Anywhere else in the host part (``http://api-%s.example.com/``) it is not.
    """
    rest = fmt.partition("://")[2]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    at = authority.find("%s")
    if at >= 0 and not (at == len(authority) - 2 and _PORT_END_RE.search(authority[:at])):
        return None
    probe = yarl.URL(fmt.replace("%s", "/m"))
    return probe.host or "", probe.port


def _text(value: Any) -> str | bytes:
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _form(fields: Mapping[Any, Any]) -> str:
    pairs: list[tuple[str | bytes, Any]] = []
    for key, value in fields.items():
        name = _text(key)
        if isinstance(value, list | tuple):
            pairs.extend((name, _text(v)) for v in value)
        else:
            pairs.append((name, _text(value)))
    return urlencode(pairs)


def _join_query(*parts: str) -> str:
    return "&".join(p for p in parts if p)


# --------------------------------------------------------------------------- provider


class HttpProvider:
    """Serves an exported service with a local HTTP service (see the module docs)."""

    def __init__(
        self,
        url: URL,
        http_service: Mapping[str, Any] | None = None,
        http_locations: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.domain = url.get("domain")
        #: transparent mode: the rewrite rules of ``domain`` (``None``: ``enableRewrite`` off)
        self.locations: LocationMatcher | None = (
            LocationMatcher.from_config(http_locations, self.domain)
            if url.get_bool("enableRewrite", True)
            else None
        )
        self.enable_http_exception = url.get_bool("enableHttpException")
        self.default_method = url.get(HTTP_REQUEST_METHOD, "GET").upper()
        self.max_connections = max(1, url.get_int("maxConnections", 512))
        idle_ms = url.get_int("idleConnectionTimeout", url.get_int("keepaliveTimeout", 15000))
        self.idle_timeout = max(0, idle_ms) / 1000
        self.timeout = aiohttp.ClientTimeout(total=max(1, url.request_timeout_ms) / 1000)
        self.max_content_length = url.get_int("maxContentLength", DEFAULT_MAX_CONTENT_LENGTH)
        self.min_gzip_size = url.get_int("mingzSize", 0)
        self.unix_path = ""
        self.base = ""
        self.methods: dict[str, dict[str, str]] = {}
        address = url.get("proxyAddress")
        if address:
            scheme = url.get("proxySchema", "http")
            if address.startswith("unix:"):
                self.unix_path = address[5:].removeprefix("//")
                if not self.unix_path:
                    raise ProviderError(f"service {url.path}: proxyAddress {address!r} has no path")
                self.base = f"{scheme}://{self.domain or 'localhost'}"
            elif "://" in address:
                self.base = address.rstrip("/")
            else:
                self.base = f"{scheme}://{address}"
        else:
            self.methods = method_table(http_service, url.conf_id)
            fmt = url.get(URL_FORMAT)
            _check_format(fmt, f"service {url.path}")
            if not fmt and not any(URL_FORMAT in conf for conf in self.methods.values()):
                raise ProviderError(
                    f"service {url.path}: provider http needs proxyAddress, URL_FORMAT "
                    "or an http-service entry for its conf-id"
                )
        self._session: aiohttp.ClientSession | None = None
        #: transparent mode's client: bodies are passed on as they came (no decompression)
        self._raw_session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def pending(self) -> int:
        """Calls waiting for their HTTP response."""
        return len(self._tasks)

    async def start(self) -> None:
        self._closed = False
        self._client()

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for session in (self._session, self._raw_session):
            if session is not None:
                await session.close()
        self._session = self._raw_session = None

    def _client(self, *, raw: bool = False) -> aiohttp.ClientSession:
        session = self._raw_session if raw else self._session
        if session is None:
            pool: dict[str, Any] = {"limit": self.max_connections}
            if self.idle_timeout > 0:
                pool["keepalive_timeout"] = self.idle_timeout
            else:
                pool["force_close"] = True
            connector: aiohttp.BaseConnector
            if self.unix_path:
                connector = aiohttp.UnixConnector(self.unix_path, **pool)
            else:
                connector = aiohttp.TCPConnector(**pool)
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=self.timeout,
                trust_env=False,
                auto_decompress=not raw,
            )
            if raw:
                self._raw_session = session
            else:
                self._session = session
        return session

    # ------------------------------------------------------------------ per call

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        start = perf_counter()
        meta = frame.metadata
        try:
            if self._closed:
                raise _CallError(E_UNAVAILABLE, "http provider is closed")
            ser = get_serialization(frame.serialization)
            args = self._arguments(frame, ser)
            if meta.get(HTTP_PROXY_KEY, "").lower() in _TRUE_TEXT:
                self._transparent(frame, respond, start, ser, args, conn.peer_host)
                return
            method, url, headers, body = self._build(frame, args, conn.peer_host)
        except _CallError as f:
            respond(error_answer(frame, start, f.code, str(f)))
            return
        except Exception as e:
            respond(error_answer(frame, start, E_BAD_ARGUMENTS, f"http provider: bad request: {e}"))
            return
        task = asyncio.get_running_loop().create_task(
            self._run(frame, respond, start, ser, method, url, headers, body)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _transparent(
        self,
        frame: Frame,
        respond: Responder,
        start: float,
        ser: Serialization,
        args: list[Any],
        caller_ip: str,
    ) -> None:
        if not self.base:
            raise _CallError(E_INTERNAL, "transparent HTTP requests need proxyAddress")
        try:
            request = transparent.prepare(frame, args, self.base, self.locations, caller_ip)
        except transparent.TransparentError as e:
            raise _CallError(e.code, str(e)) from e
        task = asyncio.get_running_loop().create_task(
            self._run_transparent(frame, respond, start, ser, request)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_transparent(
        self,
        frame: Frame,
        respond: Responder,
        start: float,
        ser: Serialization,
        request: transparent.TransparentRequest,
    ) -> None:
        try:
            async with self._client(raw=True).request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body or None,
                allow_redirects=False,
                skip_auto_headers=_NO_AUTO_HEADERS,
            ) as resp:
                status, reason, raw_headers = resp.status, resp.reason or "", resp.raw_headers
                content = await self._read(resp)
        except asyncio.CancelledError:
            respond(error_answer(frame, start, E_UNAVAILABLE, "http provider is closed"))
            raise
        except Exception as e:
            respond(self._failure(frame, start, request.url, e))
            return
        if self.enable_http_exception and status >= 400:
            respond(self._response(frame, start, ser, status, content))
            return
        value = transparent.response_value(request, status, reason, raw_headers, content)
        meta = {UPSTREAM_CODE: str(status), M_PROCESS_TIME: elapsed_ms(start)}
        response = response_frame(
            frame.request_id, meta, ser.encode(value), serialization=frame.serialization, proxy=True
        )
        gzip_body(response, self.min_gzip_size)
        respond(response.encode())

    def _failure(self, frame: Frame, start: float, url: yarl.URL, e: Exception) -> bytes:
        if isinstance(e, _CallError):
            return error_answer(frame, start, e.code, str(e))
        if isinstance(e, TimeoutError):
            ms = round((self.timeout.total or 0) * 1000)
            message = f"http upstream timeout after {ms}ms: {url}"
            return error_answer(frame, start, E_TIMEOUT, message)
        if isinstance(e, aiohttp.ClientConnectorError):
            return error_answer(frame, start, E_UNAVAILABLE, f"http upstream unavailable: {e}")
        if isinstance(e, aiohttp.ClientError):
            msg = f"http upstream error: {type(e).__name__}: {e}"
            return error_answer(frame, start, E_BAD_GATEWAY, msg)
        log.error("http provider call to %s failed: %r", url, e)
        return error_answer(frame, start, E_INTERNAL, f"http provider failed: {e!r}")

    def _arguments(self, frame: Frame, ser: Serialization) -> list[Any]:
        body = frame.body
        if not body:
            return []
        try:
            if frame.flags & FLAG_GZIP:
                body = gunzip(body, self.max_content_length)
            return ser.decode_multi(body)
        except Exception as e:
            raise _CallError(E_BAD_ARGUMENTS, f"http provider: arguments do not decode: {e}") from e

    def _build(
        self, frame: Frame, args: list[Any], caller_ip: str
    ) -> tuple[str, yarl.URL, CIMultiDict[str], bytes | None]:
        meta = frame.metadata
        rpc_method = meta.get(M_METHOD, "")
        conf = self.methods.get(rpc_method) or self.methods.get(DEFAULT_METHOD_KEY) or {}
        method = (
            meta.get(HTTP_METHOD_KEY)
            or conf.get(HTTP_REQUEST_METHOD, "").upper()
            or self.default_method
        ).upper()
        if not _TOKEN_RE.match(method):
            raise _CallError(E_BAD_ARGUMENTS, f"http provider: bad HTTP method {method!r}")
        query = meta.get(HTTP_QUERY_KEY, "")
        if self.base:
            path, _, extra = rpc_method.partition("?")
            if not path.startswith("/"):
                path = "/" + path
            target = self.base + path
            query = _join_query(query, extra)
            origin = None
        else:
            fmt = conf.get(URL_FORMAT) or self.url.get(URL_FORMAT)
            if not fmt:
                raise _CallError(
                    E_INTERNAL, f"http provider: no URL_FORMAT for method {rpc_method}"
                )
            name = rpc_method[1:] if "/%s" in fmt and rpc_method.startswith("/") else rpc_method
            target = fmt.replace("%s", name)
            origin = _fixed_origin(fmt)
        headers = attachment_headers(meta, caller_ip)
        if self.domain:
            headers["Host"] = self.domain
        if len(args) > 1:
            raise _CallError(
                E_BAD_ARGUMENTS, f"http provider takes at most one argument, got {len(args)}"
            )
        body: bytes | None = None
        content_type = ""
        arg = args[0] if args else None
        if isinstance(arg, Mapping):
            form = _form(arg)
            if method in _QUERY_METHODS:
                query = _join_query(query, form)
            else:
                body, content_type = form.encode(), _FORM
        elif isinstance(arg, str):
            body, content_type = arg.encode("utf-8", "surrogateescape"), _TEXT
        elif isinstance(arg, bytes | bytearray):
            body, content_type = bytes(arg), _BINARY
        elif isinstance(arg, bool | int | float):
            body, content_type = str(_text(arg)).encode(), _TEXT
        elif arg is not None:
            raise _CallError(
                E_BAD_ARGUMENTS, f"http provider: unsupported argument type {type(arg).__name__}"
            )
        if content_type and "Content-Type" not in headers:
            headers["Content-Type"] = content_type
        if query:
            target += ("&" if "?" in target else "?") + query
        try:
            url = yarl.URL(target)
        except ValueError as e:
            raise _CallError(E_BAD_ARGUMENTS, f"http provider: bad URL {target!r}: {e}") from e
        if origin is not None and (url.host or "", url.port) != origin:
            raise _CallError(
                E_BAD_ARGUMENTS, f"http provider: method {rpc_method!r} leaves the host"
            )
        return method, url, headers, body

    async def _run(
        self,
        frame: Frame,
        respond: Responder,
        start: float,
        ser: Serialization,
        method: str,
        url: yarl.URL,
        headers: CIMultiDict[str],
        body: bytes | None,
    ) -> None:
        try:
            async with self._client().request(
                method, url, headers=headers, data=body, allow_redirects=False
            ) as resp:
                status = resp.status
                content = await self._read(resp)
        except asyncio.CancelledError:
            respond(error_answer(frame, start, E_UNAVAILABLE, "http provider is closed"))
            raise
        except Exception as e:
            respond(self._failure(frame, start, url, e))
            return
        respond(self._response(frame, start, ser, status, content))

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.max_content_length
        length = resp.content_length
        if length is not None and length > limit:
            raise _CallError(E_BAD_GATEWAY, f"http upstream body of {length} bytes over {limit}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise _CallError(E_BAD_GATEWAY, f"http upstream body over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _response(
        self, frame: Frame, start: float, ser: Serialization, status: int, content: bytes
    ) -> bytes:
        meta = {UPSTREAM_CODE: str(status), M_PROCESS_TIME: elapsed_ms(start)}
        try:
            text: str | None = content.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if self.enable_http_exception and status >= 400:
            msg = text if text is not None else content.decode("utf-8", "replace")
            return exception_frame(
                frame.request_id,
                status,
                msg[:MAX_ERRMSG] or f"http status {status}",
                ERRTYPE_SERVICE,
                serialization=frame.serialization,
                proxy=True,
                metadata=meta,
            ).encode()
        value: str | bytes = text if text is not None else content
        response = response_frame(
            frame.request_id, meta, ser.encode(value), serialization=frame.serialization, proxy=True
        )
        gzip_body(response, self.min_gzip_size)
        return response.encode()
