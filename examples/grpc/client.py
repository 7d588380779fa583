"""The example's gRPC client: the generated stub, pointed at the client agent's gRPC port.

python client.py [--agent 127.0.0.1:9990] [NAME...]
"""

from __future__ import annotations

import argparse
import sys

import grpc
import helloworld_pb2
import helloworld_pb2_grpc


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", default="127.0.0.1:9990", help="the client agent's grpcPort")
    parser.add_argument("names", nargs="*", default=["mesh"])
    args = parser.parse_args()
    with grpc.insecure_channel(args.agent) as channel:
        stub = helloworld_pb2_grpc.GreeterStub(channel)
        for name in args.names:
            try:
                reply, call = stub.SayHello.with_call(
                    helloworld_pb2.HelloRequest(name=name),
                    metadata=(("motan-s", "greeter-client"),),
                    timeout=2,
                )
            except grpc.RpcError as e:
                print(f"error {e.code().name}: {e.details()}")
                continue
            trailing = dict(call.trailing_metadata() or ())
            print(f"{reply.message} [server {reply.server}, via {trailing.get('x-forwarded-for')}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
