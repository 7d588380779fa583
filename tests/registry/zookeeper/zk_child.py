"""A separate process holding ZooKeeper registrations, for the session tests.

Usage: ``python zk_child.py <registry URL> <service URL>...``. Registers every service, makes
it available, prints ``ok`` and then waits until stdin closes (or the process is killed).
"""

from __future__ import annotations

import asyncio
import sys

from motanmesh.registry.zookeeper import ZookeeperRegistry
from motanmesh.url import URL


async def main(registry_url: str, services: list[str]) -> None:
    registry = ZookeeperRegistry(URL.parse(registry_url))
    await registry.start()
    for text in services:
        url = URL.parse(text)
        await registry.register(url)
        await registry.available(url)
    print("ok", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await registry.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
