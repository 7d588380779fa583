"""The gRPC echo service of the end-to-end tests, and its generated stubs.

``python tests/e2e/grpc_echo.py --stubs DIR --port N --name NAME`` serves
``motanmesh.test.Echo`` (``tests/e2e/data/grpc/echo.proto``) with grpcio's asyncio server and
the stubs generated into ``DIR`` by :func:`compile_stubs`, then prints ``grpc-echo listening``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path
from typing import Any, Final

PROTO: Final = Path(__file__).resolve().parent / "data" / "grpc" / "echo.proto"
READY: Final = "grpc-echo listening on"
SERVICE: Final = "motanmesh.test.Echo"


def compile_stubs(out: Path, proto: Path = PROTO) -> None:
    """Generate ``<name>_pb2`` and ``<name>_pb2_grpc`` for ``proto`` (default the echo
    service's) into ``out`` with grpcio-tools."""
    from grpc_tools import protoc  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{proto.parent}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(proto),
        ]
    )
    if rc != 0:
        raise RuntimeError(f"protoc failed with {rc} for {proto}")


def load_stubs(out: Path) -> tuple[Any, Any]:
    """``(echo_pb2, echo_pb2_grpc)`` from a directory :func:`compile_stubs` wrote."""
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    return importlib.import_module("echo_pb2"), importlib.import_module("echo_pb2_grpc")


async def serve(port: int, name: str, stubs: Path) -> None:
    import grpc  # noqa: PLC0415
    import grpc.aio  # noqa: PLC0415

    pb, pb_grpc = load_stubs(stubs)
    codes = {int(c.value[0]): c for c in grpc.StatusCode}

    def reply(request: Any, context: Any) -> Any:
        seen = {
            k: (v.hex() if isinstance(v, bytes) else v) for k, v in context.invocation_metadata()
        }
        remaining = context.time_remaining()
        return pb.EchoReply(
            text=request.text,
            metadata=seen,
            deadline_ms=int(remaining * 1000) if remaining is not None else -1,
            server=name,
        )

    class Echo(pb_grpc.EchoServicer):  # type: ignore[misc,name-defined]
        async def Say(self, request: Any, context: Any) -> Any:  # noqa: N802 - generated name
            await context.send_initial_metadata((("x-initial", "yes"),))
            context.set_trailing_metadata((("x-served-by", name), ("x-trace-bin", b"\x01\xfe")))
            return reply(request, context)

        async def Fail(self, request: Any, context: Any) -> Any:  # noqa: N802
            if request.code < 0:
                raise RuntimeError(f"failing as asked: {request.text}")
            await context.abort(
                codes[request.code], f"failed: {request.text}", (("x-error-detail", name),)
            )

        async def Sleep(self, request: Any, context: Any) -> Any:  # noqa: N802
            await asyncio.sleep(request.sleep_ms / 1000)
            return reply(request, context)

        async def Collect(self, requests: Any, context: Any) -> Any:  # noqa: N802
            texts = [r.text async for r in requests]
            return pb.EchoReply(text=",".join(texts), server=name)

    server = grpc.aio.server()
    pb_grpc.add_EchoServicer_to_server(Echo(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"{READY} {bound}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="echo")
    parser.add_argument("--stubs", type=Path, required=True)
    args = parser.parse_args()
    import uvloop  # noqa: PLC0415

    uvloop.run(serve(args.port, args.name, args.stubs))


if __name__ == "__main__":
    main()
