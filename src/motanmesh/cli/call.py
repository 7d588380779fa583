"""``motanmesh call``: call a Motan2 service once and print the result.

Arguments are JSON (``'"text"'``, ``42``, ``'{"k": 1}'``); an argument that is not JSON is
taken as a string. Exit status: 0 with the result on stdout; 1 with the remote error on
stderr (``remote error errcode=N errtype=T: message``); 2 when the call could not be made
(connection refused, timeout, a response that does not decode).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from collections.abc import Sequence
from typing import Any

from motanmesh.sdk.client import DEFAULT_ADDRESS, MotanClient
from motanmesh.sdk.errors import MotanRemoteError
from motanmesh.transport.errors import (
    ConnectionLost,
    EndpointUnavailable,
    RequestTimeout,
    TransportError,
)
from motanmesh.transport.loop import install
from motanmesh.wire.errors import WireError
from motanmesh.wire.values import BreezeMessage

__all__ = ["add_parser", "configure", "main", "parse_arg", "run", "to_jsonable"]

EXIT_REMOTE_ERROR = 1
EXIT_CALL_FAILED = 2


def parse_arg(text: str) -> Any:
    """A call argument: its JSON value, or the text itself when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _attachment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"attachment must be key=value: {text!r}")
    return key, value


def to_jsonable(value: Any) -> Any:
    """Decoded values as JSON data: bytes become text (``base64:...`` when not UTF-8),
    breeze messages ``{"message": name, "fields": {...}}``, map keys strings."""
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {_json_key(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, BreezeMessage):
        fields = {str(i): to_jsonable(v) for i, v in value.fields.items()}
        return {"message": value.name, "fields": fields}
    return value


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes | bytearray):
        return str(to_jsonable(key))
    return json.dumps(to_jsonable(key), ensure_ascii=False)


def _render(value: Any) -> str:
    return json.dumps(to_jsonable(value), ensure_ascii=False)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--addr",
        default=DEFAULT_ADDRESS,
        help=f"agent or server address, host:port or unix:///path (default {DEFAULT_ADDRESS})",
    )
    parser.add_argument("--service", required=True, help="service path (M_p)")
    parser.add_argument("--method", required=True, help="method name (M_m)")
    parser.add_argument("--group", default="", help="service group (M_g)")
    parser.add_argument("--service-version", default="", help="service version (M_v)")
    parser.add_argument("--application", default="", help="caller application (M_s)")
    parser.add_argument(
        "--serialization", choices=("simple", "breeze"), default="simple", help="body encoding"
    )
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds (default 1.0)")
    parser.add_argument(
        "--attach",
        type=_attachment,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="request attachment (repeatable)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print one JSON object: {"result": ...} or {"error": {...}}',
    )
    parser.add_argument("args", nargs="*", metavar="ARG", help="call argument (JSON or text)")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``call`` on the ``motanmesh`` command line."""
    parser = subparsers.add_parser(
        "call",
        help="call a Motan2 service once",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    configure(parser)
    parser.set_defaults(func=run)


async def _call(args: argparse.Namespace) -> Any:
    client = MotanClient(
        args.addr,
        serialization=args.serialization,
        application=args.application,
        timeout=args.timeout,
        connections=1,
        connect_timeout=args.timeout,
    )
    try:
        return await client.call(
            args.service,
            args.method,
            *[parse_arg(a) for a in args.args],
            group=args.group,
            version=args.service_version,
            attachments=dict(args.attach),
        )
    finally:
        await client.close()


def run(args: argparse.Namespace) -> int:
    """Make the call; print the outcome; return the exit status."""
    install()
    try:
        result = asyncio.run(_call(args))
    except MotanRemoteError as e:
        if args.json:
            error = {"errcode": e.errcode, "errmsg": e.errmsg, "errtype": e.errtype}
            print(json.dumps({"error": error}, ensure_ascii=False))
        else:
            print(str(e), file=sys.stderr)
        return EXIT_REMOTE_ERROR
    except (TransportError, WireError, ValueError) as e:
        print(f"motanmesh call: {_failure(args, e)}", file=sys.stderr)
        return EXIT_CALL_FAILED
    if args.json:
        print(json.dumps({"result": to_jsonable(result)}, ensure_ascii=False))
    elif isinstance(result, str):
        print(result)
    else:
        print(_render(result))
    return 0


def _failure(args: argparse.Namespace, e: Exception) -> str:
    if isinstance(e, RequestTimeout):
        return f"no answer from {args.addr} within {args.timeout}s"
    if isinstance(e, EndpointUnavailable):
        return f"cannot connect to {args.addr}: {e}"
    if isinstance(e, ConnectionLost):
        return f"connection to {args.addr} lost: {e}"
    if isinstance(e, WireError):
        return f"unreadable response from {args.addr}: {e}"
    return str(e)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="motanmesh call", description=__doc__)
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
