"""A provider process for the lease-expiry test.

Usage: ``python child.py <registry URL> <service URL>``: registers the service, makes it
available, prints ``ok <lease id>`` and waits until it is killed.
"""

from __future__ import annotations

import asyncio
import sys

from motanmesh.registry.etcd import EtcdRegistry
from motanmesh.url import URL


async def main(registry_url: str, service_url: str) -> None:
    registry = EtcdRegistry(URL.parse(registry_url))
    await registry.start()
    url = URL.parse(service_url)
    await registry.register(url)
    await registry.available(url)
    print(f"ok {registry.lease}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
