"""Plain HTTP proxying and ``CONNECT`` tunnels, for what does not travel over Motan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from time import perf_counter
from typing import Final

import aiohttp
import yarl
from multidict import CIMultiDict

from motanmesh.httpmotan.heads import bodyless, forward_headers
from motanmesh.ingress.http.rpc import Headers, Reply, error_reply

__all__ = ["PlainProxy", "tunnel"]

log = logging.getLogger("motanmesh.ingress")

#: the caller's headers only
_NO_AUTO_HEADERS: Final = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
TUNNEL_CHUNK: Final = 65536


class PlainProxy:
    """Forwards a request to its host as it came (no decompression, no cookies, no redirects
    followed, no environment proxies); failures are 502 with ``Server: motan``."""

    def __init__(self, *, timeout: float, keepalive_timeout: float, max_body: int) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.keepalive_timeout = keepalive_timeout
        self.max_body = max_body
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=1024, keepalive_timeout=self.keepalive_timeout or None
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=self.timeout,
                trust_env=False,
                auto_decompress=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def forward(self, method: bytes, url: str, headers: Headers, body: bytes) -> Reply:
        start = perf_counter()
        reply = await self._forward(method, url, headers, body)
        ms = int((perf_counter() - start) * 1000)
        log.info("http-proxy %s %s %d %d", yarl.URL(url).host, url, reply.status, ms)
        return reply

    async def _forward(self, method: bytes, url: str, headers: Headers, body: bytes) -> Reply:
        sent: CIMultiDict[str] = CIMultiDict(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in forward_headers(headers)
        )
        try:
            target = yarl.URL(url, encoded=True)
            async with self._client().request(
                method.decode("latin-1"),
                target,
                headers=sent,
                data=body or None,
                allow_redirects=False,
                skip_auto_headers=_NO_AUTO_HEADERS,
            ) as resp:
                length = resp.content_length
                if length is not None and length > self.max_body:
                    return error_reply(502, f"http proxy: answer over {self.max_body} bytes")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_any():
                    size += len(chunk)
                    if size > self.max_body:
                        return error_reply(502, f"http proxy: answer over {self.max_body} bytes")
                    chunks.append(chunk)
                content = b"".join(chunks)
                status, reason, raw = resp.status, resp.reason or "", list(resp.raw_headers)
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as e:
            log.error("Proxy request %s by http failed: %s", url, e)
            return error_reply(502, "")
        empty = bodyless(method, status)
        return Reply(
            status,
            forward_headers(raw, keep_length=empty),
            b"" if empty else content,
            reason.encode("latin-1", "replace"),
            empty,
        )


async def tunnel(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    first: bytes,
) -> None:
    """Relay bytes both ways until both sides are done (``first``: what the client sent after
    its ``CONNECT`` head)."""
    up_reader, up_writer = upstream
    if first:
        up_writer.write(first)

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(TUNNEL_CHUNK):
                dst.write(data)
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()
        except (OSError, RuntimeError):
            pass

    try:
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
    finally:
        for w in (up_writer, writer):
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()
