"""The dependency graph store: keys, outcomes, latency buckets, bounds, and the agent hooks."""

from __future__ import annotations

import json

from motanmesh.graph import (
    BUCKET_BOUNDS_MS,
    SIDE_CLIENT,
    SIDE_SERVER,
    DependencyGraph,
    percentile_ms,
    raw_error,
)
from motanmesh.wire.frame import (
    ERRTYPE_BIZ,
    ERRTYPE_SERVICE,
    FLAG_RESPONSE,
    STATUS_NORMAL,
    Frame,
    encode_frame,
    exception_frame,
)

SERVICE = "com.example.UserService"


def request(caller: str = "web", method: str = "get", group: str = "users") -> Frame:
    meta = {"M_p": SERVICE, "M_m": method, "M_g": group}
    if caller:
        meta["M_s"] = caller
    return Frame(0, STATUS_NORMAL, 6, 7, meta, b"body")


def ok_answer() -> Frame:
    return Frame(FLAG_RESPONSE, STATUS_NORMAL, 6, 7, {"M_pt": "1"}, b"\x00")


def test_calls_errors_and_latency_by_edge() -> None:
    graph = DependencyGraph("user-app")
    key = (SIDE_SERVER, "web", SERVICE, "users", "get")
    graph.record(key, 0.0004, None)
    graph.record(key, 0.003, "biz")
    graph.record(key, 0.030, "other")
    graph.record((SIDE_CLIENT, "web", SERVICE, "users", "get"), 20.0, None)
    snap = graph.snapshot()
    json.dumps(snap)  # JSON-ready
    assert snap["application"] == "user-app"
    client, server = snap["edges"]
    assert (client["side"], client["callee"], client["calls"]) == ("client", "", 1)
    assert client["p99Ms"] == -1.0  # beyond the last bound
    assert server["callee"] == "user-app"
    assert (server["calls"], server["errors"], server["bizErrors"], server["otherErrors"]) == (
        3,
        2,
        1,
        1,
    )
    assert server["maxMs"] == 30.0
    assert server["avgMs"] == round((0.4 + 3 + 30) / 3, 3)
    assert server["buckets"][0] == 1  # ≤ 1 ms
    assert server["buckets"][BUCKET_BOUNDS_MS.index(5)] == 1
    assert server["buckets"][BUCKET_BOUNDS_MS.index(50)] == 1
    assert server["p50Ms"] == 5.0
    assert server["p99Ms"] == 50.0


def test_edges_are_bounded() -> None:
    graph = DependencyGraph("app", max_edges=2)
    for i in range(5):
        graph.record((SIDE_SERVER, f"caller-{i}", SERVICE, "g", "m"), 0.001, None)
    graph.record((SIDE_SERVER, "caller-0", SERVICE, "g", "m"), 0.001, None)
    snap = graph.snapshot()
    assert [e["caller"] for e in snap["edges"]] == ["caller-0", "caller-1"]
    assert snap["edges"][0]["calls"] == 2
    assert snap["dropped"] == 3


def test_percentile_of_nothing() -> None:
    assert percentile_ms([0] * (len(BUCKET_BOUNDS_MS) + 1), 0.99) is None


def test_client_hook_takes_the_source_the_router_added() -> None:
    graph = DependencyGraph("web")
    graph.client_done(request(caller=""), {"M_s": "web"}, "users", 0.0, ok_answer())
    graph.client_done(request(group=""), {}, "users-refer", 0.0, None)
    edges = {(e["caller"], e["group"]): e for e in graph.snapshot()["edges"]}
    assert edges[("web", "users")]["errors"] == 0
    assert edges[("web", "users-refer")]["otherErrors"] == 1


def test_server_hook_writes_the_answer_then_records_it() -> None:
    graph = DependencyGraph("users")
    written: list[bytes] = []
    ok = encode_frame(ok_answer())
    biz = encode_frame(exception_frame(7, 409, "taken", ERRTYPE_BIZ))
    service = encode_frame(exception_frame(7, 503, "down", ERRTYPE_SERVICE))
    for data in (ok, biz, service, b"\xf1\xf1\x00\x09 short"):
        graph.server_responder(request(), written.append)(data)
    assert written == [ok, biz, service, b"\xf1\xf1\x00\x09 short"]
    (edge,) = graph.snapshot()["edges"]
    assert (edge["side"], edge["caller"], edge["callee"]) == ("server", "web", "users")
    assert (edge["calls"], edge["bizErrors"], edge["otherErrors"]) == (4, 1, 2)


def test_raw_error_reads_metadata_only_of_exceptions() -> None:
    assert raw_error(encode_frame(ok_answer())) is None
    assert raw_error(encode_frame(exception_frame(1, 400, "x", ERRTYPE_BIZ))) == "biz"
    assert raw_error(b"") == "other"
    bogus = b"\xf1\xf1\x00\x09" + b"\x30" + bytes(8) + b"\xff\xff\xff\xff" + b"x"
    assert raw_error(bogus) == "other"
    # an exception status without M_e is no exception (as motan-go)
    plain = encode_frame(Frame(FLAG_RESPONSE, 1, 6, 7, {"M_pt": "1"}, b""))
    assert raw_error(plain) is None
