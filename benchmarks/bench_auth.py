"""What the ``auth`` filter's check costs per server-side call, in process, on one core.

Cases (a service allowing 5 applications and one method list):

* ``pass``: a filter that only hands the call on (the floor: a filter's call and ``Call``
  attribute reads);
* ``allow M_s``: a plaintext caller named in ``auth.allow``;
* ``allow identity``: a caller with a verified identity ``spiffe://td/app/web``;
* ``refuse``: a caller not named (answered with the exception; the log line is rate-limited).

Usage: ``python benchmarks/bench_auth.py [--calls N] [--rounds R]``: the best of ``R``
rounds of ``N`` calls per case, in ns per call.
"""

from __future__ import annotations

import argparse
import logging
import timeit
from typing import Any

from motanmesh.filters.auth import AuthFilter
from motanmesh.filters.base import ROLE_SERVER, Call, Filter, FilterContext, Handler
from motanmesh.url import URL
from motanmesh.wire.frame import M_METHOD, M_PATH, M_SOURCE, Frame, request_frame

URL_ = URL("motan2", "127.0.0.1", 0, "com.example.Orders", "g").with_params(
    **{"auth.allow": "web,mobile,a,b,c", "auth.allow.refund": "billing"}
)


class _Conn:
    """The two fields the filter reads of a ``ServerConnection``."""

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.peer = "127.0.0.1:40000"


class _Pass(Filter):
    name = "pass"

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        proceed(call)


def _call(caller: str, identity: str) -> Call:
    request: Frame = request_frame(1, {M_PATH: URL_.path, M_METHOD: "get", M_SOURCE: caller}, b"x")
    call = Call(request, URL_, ROLE_SERVER, "127.0.0.1:40000", {}, _ignore)
    call.conn = _Conn(identity)
    return call


def _ignore(response: Any, exc: Any) -> None:
    return None


def _proceed(call: Call) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    auth = AuthFilter(URL_, FilterContext())
    floor = _Pass(URL_, FilterContext())
    cases = {
        "pass": (floor, _call("web", "")),
        "allow M_s": (auth, _call("web", "")),
        "allow identity": (auth, _call("", "spiffe://td/app/web")),
        "refuse": (auth, _call("intruder", "")),
    }
    for name, (f, call) in cases.items():
        invoke = f.invoke

        def once(invoke: Any = invoke, call: Call = call) -> None:
            call._done = False  # a refused call is completed; let it be refused again
            invoke(call, _proceed)

        best = min(timeit.repeat(once, number=args.calls, repeat=args.rounds))
        print(f"{name:16} {best / args.calls * 1e9:8.0f} ns/call")


if __name__ == "__main__":
    main()
