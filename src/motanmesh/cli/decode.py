"""``motanmesh decode``: show what Motan2 (and Motan v1) frames contain.

Reads hex from the arguments or from stdin (whitespace ignored), or raw bytes with ``--file``,
and prints every frame found: header fields, flags by name, metadata pairs in wire order, the
parsed ``M_e`` exception, and the body decoded by its serialization. ``--json`` prints one JSON
document per frame, one per line. Bad input exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from typing import Any, Final

from motanmesh.wire.decoder import FrameDecoder
from motanmesh.wire.errors import WireError
from motanmesh.wire.frame import (
    DEFAULT_MAX_CONTENT_LENGTH,
    FLAG_GZIP,
    FLAG_HEARTBEAT,
    FLAG_ONEWAY,
    FLAG_PROXY,
    Frame,
    gunzip_body,
    parse_exception,
    parse_frame,
)
from motanmesh.wire.serialization import get_serialization
from motanmesh.wire.v1 import V1Frame, is_v1_heartbeat_response, parse_v1_request
from motanmesh.wire.values import Typed, to_json

PROG: Final = "motanmesh decode"

#: serialization names by id (spec section 5)
SERIALIZATION_NAMES: Final = {
    0: "hessian2",
    1: "grpc-pb",
    2: "json",
    3: "msgpack",
    4: "hprose",
    5: "protobuf",
    6: "simple",
    7: "grpc-pb-json",
    8: "breeze",
}
_FLAG_NAMES: Final = ((FLAG_HEARTBEAT, "heartbeat"), (FLAG_GZIP, "gzip"), (FLAG_ONEWAY, "oneway"))
_ERRTYPES: Final = {0: "framework", 1: "service", 2: "biz"}
_V1_FLAGS: Final = {
    0x00: "request",
    0x01: "response with value",
    0x03: "void response",
    0x05: "exception response",
    0x07: "response with attachments",
}
_FLAT_WIDTH: Final = 88


class InputError(Exception):
    """The input cannot be read as frames; the message is shown to the user."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``decode`` on the ``motanmesh`` command line."""
    parser = subparsers.add_parser(
        "decode",
        help="show what Motan2 / Motan v1 frames contain",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument(
        "hex", nargs="*", metavar="HEX", help="frame bytes as hex (default: hex read from stdin)"
    )
    parser.add_argument(
        "--file", metavar="PATH", help="read raw binary frames from PATH ('-' for stdin)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document per frame")
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="accept an unpaired trailing metadata key or an empty key (dropped)",
    )
    parser.add_argument(
        "--max-content-length",
        type=int,
        default=DEFAULT_MAX_CONTENT_LENGTH,
        metavar="N",
        help="limit for the metadata and body lengths (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    frames: list[Frame | V1Frame] = []
    try:
        data = read_input(args.hex, args.file)
        split_frames(data, frames, args.max_content_length, strict=not args.lenient)
    except InputError as e:
        _print_frames(frames, as_json=args.json)
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    _print_frames(frames, as_json=args.json)
    return 0


def _print_frames(frames: list[Frame | V1Frame], *, as_json: bool) -> None:
    for i, f in enumerate(frames):
        doc = describe(f)
        if as_json:
            print(json.dumps(doc, ensure_ascii=False))
        else:
            if i:
                print()
            print(render_text(doc, i + 1))


# --------------------------------------------------------------------------- input


def read_input(hex_args: list[str], path: str | None) -> bytes:
    if path is not None:
        if hex_args:
            raise InputError("give either HEX or --file, not both")
        try:
            if path == "-":
                return sys.stdin.buffer.read()
            with open(path, "rb") as fh:
                return fh.read()
        except OSError as e:
            raise InputError(f"cannot read {path}: {e.strerror or e}") from e
    if hex_args:
        return parse_hex(" ".join(hex_args))
    return parse_hex(sys.stdin.buffer.read().decode("ascii", "replace"))


def parse_hex(text: str) -> bytes:
    digits = "".join(text.split())
    if not digits:
        raise InputError("no input: give HEX, pipe hex on stdin, or use --file")
    for i, c in enumerate(digits):
        if c not in "0123456789abcdefABCDEF":
            raise InputError(f"input is not hex: {c!r} at digit {i + 1} (raw bytes need --file)")
    if len(digits) % 2:
        raise InputError(f"input has an odd number of hex digits ({len(digits)})")
    return bytes.fromhex(digits)


def _size(f: Frame | V1Frame) -> int:
    return len(f.raw) if isinstance(f, V1Frame) else 21 + len(f.raw_metadata) + len(f.body)


def split_frames(
    data: bytes, out: list[Frame | V1Frame], max_content_length: int, *, strict: bool
) -> None:
    """Append every whole frame of ``data`` to ``out``; raise :class:`InputError` for bad or
    left-over bytes (after appending the frames that precede them)."""
    dec = FrameDecoder(max_content_length, strict_metadata=strict)
    try:
        out += dec.feed(data)
    except WireError as e:
        out += e.frames
        at = sum(_size(f) for f in e.frames)
        raise InputError(f"frame {len(out) + 1} at byte {at}: {e}") from e
    if dec.buffered:
        at = len(data) - dec.buffered
        rest = data[at:]
        detail = f"{dec.buffered} trailing byte(s) do not form a whole frame"
        if len(rest) >= 4 and rest[3] >> 3 == 1:
            try:
                parse_frame(rest, max_content_length=max_content_length)
            except WireError as e:
                detail = str(e)
        raise InputError(f"frame {len(out) + 1} at byte {at}: incomplete: {detail}")


# --------------------------------------------------------------------------- description


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become their text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def describe(frame: Frame | V1Frame) -> dict[str, Any]:
    """A JSON-ready description of one frame."""
    if isinstance(frame, V1Frame):
        return describe_v1(frame)
    names = ["response" if frame.is_response else "request"]
    names += [name for bit, name in _FLAG_NAMES if frame.flags & bit]
    if frame.flags & FLAG_PROXY:
        names.append("proxy")
    if frame.flags & 0xE0:
        names.append(f"reserved 0x{frame.flags & 0xE0:02x}")
    header = {
        "protocol": "motan2",
        "flags": frame.flags,
        "flag_names": names,
        "request": frame.is_request,
        "heartbeat": frame.is_heartbeat,
        "gzip": frame.is_gzip,
        "oneway": frame.is_oneway,
        "proxy": frame.is_proxy,
        "version": frame.version,
        "status": frame.status,
        "serialization": frame.serialization,
        "serialization_name": SERIALIZATION_NAMES.get(frame.serialization),
        "request_id": str(frame.request_id),
        "metadata_length": len(frame.raw_metadata),
        "body_length": len(frame.body),
    }
    doc: dict[str, Any] = {
        "header": header,
        "metadata": [[k, v] for k, v in frame.metadata.items()],
    }
    if "M_e" in frame.metadata:
        exc = parse_exception(frame.metadata["M_e"])
        doc["exception"] = {"errcode": exc.errcode, "errmsg": exc.errmsg, "errtype": exc.errtype}
    doc["body"] = describe_body(frame)
    return doc


def describe_body(frame: Frame) -> dict[str, Any]:
    body: dict[str, Any] = {
        "serialization": SERIALIZATION_NAMES.get(frame.serialization, str(frame.serialization))
    }
    raw = frame.body
    if frame.is_gzip and raw:
        body["gzip"] = True
        body["compressed_length"] = len(raw)
        plain = replace(frame)
        try:
            gunzip_body(plain)
        except WireError as e:
            body.update(error=str(e), hex=raw.hex())
            return body
        raw = plain.body
    if not raw:
        body["values"] = []
        return body
    try:
        values: list[Typed] = get_serialization(frame.serialization).decode_typed(raw)
    except WireError as e:
        body.update(error=str(e), hex=raw.hex())
        return body
    body["values"] = [_clean(to_json(v)) for v in values]
    return body


def describe_v1(frame: V1Frame) -> dict[str, Any]:
    header = {
        "protocol": "motan1",
        "outer_type": frame.outer_type,
        "inner_version": frame.inner_version,
        "compress": frame.inner_version == 2,
        "flag": frame.flag,
        "flag_name": _V1_FLAGS.get(frame.flag, "unknown"),
        "request_id": str(frame.request_id),
        "length": len(frame.raw),
    }
    doc: dict[str, Any] = {"header": header}
    if frame.is_request:
        try:
            req = parse_v1_request(frame)
        except WireError as e:
            doc["error"] = str(e)
            doc["hex"] = frame.raw[32:].hex()
            return doc
        doc["service"] = req.service
        doc["method"] = req.method
        doc["param_desc"] = req.param_desc
        doc["attachments"] = [[k, v] for k, v in req.attachments.items()]
        doc["arguments"] = req.arg_count
        doc["heartbeat"] = req.is_heartbeat
    else:
        doc["heartbeat"] = is_v1_heartbeat_response(frame)
    return doc


# --------------------------------------------------------------------------- text


def render_text(doc: dict[str, Any], number: int) -> str:
    h = doc["header"]
    if h["protocol"] == "motan1":
        return _render_v1(doc, number)
    size = 21 + h["metadata_length"] + h["body_length"]
    lines = [f"frame {number}: motan2 {h['flag_names'][0]} ({size} bytes)"]
    status = {0: "normal", 1: "exception"}.get(h["status"], "undefined")
    ser = h["serialization_name"] or "unknown"
    lines += [
        f"  flags          0x{h['flags']:02x} ({', '.join(h['flag_names'])})",
        f"  version        {h['version']}",
        f"  status         {h['status']} ({status})",
        f"  serialization  {h['serialization']} ({ser})",
        f"  request id     {h['request_id']}",
        f"  metadata       {len(doc['metadata'])} pair(s), {h['metadata_length']} bytes",
    ]
    lines += [f"    {k} = {v}" for k, v in doc["metadata"]]
    if "exception" in doc:
        e = doc["exception"]
        kind = _ERRTYPES.get(e["errtype"], "unknown")
        lines.append(f"  exception      errcode {e['errcode']}, errtype {e['errtype']} ({kind})")
        lines.append(f"    {e['errmsg']}")
    b = doc["body"]
    gz = f", gzip {b['compressed_length']} bytes compressed" if b.get("gzip") else ""
    lines.append(f"  body           {h['body_length']} bytes ({b['serialization']}{gz})")
    if "error" in b:
        lines.append(f"    cannot decode: {b['error']}")
        lines += [f"    {b['hex'][i : i + 64]}" for i in range(0, len(b["hex"]), 64)]
    elif not b["values"]:
        lines.append("    (heartbeat)" if h["heartbeat"] else "    (empty)")
    else:
        for i, v in enumerate(b["values"]):
            lines.append(_indent(f"[{i}] " + render_value(v), 4))
    return "\n".join(lines)


def _render_v1(doc: dict[str, Any], number: int) -> str:
    h = doc["header"]
    kind = "v1-compress" if h["compress"] else "v1"
    lines = [
        f"frame {number}: motan {kind} {h['flag_name']} ({h['length']} bytes)",
        f"  outer type     0x{h['outer_type']:02x}",
        f"  flag           0x{h['flag']:02x} ({h['flag_name']})",
        f"  request id     {h['request_id']}",
    ]
    if "error" in doc:
        lines.append(f"  cannot decode: {doc['error']}")
    elif "service" in doc:
        lines += [
            f"  service        {doc['service']}",
            f"  method         {doc['method']}",
            f"  param desc     {doc['param_desc']}",
            f"  arguments      {doc['arguments']}",
            f"  attachments    {len(doc['attachments'])}",
        ]
        lines += [f"    {k} = {v}" for k, v in doc["attachments"]]
    if doc.get("heartbeat"):
        lines.append("  (heartbeat)")
    return "\n".join(lines)


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "\n".join(pad + line for line in text.split("\n"))


def _scalar(v: dict[str, Any]) -> str:
    t = v["t"]
    if t == "null":
        return "null"
    if t == "string":
        if "v" in v:
            return json.dumps(v["v"], ensure_ascii=False)
        return f"string(hex {v['hex']})"
    if t == "bytes":
        return f"bytes({v['hex']})"
    if t == "bool":
        return "true" if v["v"] else "false"
    return f"{t} {v['v']}"


def render_value(v: dict[str, Any]) -> str:
    """A readable rendering of one :func:`to_json` tree: one line when it fits, else indented."""
    flat = _render(v, multiline=False)
    if len(flat) <= _FLAT_WIDTH and "\n" not in flat:
        return flat
    return _render(v, multiline=True)


def _container_head(v: dict[str, Any]) -> str:
    t = v["t"]
    if t == "packed_map":
        return f"packed_map<{v.get('ktype')}, {v.get('vtype')}>"
    if t == "packed_array":
        return f"packed_array<{v.get('etype')}>"
    if t == "message":
        return f"message {v.get('name')}"
    return str(t)


def _render(v: dict[str, Any], *, multiline: bool) -> str:
    t = v["t"]
    if t in ("array", "string_array", "packed_array"):
        items = [render_value(x) if multiline else _render(x, multiline=False) for x in v["v"]]
        return _join(_container_head(v), "[", items, "]", multiline)
    if t in ("map", "string_map", "packed_map"):
        items = [
            f"{_render(k, multiline=False)}: "
            + (render_value(x) if multiline else _render(x, multiline=False))
            for k, x in v["v"]
        ]
        return _join(_container_head(v), "{", items, "}", multiline)
    if t == "message":
        items = [
            f"{i}: " + (render_value(x) if multiline else _render(x, multiline=False))
            for i, x in v["fields"]
        ]
        return _join(_container_head(v), "{", items, "}", multiline)
    return _scalar(v)


def _join(head: str, opening: str, items: list[str], closing: str, multiline: bool) -> str:
    if not items:
        return f"{head} {opening}{closing}"
    if not multiline:
        return f"{head} {opening}{', '.join(items)}{closing}"
    body = ",\n".join(_indent(item, 2) for item in items)
    return f"{head} {opening}\n{body}\n{closing}"
