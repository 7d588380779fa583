"""The HTTP forward proxy on ``hport`` (the Go agent's ``server/httpProxyServer.go``).

It listens only with ``httpProxyEnable: true``, on the agent's ``host`` (loopback by default)
port ``hport`` (default 9983), and on ``httpProxyUnixSock`` when set. For each request:

* ``CONNECT host:port``: a TCP tunnel to that address (502 when it cannot be reached);
* path ``/proxy_to_rpc``: query (or form) ``service``, ``method``, ``group``,
  ``arg_type=string`` and ``arg``: a Motan call with that one string argument, routed as the
  client port routes (the HTTP headers become attachments); the value comes back as
  ``text/plain`` with the response attachments as headers; errors are 400 (missing
  parameters) and 502 (the call failed, with the error message);
* a request for an ``http-client`` domain (the ``Host``, else ``httpProxyDefaultDomain``)
  whose path an ``http-locations`` entry maps to an upstream service: HTTP-over-Motan (raw
  request head and body as the two arguments, attachment ``HTTP_PROXY=true``); "no endpoints"
  falls back to plain proxying, other failures are 502 ``err_msg: ...``;
* anything else is proxied as plain HTTP to its host, except a request in origin form for the
  proxy's own address (``127.0.0.1``, ``localhost`` or the local IP with ``hport``): 400.

A request body over ``httpProxyMaxRequestBodySize`` (default 2^31-1) is answered 413.
``httpProxyTimeout`` (ms, default 5000) bounds a plain proxied request;
``httpProxyKeepaliveTimeout`` (ms, default 5000) the idle upstream connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import parse_qs

import h11
import yarl

from motanmesh.cluster.cluster import Cluster
from motanmesh.httpmotan.heads import request_head_bytes
from motanmesh.ingress.http import rpc
from motanmesh.ingress.http.domains import HttpDomain, HttpDomains
from motanmesh.ingress.http.forward import PlainProxy, tunnel
from motanmesh.ingress.http.rpc import Headers, Reply, error_reply
from motanmesh.wire.frame import M_REQUEST_ID, M_SOURCE, Frame

__all__ = ["HttpProxyServer"]

log = logging.getLogger("motanmesh.ingress")

DEFAULT_MAX_BODY: Final = 2**31 - 1
MAX_HEAD: Final = 64 * 1024
READ_CHUNK: Final = 65536
CONNECT_TIMEOUT: Final = 5.0
Route = Callable[[Frame], Cluster | str]


class _RejectError(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _ms(params: Mapping[str, str], key: str, default: int) -> float:
    try:
        return max(0, int(params.get(key, default))) / 1000
    except ValueError:
        return default / 1000


class HttpProxyServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        params: Mapping[str, str],
        route: Route,
        domains: HttpDomains,
        local_ip: str = "",
        application: str = "",
    ) -> None:
        self.host = host
        self.port = port
        self.route = route
        self.domains = domains
        self.local_ip = local_ip
        self.application = application
        self.unix_sock = params.get("httpProxyUnixSock", "")
        self.default_domain = params.get("httpProxyDefaultDomain", "")
        try:
            size = int(params.get("httpProxyMaxRequestBodySize", DEFAULT_MAX_BODY))
        except ValueError:
            size = DEFAULT_MAX_BODY
        self.max_body = size if size > 0 else DEFAULT_MAX_BODY
        self.plain = PlainProxy(
            timeout=_ms(params, "httpProxyTimeout", 5000),
            keepalive_timeout=_ms(params, "httpProxyKeepaliveTimeout", 5000),
            max_body=DEFAULT_MAX_BODY,
        )
        self.deny: set[str] = set()
        self._servers: list[asyncio.Server] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self.address: tuple[str, int] | None = None

    async def start(self) -> tuple[str, int]:
        server = await asyncio.start_server(self._serve, self.host, self.port, limit=READ_CHUNK)
        self._servers.append(server)
        self.address = server.sockets[0].getsockname()[:2]
        bound = self.address[1]
        self.deny = {f"127.0.0.1:{bound}", f"localhost:{bound}", f"{self.host}:{bound}"}
        if self.local_ip:
            self.deny.add(f"{self.local_ip}:{bound}")
        if self.unix_sock:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_sock)
            self._servers.append(await asyncio.start_unix_server(self._serve, self.unix_sock))
        await self.domains.start()
        return self.address

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        await self.plain.close()
        await self.domains.close()

    # ------------------------------------------------------------------ connections

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        peer = writer.get_extra_info("peername")
        peer_ip = str(peer[0]) if isinstance(peer, tuple) else "127.0.0.1"
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        try:
            while True:
                request = await self._next(conn, reader)
                if not isinstance(request, h11.Request):
                    break
                try:
                    body = await self._body(conn, reader, writer, request)
                except _RejectError as r:
                    await self._write(conn, writer, request.method, r.reply)
                    break
                if request.method == b"CONNECT":
                    await self._connect(conn, reader, writer, request)
                    return
                try:
                    reply = await self._handle(request, body, peer_ip)
                except Exception as e:
                    log.exception("http proxy handler for %r failed", request.target)
                    reply = error_reply(502, f"err_msg: http proxy failed: {e}")
                await self._write(conn, writer, request.method, reply)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    break
                conn.start_next_cycle()
        except h11.RemoteProtocolError as e:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(Exception):
                    reply = error_reply(e.error_status_hint, f"bad request: {e}")
                    await self._write(conn, writer, b"GET", reply)
        except (OSError, asyncio.IncompleteReadError, h11.LocalProtocolError) as e:
            log.debug("http proxy connection from %s: %s", peer_ip, e)
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _next(self, conn: h11.Connection, reader: asyncio.StreamReader) -> object:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(await reader.read(READ_CHUNK))

    async def _body(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
    ) -> bytes:
        for name, value in request.headers:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                raise _RejectError(error_reply(413, "Request Entity Too Large"))
        if conn.they_are_waiting_for_100_continue:
            writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self._next(conn, reader)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.max_body:
                    raise _RejectError(error_reply(413, "Request Entity Too Large"))
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            else:
                raise h11.RemoteProtocolError("connection closed within a request body")

    async def _write(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, method: bytes, reply: Reply
    ) -> None:
        headers = list(reply.headers)
        if not reply.framed:
            headers.append((b"Content-Length", b"%d" % len(reply.body)))
        status = reply.status if reply.status >= 200 else 502
        out = conn.send(h11.Response(status_code=status, headers=headers, reason=reply.reason))
        if reply.body and method != b"HEAD" and not reply.framed:
            out += conn.send(h11.Data(data=reply.body))
        out += conn.send(h11.EndOfMessage())
        writer.write(out)
        await writer.drain()

    async def _connect(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
    ) -> None:
        target = request.target.decode("latin-1")
        host, _, port = target.rpartition(":")
        try:
            upstream = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), CONNECT_TIMEOUT
            )
        except (OSError, ValueError, TimeoutError) as e:
            log.info("CONNECT %s failed: %s", target, e)
            await self._write(conn, writer, b"CONNECT", error_reply(502, ""))
            return
        writer.write(conn.send(h11.Response(status_code=200, headers=[])))
        await writer.drain()
        first, _closed = conn.trailing_data
        await tunnel(reader, writer, upstream, bytes(first))

    # ------------------------------------------------------------------ requests

    async def _handle(self, request: h11.Request, body: bytes, peer_ip: str) -> Reply:
        target = request.target
        headers: Headers = list(request.headers.raw_items())
        absolute = not target.startswith(b"/")
        if absolute:
            try:
                url = yarl.URL(target.decode("latin-1"), encoded=True)
            except ValueError:
                return error_reply(400, "bad request target")
            host_port = url.raw_authority
            origin_target = (url.raw_path_qs or "/").encode("latin-1")
        else:
            host_port = _header(headers, b"host")
            origin_target = target
        path = origin_target.split(b"?", 1)[0].decode("latin-1")
        if path == "/proxy_to_rpc":
            return await self._proxy_to_rpc(origin_target, headers, body, peer_ip)
        if ":" not in host_port:
            host_port += ":80"
        host = host_port.rsplit(":", 1)[0]
        domain = self.domains.get(host)
        if domain is None and self.default_domain:
            headers = _set_header(headers, b"Host", self.default_domain.encode())
            host_port = self.default_domain + ":80"
            domain = self.domains.get(self.default_domain)
        if domain is not None:
            upstream = domain.upstream(path)
            if upstream:
                head = request_head_bytes(request.method, origin_target, headers)
                reply = await self._over_motan(domain, upstream, path, head, body, request.method)
                if reply is not None:
                    return reply
        if not absolute and host_port in self.deny:  # it would come back here: a loop
            return Reply(400)
        if absolute:
            url_text = target.decode("latin-1")
        else:
            url_text = "http://" + _header(headers, b"host") + origin_target.decode("latin-1")
        return await self.plain.forward(request.method, url_text, headers, body)

    async def _over_motan(
        self, domain: HttpDomain, upstream: str, path: str, head: bytes, body: bytes, method: bytes
    ) -> Reply | None:
        """The answer of the upstream service, or ``None`` when it has no endpoints."""
        try:
            cluster = await domain.cluster(upstream)
            frame = rpc.http_over_motan_frame(
                upstream,
                path,
                head,
                body,
                domain.application or self.application,
                domain.serialization,
            )
            changes = {M_REQUEST_ID: str(frame.request_id)}
            value, _meta = await rpc.call_cluster(cluster, frame, changes)
            return rpc.http_reply(value, method)
        except rpc.NoEndpoints:
            log.warning(
                "Http rpc proxy to [%s, %s] has no endpoints, try http proxy", path, upstream
            )
            return None
        except rpc.RpcError as e:
            log.error("Http rpc proxy call failed: %s", e)
            return error_reply(502, f"err_msg: {e}")
        except Exception as e:
            log.error("Http rpc proxy to %s failed: %s", upstream, e)
            return error_reply(502, f"err_msg: {e}")

    async def _proxy_to_rpc(
        self, target: bytes, headers: Headers, body: bytes, peer_ip: str
    ) -> Reply:
        form = parse_qs(target.partition(b"?")[2].decode("latin-1"), keep_blank_values=True)
        content_type = _header(headers, b"content-type")
        if body and content_type.startswith("application/x-www-form-urlencoded"):
            for k, v in parse_qs(body.decode("latin-1"), keep_blank_values=True).items():
                form.setdefault(k, v)

        def value(name: str) -> str:
            return form.get(name, [""])[0]

        service, method = value("service"), value("method")
        if not service or not method:
            return Reply(400, [], f"service:{service} or method:{method} musn't be empty".encode())
        arg_type = value("arg_type")
        if arg_type != "string":
            return Reply(400, [], f"arg_type {arg_type} not support now".encode())
        frame = rpc.rpc_frame(service, method, value("group"), value("arg"), headers)
        found = self.route(frame)
        if isinstance(found, str):
            return Reply(502, [], found.encode())
        changes = {"host": peer_ip, M_REQUEST_ID: str(frame.request_id)}
        source = frame.metadata.get(M_SOURCE) or found.refer.application or self.application
        if source and not frame.metadata.get(M_SOURCE):
            changes[M_SOURCE] = source
        try:
            result, attachments = await rpc.call_cluster(found, frame, changes)
        except rpc.RpcError as e:
            return Reply(502, [], str(e).encode("utf-8", "replace"))
        return rpc.rpc_reply(result, attachments)


def _header(headers: Headers, name: bytes) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def _set_header(headers: Headers, name: bytes, value: bytes) -> Headers:
    low = name.lower()
    return [(k, v) for k, v in headers if k.lower() != low] + [(name, value)]
