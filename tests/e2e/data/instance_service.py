"""An in-process service for the agent's ``python`` provider
(``pythonService: instance_service:registry``): every method answers with the name of its
instance, taken from the environment variable ``E2E_INSTANCE``, so a test can see which
instance served each call."""

from __future__ import annotations

import asyncio
import os

from motanmesh.sdk.service import ServiceRegistry

SERVICE = "com.weibo.motanmesh.e2e.InstanceService"


def registry() -> ServiceRegistry:
    name = os.environ.get("E2E_INSTANCE", "unnamed")
    reg = ServiceRegistry()
    svc = reg.service(SERVICE)

    def whoami() -> str:
        return name

    async def slow(ms: int) -> str:
        await asyncio.sleep(max(0, ms) / 1000)
        return name

    svc.add("whoami", whoami, inline=True)
    svc.add("slow", slow)
    return reg
