"""The example's gRPC server: a plain grpcio Greeter on 127.0.0.1:50051.

It knows nothing of the mesh; the server agent (server-agent.yaml) exports it.

    python server.py [--port 50051] [--name greeter-1]
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import grpc
import grpc.aio
import helloworld_pb2
import helloworld_pb2_grpc


class Greeter(helloworld_pb2_grpc.GreeterServicer):  # type: ignore[misc]
    def __init__(self, name: str) -> None:
        self.name = name

    async def SayHello(self, request: Any, context: Any) -> Any:  # noqa: N802 - generated name
        if not request.name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name is required")
        caller = dict(context.invocation_metadata()).get("motan-s", "?")
        context.set_trailing_metadata((("x-greeter", self.name),))
        return helloworld_pb2.HelloReply(
            message=f"Hello, {request.name} (from {caller})", server=self.name
        )


async def serve(port: int, name: str) -> None:
    server = grpc.aio.server()
    helloworld_pb2_grpc.add_GreeterServicer_to_server(Greeter(name), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"greeter {name} listening on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=50051)
    parser.add_argument("--name", default="greeter-1")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.name))
