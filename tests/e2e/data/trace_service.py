"""A Motan service run as its own process by the tracing tests: ``context`` answers with the
trace context it received in the request metadata, ``fail`` raises a business exception.

    python trace_service.py PORT
"""

from __future__ import annotations

import asyncio
import sys

from motanmesh.sdk.errors import MotanBizError
from motanmesh.sdk.service import CallContext, ServiceRegistry

SERVICE = "com.weibo.motanmesh.e2e.TraceService"
GROUP = "motanmesh-trace"
READY = "trace-service listening on"


def registry() -> ServiceRegistry:
    reg = ServiceRegistry()
    svc = reg.service(SERVICE)

    def context(ctx: CallContext) -> dict[str, str]:
        return {k: ctx.metadata.get(k, "") for k in ("traceparent", "tracestate")}

    def fail(ctx: CallContext, message: str) -> str:
        raise MotanBizError(message, errcode=409)

    svc.add("context", context, inline=True, context=True)
    svc.add("fail", fail, inline=True, context=True)
    return reg


async def main(port: int) -> None:
    server = await registry().serve("127.0.0.1", port)
    print(f"{READY} {server.address}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
