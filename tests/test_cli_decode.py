"""``motanmesh decode``, run as a real process on the shared vectors and on bad input."""

from __future__ import annotations

import gzip
import json
import math
import os
import struct
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from motanmesh.cli import main
from motanmesh.wire.frame import exception_frame, heartbeat_response, request_frame
from motanmesh.wire.v1 import v1_heartbeat_request, v1_heartbeat_response

from .wire.test_v1 import java_request
from .wire.test_vectors_frames import GO, PHP, V1_HEARTBEAT, same_value

SRC = Path(__file__).resolve().parents[1] / "src"
HELLO = next(v for v in PHP if v["id"] == "req_string_arg")


def decode(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    paths = [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    done = subprocess.run(
        [sys.executable, "-m", "motanmesh.cli", "decode", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_every_vector_frame_in_one_run() -> None:
    hexes = [v["hex"] for v in PHP] + [f["hex"] for f in GO]
    done = decode("--json", *hexes)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    docs = json_lines(done.stdout)
    assert len(docs) == len(hexes)
    for vec, doc in zip(PHP, docs, strict=False):
        logical = vec["logical"]
        h = doc["header"]
        for key in ("request", "heartbeat", "gzip", "oneway", "proxy", "version", "status"):
            assert h[key] == logical["header"][key], (vec["id"], key)
        assert h["flags"] == logical["header"]["msg_type_byte"]
        assert h["serialization"] == logical["header"]["serialization"]
        assert h["request_id"] == logical["header"]["request_id"]
        assert doc["metadata"] == logical["metadata"]
        assert doc.get("exception") == logical.get("exception")
        values = doc["body"]["values"]
        assert len(values) == len(logical["body_values"])
        for want, have in zip(logical["body_values"], values, strict=True):
            assert same_value(want, have), (vec["id"], want, have)
    for cap, doc in zip(GO, docs[len(PHP) :], strict=True):
        s = cap["summary"]
        assert f"0x{doc['header']['flags']:02x}" == s["flags"]
        assert doc["header"]["request_id"] == s["request_id"]
        assert doc["metadata"] == s["metadata"]
        assert doc["header"]["body_length"] == s["body_len"]


def test_text_output_of_the_worked_example() -> None:
    done = decode(HELLO["hex"])
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("frame 1: motan2 request (143 bytes)")
    assert "flags          0x00 (request)" in out
    assert "serialization  6 (simple)" in out
    assert "request id     1\n" in out
    lines = out.splitlines()
    meta = [ln.strip() for ln in lines if " = " in ln]
    assert meta == [f"{k} = {v}" for k, v in HELLO["logical"]["metadata"]]
    assert '[0] "world"' in out


def test_hex_from_stdin_with_whitespace_and_several_frames() -> None:
    a = HELLO["hex"]
    spaced = " ".join(a[i : i + 8] for i in range(0, len(a), 8))
    text = f"{spaced}\n\t{heartbeat_response(7).hex()}\n"
    done = decode(stdin=text.encode())
    assert done.returncode == 0, done.stderr
    assert "frame 1: motan2 request" in done.stdout
    assert "frame 2: motan2 response (21 bytes)" in done.stdout
    assert "0x13 (response, heartbeat, proxy)" in done.stdout


def test_raw_file(tmp_path: Path) -> None:
    path = tmp_path / "frames.bin"
    path.write_bytes(bytes.fromhex(HELLO["hex"]) * 2)
    done = decode("--json", "--file", str(path))
    assert done.returncode == 0, done.stderr
    assert len(json_lines(done.stdout)) == 2
    piped = decode("--file", "-", stdin=bytes.fromhex(HELLO["hex"]))
    assert piped.returncode == 0 and "M_m = Hello" in piped.stdout


def test_exception_response() -> None:
    raw = exception_frame(9, 400, "cluster not found. <x>", 1, proxy=True).encode()
    done = decode("--json", raw.hex())
    (doc,) = json_lines(done.stdout)
    assert doc["exception"] == {"errcode": 400, "errmsg": "cluster not found. <x>", "errtype": 1}
    assert doc["header"]["flag_names"] == ["response", "proxy"]
    assert doc["body"] == {"serialization": "simple", "values": []}
    text = decode(raw.hex()).stdout
    assert "exception      errcode 400, errtype 1 (service)" in text
    assert "cluster not found. <x>" in text


def test_undecodable_body_is_shown_as_hex_with_the_error() -> None:
    bad = request_frame(1, {"M_p": "svc"}, b"\x01\x00\x00\x00\x09abc").encode()
    unknown = request_frame(2, {}, b"\xca\xfe", serialization=3).encode()
    done = decode("--json", bad.hex(), unknown.hex())
    assert done.returncode == 0, done.stderr
    first, second = json_lines(done.stdout)
    assert first["body"]["hex"] == "0100000009616263" and first["body"]["error"]
    assert second["body"]["serialization"] == "msgpack"
    assert second["body"]["hex"] == "cafe" and "serialize not found" in second["body"]["error"]
    text = decode(bad.hex()).stdout
    assert "cannot decode:" in text and "0100000009616263" in text


def test_gzip_body_is_gunzipped() -> None:
    body = b"\x01\x00\x00\x00\x05hello"
    frame = request_frame(1, {"M_p": "svc"}, gzip.compress(body))
    frame.flags |= 0x08
    (doc,) = json_lines(decode("--json", frame.encode().hex()).stdout)
    assert doc["header"]["gzip"] and doc["body"]["gzip"]
    assert doc["body"]["values"] == [{"t": "string", "v": "hello", "hex": "68656c6c6f"}]


def test_v1_frames() -> None:
    req = java_request(41, {"group": "g1", "application": "app"}, [b"arg", None])
    stream = bytes.fromhex(V1_HEARTBEAT["hex"]) + req + v1_heartbeat_response(3)
    done = decode("--json", stream.hex())
    assert done.returncode == 0, done.stderr
    hb, call, reply = json_lines(done.stdout)
    assert hb["service"] == "com.weibo.api.motan.rpc.heartbeat" and hb["heartbeat"]
    assert hb["header"]["protocol"] == "motan1"
    assert (call["service"], call["method"], call["arguments"]) == ("com.weibo.Demo", "echo", 2)
    assert call["attachments"] == [["group", "g1"], ["application", "app"]]
    assert call["header"]["request_id"] == "41"
    assert reply["heartbeat"] and reply["header"]["flag_name"] == "response with value"
    text = decode(req.hex()).stdout
    assert "service        com.weibo.Demo" in text
    assert "method         echo" in text
    assert "group = g1" in text


def test_breeze_values_are_readable() -> None:
    vec = next(v for v in PHP if v["id"] == "req_breeze_args")
    out = decode(vec["hex"]).stdout
    assert "[1] int64 7" in out
    assert '[2] packed_map<string, string> {"k": "v"}' in out


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("f1f1zz", "not hex: 'z' at digit 5"),
        ("\xf1\xf1", "not hex: '\ufffd' at digit 1 (raw bytes need --file)"),
        ("f1f10", "odd number of hex digits"),
        ("", "no input"),
        (HELLO["hex"][:60], "frame 1 at byte 0: incomplete"),
        ("0000" + HELLO["hex"], "bad magic"),
        ("f1f100" + "10" + HELLO["hex"][8:], "unsupported motan version 2"),
        (HELLO["hex"] + "f1", "frame 2 at byte 143: incomplete: 1 trailing byte"),
        (HELLO["hex"] + "00", "frame 2 at byte 143: bad magic"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(stdin: str, message: str) -> None:
    done = decode(stdin=stdin.encode("latin-1"))
    assert done.returncode == 2
    assert done.stderr.startswith("motanmesh decode: ")
    assert message in done.stderr
    assert done.stderr.count("\n") == 1


def test_frames_before_bad_bytes_are_still_printed() -> None:
    done = decode("--json", HELLO["hex"] + v1_heartbeat_request(5).hex() + "ffff")
    assert done.returncode == 2
    assert len(json_lines(done.stdout)) == 2
    assert "frame 3 at byte 237: bad magic" in done.stderr


def test_oversized_and_lenient_options() -> None:
    done = decode("--max-content-length", "100", HELLO["hex"])
    assert done.returncode == 2 and "content length over the limit" in done.stderr
    unpaired = request_frame(1, {}).encode()
    unpaired = unpaired[:13] + b"\x00\x00\x00\x05a\nb\nc" + unpaired[17:]
    assert "has no value" in decode(unpaired.hex()).stderr
    lenient = decode("--lenient", "--json", unpaired.hex())
    assert lenient.returncode == 0
    assert json_lines(lenient.stdout)[0]["metadata"] == [["a", "b"]]


def test_unreadable_file_and_conflicting_input(tmp_path: Path) -> None:
    missing = decode("--file", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    both = decode("--file", str(tmp_path / "nope"), "f1f1")
    assert both.returncode == 2 and "not both" in both.stderr


def test_console_script_entry_point() -> None:
    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "motanmesh"]
    assert ep.value == "motanmesh.cli:main"
    assert ep.load() is main


def test_main_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "--json", HELLO["hex"]]) == 0
    (doc,) = json_lines(capsys.readouterr().out)
    assert doc["body"]["values"] == [{"t": "string", "v": "world", "hex": "776f726c64"}]
    assert main([]) == 2
    assert "decode" in capsys.readouterr().out
    with pytest.raises(SystemExit) as ei:
        main(["decode", "--no-such-option"])
    assert ei.value.code == 2


def test_json_output_is_strict_json_even_for_nan() -> None:
    body = b"\x0b" + struct.pack(">d", math.nan) + b"\x0b" + struct.pack(">d", -math.inf)
    done = decode("--json", request_frame(1, {}, body).encode().hex())
    assert done.returncode == 0, done.stderr

    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    doc = json.loads(done.stdout, parse_constant=refuse)
    assert [v["v"] for v in doc["body"]["values"]] == ["nan", "-inf"]
