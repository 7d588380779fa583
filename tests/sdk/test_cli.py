"""``motanmesh demo-service`` and ``motanmesh call`` as real processes."""

from __future__ import annotations

import json
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from motanmesh.cli.call import parse_arg, to_jsonable
from motanmesh.demo import DEMO_GROUP, DEMO_SERVICE
from motanmesh.sdk import MotanClient, decode_response
from motanmesh.wire.decoder import FrameDecoder
from motanmesh.wire.frame import Frame
from motanmesh.wire.values import BreezeMessage
from tests.servers import free_port


def motanmesh(*args: str) -> list[str]:
    """The ``motanmesh`` command line (``python -m motanmesh.cli`` runs the console script's
    entry point)."""
    return [sys.executable, "-m", "motanmesh.cli", *args]


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``motanmesh demo-service``; return it and its ready line."""
    proc = subprocess.Popen(
        motanmesh("demo-service", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=20):
            proc.kill()
            proc.wait()
            pytest.fail("demo-service did not report ready")
    line = proc.stdout.readline().strip()
    if not line:
        proc.wait(5)
        pytest.fail(f"demo-service exited: {proc.stderr.read() if proc.stderr else ''}")
    return proc, line


def _stop(proc: subprocess.Popen[str], sig: int | None = signal.SIGTERM) -> int:
    """Signal the process (unless ``sig`` is None); return its exit status once it has
    exited (its pipes are closed)."""
    if sig is not None and proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode


@pytest.fixture(scope="module")
def demo_addr() -> Iterator[str]:
    proc, line = _start("--port", "0")
    prefix = "demo-service listening on 127.0.0.1:"
    assert line.startswith(prefix)
    yield line.removeprefix("demo-service listening on ")
    assert _stop(proc) == 0


def call(addr: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = motanmesh("call", "--addr", addr, "--service", DEMO_SERVICE, "--group", DEMO_GROUP)
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=30, check=False)


def test_hello(demo_addr: str) -> None:
    out = call(demo_addr, "--method", "hello", "world")
    assert (out.returncode, out.stdout, out.stderr) == (0, "hello world\n", "")


def test_hello_breeze_json_output(demo_addr: str) -> None:
    out = call(demo_addr, "--method", "hello", "--serialization", "breeze", "--json", '"x y"')
    assert out.returncode == 0
    assert json.loads(out.stdout) == {"result": "hello x y"}


def test_echo_json_arguments(demo_addr: str) -> None:
    out = call(demo_addr, "--method", "echo", '{"a": [1, 2.5, null]}', "7", "text", "true")
    assert out.returncode == 0
    assert json.loads(out.stdout) == [{"a": [1, 2.5, None]}, 7, "text", True]


def test_attachments_and_timeout_options(demo_addr: str) -> None:
    out = call(
        demo_addr, "--method", "sleep", "--timeout", "5", "--attach", "k=v", "--attach", "a=", "10"
    )
    assert (out.returncode, out.stdout) == (0, "10\n")


def test_biz_error_exits_1(demo_addr: str) -> None:
    out = call(demo_addr, "--method", "fail")
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr == "remote error errcode=500 errtype=2: demo business error\n"


def test_unknown_service_exits_1_with_404(demo_addr: str) -> None:
    out = subprocess.run(
        [*motanmesh("call", "--addr", demo_addr, "--service", "no.Such", "--method", "m")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 1
    assert out.stderr == (
        "remote error errcode=404 errtype=1: provider not exist serviceKey=_no.Such\n"
    )


def test_remote_error_as_json(demo_addr: str) -> None:
    out = call(demo_addr, "--method", "nope", "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout) == {
        "error": {"errcode": 500, "errmsg": "method nope is not found in provider.", "errtype": 1}
    }


def test_timeout_exits_2(demo_addr: str) -> None:
    out = call(demo_addr, "--method", "sleep", "--timeout", "0.1", "2000")
    assert out.returncode == 2
    assert out.stderr == f"motanmesh call: no answer from {demo_addr} within 0.1s\n"


def test_connection_refused_exits_2() -> None:
    port = free_port()  # reserved: nothing else listens there meanwhile
    out = call(f"127.0.0.1:{port}", "--method", "hello", "x")
    assert out.returncode == 2
    assert out.stderr.startswith(f"motanmesh call: cannot connect to 127.0.0.1:{port}: ")


def test_bad_address_and_bad_attachment_exit_2() -> None:
    out = call("nowhere", "--method", "hello", "x")
    assert out.returncode == 2
    assert "host:port" in out.stderr
    out = call("127.0.0.1:1", "--method", "hello", "--attach", "novalue", "x")
    assert out.returncode == 2
    assert "key=value" in out.stderr


def test_unix_socket_and_sigint(tmp_path: Path) -> None:
    path = tmp_path / "demo.sock"
    proc, line = _start("--unix", str(path))
    try:
        assert line == f"demo-service listening on unix://{path}"
        out = call(f"unix://{path}", "--method", "hello", "unix")
        assert (out.returncode, out.stdout) == (0, "hello unix\n")
    finally:
        assert _stop(proc, signal.SIGINT) == 0
    assert not path.exists()


def test_graceful_stop_lets_a_call_finish() -> None:
    """SIGTERM while a call is in flight: the call is answered, then the connection closes."""
    proc, line = _start("--port", "0")
    host, port = line.removeprefix("demo-service listening on ").split(":")
    client = MotanClient(group=DEMO_GROUP)
    slow = client.request(DEMO_SERVICE, "sleep", (1000,))
    slow.request_id = 1
    quick = client.request(DEMO_SERVICE, "hello", ("x",))
    quick.request_id = 2
    try:
        with socket.create_connection((host, int(port)), timeout=20) as sock:
            # one write: once "hello" is answered, "sleep" is in flight
            sock.sendall(slow.encode() + quick.encode())
            replies = _read_frames(sock, 1)
            assert [f.request_id for f in replies] == [2]
            proc.send_signal(signal.SIGTERM)
            replies = _read_frames(sock, 1)
            assert [f.request_id for f in replies] == [1]
            assert decode_response(replies[0]) == 1000
            assert sock.recv(1) == b""  # then the server closes the connection
        assert _stop(proc, None) == 0
    finally:
        _stop(proc, signal.SIGKILL)


def _read_frames(sock: socket.socket, count: int) -> list[Frame]:
    decoder = FrameDecoder()
    frames: list[Frame] = []
    while len(frames) < count:
        data = sock.recv(65536)
        assert data, "connection closed early"
        for frame in decoder.feed(data):
            assert isinstance(frame, Frame)
            frames.append(frame)
    return frames


def test_parse_arg() -> None:
    assert parse_arg("1") == 1
    assert parse_arg('"1"') == "1"
    assert parse_arg("hello") == "hello"
    assert parse_arg("[1, {}]") == [1, {}]


def test_to_jsonable() -> None:
    assert to_jsonable(b"abc") == "abc"
    assert to_jsonable(b"\xff") == "base64:/w=="
    assert to_jsonable({1: b"x", ("a", 1): [b"y"]}) == {"1": "x", '["a", 1]': ["y"]}
    assert to_jsonable(BreezeMessage("M", {1: "v"})) == {"message": "M", "fields": {"1": "v"}}
