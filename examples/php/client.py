"""Call the PHP app through the client agent with the motanmesh SDK.

python client.py [--agent 127.0.0.1:9981] NAME...
"""

from __future__ import annotations

import argparse
import asyncio

from motanmesh.sdk.client import MotanClient


async def main(agent: str, names: list[str]) -> None:
    async with MotanClient(agent, application="php-example", group="php", timeout=5) as client:
        for name in names:
            print(await client.call("com.example.php.Hello", "greet", {"name": name}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", default="127.0.0.1:9981")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    asyncio.run(main(args.agent, args.names))
