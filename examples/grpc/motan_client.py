"""The same service called by a Motan2 client (the Python SDK) through the client agent's
Motan2 port: the protobuf message travels as a grpc-pb (serialization 1) body.

    python motan_client.py [--agent 127.0.0.1:9981] [NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import helloworld_pb2

from motanmesh.sdk import MotanClient
from motanmesh.sdk.errors import MotanRemoteError


async def main(agent: str, name: str) -> int:
    async with MotanClient(
        agent, serialization="grpc-pb", group="greeter-rpc", application="greeter-motan2"
    ) as client:
        try:
            body = await client.call(
                "helloworld.Greeter", "SayHello", helloworld_pb2.HelloRequest(name=name)
            )
        except MotanRemoteError as e:
            print(f"error {e.errcode}: {e.errmsg}")
            return 1
    reply = helloworld_pb2.HelloReply.FromString(body)
    print(f"{reply.message} [server {reply.server}]")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", default="127.0.0.1:9981")
    parser.add_argument("name", nargs="?", default="motan2")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.agent, args.name)))
