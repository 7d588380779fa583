"""The fuzz targets: one per decoder that reads bytes or text from outside the agent.

Each target takes one input and runs a decoder on it. The decoder may refuse the input with
its own documented error (``expected``); any other exception, a hang or a crash is a finding.
Some targets also check a property (the incremental decoder returns the same frames however
the stream is cut). ``seeds(name)`` gives the seed corpus, built from the byte vectors of
``tests/data`` (never from outside the repository).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from motanmesh.cluster.command import (
    CommandError,
    effective_command,
    parse_command_document,
    parse_switcher_pattern,
    validate,
)
from motanmesh.cluster.patterns import PatternError, compile_pattern, parse_route_rule
from motanmesh.config.errors import ConfigError
from motanmesh.config.loader import load_config
from motanmesh.filters.auth_policy import AuthPolicy, PolicyError
from motanmesh.url import URL
from motanmesh.wire.breeze import BreezeSerialization
from motanmesh.wire.decoder import FrameDecoder
from motanmesh.wire.errors import WireError
from motanmesh.wire.frame import Frame, parse_frame
from motanmesh.wire.simple import SimpleSerialization
from motanmesh.wire.v1 import V1Frame, parse_v1_frame, parse_v1_request

REPO: Final = Path(__file__).resolve().parents[1]
DATA: Final = REPO / "tests" / "data"
#: a small frame limit, so the fuzzer reaches the limit checks with small inputs
LIMIT: Final = 64 * 1024


@dataclass(frozen=True)
class Target:
    name: str
    one_input: Callable[[bytes], None]
    what: str


# ---------------------------------------------------------------------------- wire


def _frame(data: bytes) -> None:
    try:
        frame = parse_frame(data, max_content_length=LIMIT)
    except WireError:
        return
    again = parse_frame(frame.encode(), max_content_length=LIMIT)
    # the encoder drops empty keys and values, as motan-go does
    kept = {k: v for k, v in frame.metadata.items() if k and v}
    assert again.metadata == kept and again.body == frame.body, "re-encode changed it"


def _feed_all(decoder: FrameDecoder, chunks: list[bytes]) -> tuple[list[Frame | V1Frame], bool]:
    out: list[Frame | V1Frame] = []
    for chunk in chunks:
        try:
            out.extend(decoder.feed(chunk))
        except WireError as e:
            out.extend(e.frames)
            return out, True
    return out, False


def _key(frame: Frame | V1Frame) -> object:
    if isinstance(frame, Frame):
        return ("v2", frame.flags, frame.request_id, frame.metadata, frame.body)
    return ("v1", frame.request_id, frame.raw)


def _decoder(data: bytes) -> None:
    """The first byte chooses where the stream is cut; both readings must agree."""
    if not data:
        return
    step = data[0] % 17 + 1
    stream = data[1:]
    whole, whole_failed = _feed_all(
        FrameDecoder(LIMIT, max_metadata_entries=64, max_metadata_size=4096), [stream]
    )
    chunks = [stream[i : i + step] for i in range(0, len(stream), step)]
    cut, cut_failed = _feed_all(
        FrameDecoder(LIMIT, max_metadata_entries=64, max_metadata_size=4096), chunks
    )
    assert whole_failed == cut_failed, f"error on one reading only (step {step})"
    if not whole_failed:
        assert [_key(f) for f in whole] == [_key(f) for f in cut], f"frames differ (step {step})"


def _simple(data: bytes) -> None:
    s = SimpleSerialization()
    with contextlib.suppress(WireError):
        s.decode_multi(data)
    try:
        typed = s.decode_typed(data)
    except WireError:
        return
    s.encode_typed(typed)


def _breeze(data: bytes) -> None:
    s = BreezeSerialization()
    with contextlib.suppress(WireError):
        s.decode_multi(data)
    try:
        typed = s.decode_typed(data)
    except WireError:
        return
    s.encode_typed(typed)


def _v1(data: bytes) -> None:
    try:
        frame = parse_v1_frame(data)
    except WireError:
        return
    with contextlib.suppress(WireError):
        parse_v1_request(frame)


# ---------------------------------------------------------------------------- text


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _url(data: bytes) -> None:
    try:
        url = URL.parse(_text(data))
    except ValueError:
        return
    url.identity  # noqa: B018 - computed on every registry notification
    again = URL.parse(url.to_ext_info())
    assert again.path == url.path and again.port == url.port, "URL text form does not read back"


def _command(data: bytes) -> None:
    try:
        document = parse_command_document(data)
    except CommandError:
        return
    validate(document)
    json.loads(document.to_json())
    refer = URL("motan2", "", 0, "com.weibo.Fuzz", "g1", {"mixGroups": "g2"})
    effective_command(refer, document, document)


def _patterns(data: bytes) -> None:
    """``pattern \\0 path``: service patterns, route rules, switcher patterns."""
    pattern, _, path = _text(data).partition("\0")
    compiled = compile_pattern(pattern)
    compiled.matches(path)
    try:
        rule = parse_route_rule(pattern)
    except PatternError:
        pass
    else:
        rule.applies_to(path)
        rule.keeps(path)
    parse_switcher_pattern(pattern)


def _auth_policy(data: bytes) -> None:
    """``policy JSON \\0 identity \\0 caller``: an access policy from the registry, checked
    against one caller, and read back from its registry form."""
    text, _, rest = _text(data).partition("\0")
    identity, _, caller = rest.partition("\0")
    try:
        policy = AuthPolicy.from_json(text)
    except PolicyError:
        return
    for method in ("get", ""):
        admitted = policy.admits(method, identity, caller)
        assert admitted == (policy.refusal(method, identity, caller) == ""), "check and reason"
    again = AuthPolicy.from_json(policy.to_json())
    assert again.to_info() == policy.to_info(), "registry form does not read back"


_SCRATCH = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else Path(tempfile.gettempdir())


def _config(data: bytes) -> None:
    with tempfile.NamedTemporaryFile("wb", suffix=".yaml", dir=_SCRATCH) as f:
        f.write(data)
        f.flush()
        with contextlib.suppress(ConfigError):
            load_config(f.name)


TARGETS: Final = {
    t.name: t
    for t in (
        Target("frame", _frame, "one Motan2 frame (parse_frame), re-encoded"),
        Target("decoder", _decoder, "the incremental FrameDecoder, whole against cut streams"),
        Target("simple", _simple, "simple serialization bodies"),
        Target("breeze", _breeze, "breeze serialization bodies"),
        Target("v1", _v1, "Motan v1 messages and their requests"),
        Target("url", _url, "service URLs as registries store them"),
        Target("command", _command, "command JSON, validated and applied"),
        Target("patterns", _patterns, "service patterns, route rules, switcher patterns"),
        Target("config", _config, "the YAML config loader"),
        Target("authPolicy", _auth_policy, "access policies from the registry (JSON)"),
    )
}


# ---------------------------------------------------------------------------- seeds


def _vectors() -> Iterator[tuple[str, bytes]]:
    """(kind, bytes) of every vector of tests/data/vectors."""
    php = json.loads((DATA / "vectors" / "motan-php-vectors.json").read_text())
    for v in php["vectors"]:
        yield str(v["kind"]), bytes.fromhex(v["hex"])
    go = json.loads((DATA / "vectors" / "motan-go-captures.json").read_text())
    for hop in go["hops"].values():
        for f in hop["frames"]:
            yield "frame", bytes.fromhex(f["hex"])


def _bodies() -> Iterator[bytes]:
    for _kind, raw in _vectors():
        try:
            frame = parse_frame(raw)
        except WireError:
            continue
        if frame.body:
            yield frame.body


_SAMPLE_COMMAND: Final = (
    '{"clientCommandList":[{"index":1,"version":"1.0","dc":"yf","commandType":0,'
    '"pattern":"*","mergeGroups":["g1:2","g2:1"],"routeRules":["10.0.0.* to 10.1.*"],'
    '"remark":"r"}]}'
)


def seeds(name: str) -> list[bytes]:
    """The seed corpus of target ``name``."""
    vectors = list(_vectors())
    frames = [raw for kind, raw in vectors if kind not in ("simple_value", "breeze_value")]
    if name == "frame":
        return frames
    if name == "decoder":
        return [bytes([i % 17]) + raw for i, raw in enumerate(frames)] + [
            b"\x03" + b"".join(frames[:6])
        ]
    if name == "simple":
        return [raw for kind, raw in vectors if kind.startswith("simple")] + list(_bodies())
    if name == "breeze":
        return [raw for kind, raw in vectors if kind.startswith("breeze")]
    if name == "v1":
        return [raw for kind, raw in vectors if kind.startswith("v1")]
    if name == "url":
        return [
            b"motan2://10.0.0.1:9982/com.example.Svc?group=g&nodeType=service&weight=3",
            b"motan2://unix:/tmp/agent.sock:0/com.example.Svc?group=g",
            b"motan2://[::1]:9981/s?application=a&k=%20v",
        ]
    if name == "command":
        return [_SAMPLE_COMMAND.encode(), b'{"clientCommandList":[]}']
    if name == "patterns":
        return [
            b"com.weibo.*\0com.weibo.Svc",
            b"(com.a* | com.b*) & !com.a.x\0com.a.y",
            b"10.0.0.* to 10.1.*\x0010.0.0.4",
            b"feature.a:true,b:false\0x",
        ]
    if name == "config":
        return [p.read_bytes() for p in sorted((DATA / "go-configs").glob("*.yaml"))]
    if name == "authPolicy":
        return [
            b'{"allow":["web","spiffe://td/app/m"],"methods":{"put":["*"]}}\0\0web',
            b'{"allow":"a, b","requireIdentity":true}\0spiffe://td/app/a\0b',
            b'{"methods":{"get":[]}}\0spiffe://td/x\0',
        ]
    raise KeyError(name)
