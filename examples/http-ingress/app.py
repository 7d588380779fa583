"""A small HTTP service: the users API of the example, on 127.0.0.1:8080.

    python app.py [--port 8080]

``GET /users/<id>`` answers a JSON user, with the headers the mesh added (``MOTAN-*``,
``X-Forwarded-For``) so that the path a request took can be seen.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web


async def user(request: web.Request) -> web.Response:
    seen = {k: v for k, v in request.headers.items() if k.lower().startswith("motan-")}
    return web.json_response(
        {
            "id": request.match_info["id"],
            "name": f"user-{request.match_info['id']}",
            "path": request.path,
            "query": request.query_string,
            "via": seen,
            "forwardedFor": request.headers.get("X-Forwarded-For", ""),
        }
    )


async def main(port: int) -> None:
    app = web.Application()
    app.router.add_get("/users/{id}", user)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"users API listening on 127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8080)
    asyncio.run(main(parser.parse_args().port))
