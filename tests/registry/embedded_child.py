"""A separate agent-like process for the cross-process embedded registry tests.

Usage: ``python embedded_child.py <registry URL>``. Reads one command per line on stdin and
answers ``ok`` (or ``error <message>``) on stdout:

* ``register|available|unavailable|unregister <service URL>``
* ``burst <name> <count>``: register, make available and set a command for ``count`` services
* ``close`` then exits; EOF exits without closing (like a crash, but polite to the OS).
"""

from __future__ import annotations

import asyncio
import sys

from motanmesh.registry import EmbeddedRegistry, RegistryError
from motanmesh.url import URL


async def burst(registry: EmbeddedRegistry, name: str, count: int) -> None:
    for i in range(count):
        url = URL("motan2", "127.0.0.1", 20000 + i, f"com.burst.{name}.S{i}", "burst")
        await registry.register(url)
        await registry.available(url)
        await registry.set_command(f"{name}-g{i}", f"{name}-{i}")


async def main(registry_url: str) -> None:
    registry = EmbeddedRegistry(URL.parse(registry_url))
    await registry.start()
    print("ok", flush=True)
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        verb, _, arg = line.strip().partition(" ")
        try:
            if verb == "close":
                await registry.close()
                print("ok", flush=True)
                return
            if verb == "burst":
                name, count = arg.split()
                await burst(registry, name, int(count))
            else:
                await getattr(registry, verb)(URL.parse(arg))
        except (RegistryError, ValueError, AttributeError) as err:
            print(f"error {err}", flush=True)
        else:
            print("ok", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
