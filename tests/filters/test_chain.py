"""The chain model: order, completion, failures, and which names apply to a URL."""

from __future__ import annotations

import logging

import pytest

from motanmesh.filters import (
    ERROR_BIZ,
    ERROR_OTHER,
    ROLE_CLIENT,
    Call,
    Filter,
    FilterContext,
    FilterError,
    Handler,
    build_chain,
    error_kind,
    filter_class,
    register_filter,
    resolve_filters,
)
from motanmesh.filters.chain import MESH_FILTERS_ENV, configured_names
from motanmesh.url import URL
from motanmesh.wire.frame import (
    ERRTYPE_BIZ,
    M_METHOD,
    M_PATH,
    Frame,
    exception_frame,
    request_frame,
    response_frame,
)

Events = list[str]
EVENTS: Events = []


class _Recorder(Filter):
    def invoke(self, call: Call, proceed: Handler, /) -> None:
        EVENTS.append(f"{self.name}>")
        call.on_complete(self._done)
        proceed(call)

    def _done(self, call: Call, response: Frame | None, exc: BaseException | None) -> None:
        EVENTS.append(f"<{self.name}")


class ChainA(_Recorder):
    name = "chainA"
    index = 1


class ChainB(_Recorder):
    name = "chainB"
    index = 9


class ChainCluster(_Recorder):
    name = "chainCluster"
    kind = "cluster"
    index = 3


class ChainStop(Filter):
    name = "chainStop"
    index = 5

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        call.fail(429, "stopped here")


class ChainBoom(Filter):
    name = "chainBoom"
    index = 4

    def invoke(self, call: Call, proceed: Handler, /) -> None:
        raise RuntimeError("boom")


for _cls in (ChainA, ChainB, ChainCluster, ChainStop, ChainBoom):
    register_filter(_cls)

REFER = URL("motan2", "127.0.0.1", 0, "com.example.Echo", "g1")


@pytest.fixture(autouse=True)
def _clear(monkeypatch: pytest.MonkeyPatch) -> None:
    EVENTS.clear()
    monkeypatch.delenv(MESH_FILTERS_ENV, raising=False)


def _request() -> Frame:
    return request_frame(7, {M_PATH: "com.example.Echo", M_METHOD: "echo"}, b"body")


def _run(names: str, terminal: Handler) -> list[tuple[Frame | None, BaseException | None]]:
    filters = resolve_filters(REFER.with_params(filter=names), FilterContext())
    chain = build_chain([*filters.cluster, *filters.endpoint], terminal)
    outcomes: list[tuple[Frame | None, BaseException | None]] = []
    chain(Call(_request(), REFER, ROLE_CLIENT, "", {}, lambda r, e: outcomes.append((r, e))))
    return outcomes


def _answer(call: Call) -> None:
    EVENTS.append("terminal")
    call.complete(response_frame(call.request.request_id, {}, b"ok"))


def test_lowest_index_is_outermost_and_completions_unwind() -> None:
    outcomes = _run("chainB,chainA", _answer)
    assert EVENTS == ["chainA>", "chainB>", "terminal", "<chainB", "<chainA"]
    assert len(outcomes) == 1
    assert outcomes[0][0] is not None and outcomes[0][0].body == b"ok"


def test_resolve_sorts_each_kind_by_index() -> None:
    filters = resolve_filters(
        REFER.with_params(filter="chainB,chainCluster,chainA"), FilterContext()
    )
    assert [f.name for f in filters.cluster] == ["chainCluster"]
    assert [f.name for f in filters.endpoint] == ["chainA", "chainB"]


def test_a_filter_may_answer_without_going_on() -> None:
    outcomes = _run("chainA,chainStop,chainB", _answer)
    assert EVENTS == ["chainA>", "<chainA"]
    response, exc = outcomes[0]
    assert exc is None and response is not None
    assert response.status and response.request_id == 7
    assert error_kind(response, None) == ERROR_OTHER
    assert "stopped here" in response.metadata["M_e"]


def test_a_raising_filter_ends_its_call_with_an_error() -> None:
    outcomes = _run("chainA,chainBoom,chainB", _answer)
    assert EVENTS == ["chainA>", "<chainA"]
    assert len(outcomes) == 1
    response, exc = outcomes[0]
    assert response is None and isinstance(exc, FilterError)
    assert "chainBoom" in str(exc)


def test_only_the_first_completion_counts() -> None:
    def twice(call: Call) -> None:
        call.complete(response_frame(1, {}, b"first"))
        call.complete(response_frame(1, {}, b"second"))

    outcomes = _run("chainA", twice)
    assert [r.body for r, _e in outcomes if r is not None] == [b"first"]
    assert EVENTS == ["chainA>", "<chainA"]


def test_a_failing_completion_callback_does_not_lose_the_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def bad(call: Call, response: Frame | None, exc: BaseException | None) -> None:
        raise ValueError("callback bug")

    outcomes: list[Frame | None] = []
    call = Call(_request(), REFER, ROLE_CLIENT, "", {}, lambda r, e: outcomes.append(r))
    call.on_complete(bad)
    with caplog.at_level(logging.ERROR, "motanmesh.filters"):
        call.complete(response_frame(7, {}, b"ok"))
    assert len(outcomes) == 1 and outcomes[0] is not None
    assert "callback bug" in caplog.text


def test_error_kinds() -> None:
    ok = response_frame(1, {}, b"x")
    biz = exception_frame(1, 500, "no", ERRTYPE_BIZ)
    other = exception_frame(1, 503, "down")
    assert error_kind(ok, None) is None
    assert error_kind(biz, None) == ERROR_BIZ
    assert error_kind(other, None) == ERROR_OTHER
    assert error_kind(None, TimeoutError()) == ERROR_OTHER


def test_call_fields_come_from_the_request() -> None:
    frame = request_frame(1, {M_PATH: "s", M_METHOD: "m", "M_g": "g2", "M_s": "app"}, b"123")
    call = Call(frame, REFER, ROLE_CLIENT, "1.2.3.4:5", {}, lambda r, e: None)
    assert (call.service, call.method, call.group, call.caller) == ("s", "m", "g2", "app")
    assert call.request_size == 3
    bare = Call(request_frame(1, {}, b""), REFER, ROLE_CLIENT, "", {}, lambda r, e: None)
    assert bare.group == "g1"  # the URL's group when the request names none
    assert bare.caller == ""


def test_names_union_defaults_globals_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    context = FilterContext(default_filter=["d1", "d2"], global_filter=["g1"])
    url = REFER.with_params(filter="own,d1", disableDefaultFilter="d2")
    monkeypatch.setenv(MESH_FILTERS_ENV, " env1 ,own,")
    assert configured_names(url, context) == ["own", "d1", "g1", "env1"]
    url2 = REFER.with_params(disableGlobalFilter="g1")
    assert configured_names(url2, context) == ["d1", "d2", "env1", "own"]


def test_unknown_names_are_warned_once_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    url = REFER.with_params(filter="chainA,noSuchFilterX")
    with caplog.at_level(logging.WARNING, "motanmesh.filters"):
        first = resolve_filters(url, FilterContext())
        second = resolve_filters(url, FilterContext())
    assert [f.name for f in first.endpoint] == ["chainA"]
    assert [f.name for f in second.endpoint] == ["chainA"]
    assert caplog.text.count("noSuchFilterX") == 1
    assert filter_class("noSuchFilterX") is None


def test_register_refuses_what_is_not_a_filter() -> None:
    with pytest.raises(TypeError):
        register_filter(int, "notAFilter")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no name"):
        register_filter(_Recorder)


def test_context_shares_one_object_per_name() -> None:
    context = FilterContext()
    made: list[int] = []

    def factory() -> list[int]:
        made.append(1)
        return [len(made)]

    assert context.get_service("x", factory) is context.get_service("x", factory)
    assert made == [1]
