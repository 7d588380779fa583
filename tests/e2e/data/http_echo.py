"""A small HTTP service for the end-to-end tests: echoes each request as JSON.

``python http_echo.py PORT`` serves on 127.0.0.1:PORT and prints ``http-echo listening on``.
``/gzip`` answers a gzip-encoded body; ``/status/N`` and ``/api/status/N`` answer status N.
"""

from __future__ import annotations

import asyncio
import gzip
import sys

from aiohttp import web

GZIPPED = gzip.compress(b"compressed " * 100)


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": request.rel_url.raw_query_string,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "length": len(body),
            "body": body[:200].decode("utf-8", "replace"),
        },
        headers={"X-Echo": "yes"},
    )


async def packed(request: web.Request) -> web.Response:
    return web.Response(body=GZIPPED, headers={"Content-Encoding": "gzip"})


async def status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status")


def app() -> web.Application:
    application = web.Application(client_max_size=64 * 1024 * 1024)
    application.router.add_get("/gzip", packed)
    application.router.add_route("*", "/status/{code}", status)
    application.router.add_route("*", "/api/status/{code}", status)
    application.router.add_route("*", "/{tail:.*}", echo)
    return application


async def main(port: int) -> None:
    runner = web.AppRunner(app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"http-echo listening on 127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
