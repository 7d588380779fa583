"""The ``auth`` filter in front of a provider served on a real loopback port: allowed callers
reach the provider, others get the dedicated exception, counted, logged without the body."""

from __future__ import annotations

import logging
from typing import cast

import pytest

from motanmesh.agent.dispatcher import Provider
from motanmesh.agent.filtering import FilteredProvider, with_filters
from motanmesh.filters import FilterContext
from motanmesh.filters import auth as auth_module
from motanmesh.filters.auth import (
    AUTH_SERVICE,
    E_AUTH_DENIED,
    MAX_COUNTED_METHODS,
    OTHER_METHODS,
    AuthFilter,
    AuthFilters,
)
from motanmesh.filters.auth_policy import AuthPolicy
from motanmesh.transport import MotanServer
from motanmesh.transport.server import Responder, ServerConnection
from motanmesh.url import URL
from motanmesh.wire.frame import (
    ERRTYPE_BIZ,
    M_METHOD,
    M_PATH,
    M_SOURCE,
    Frame,
    parse_exception,
    request_frame,
    response_frame,
)
from tests.transport.support import RawClient

SERVICE = URL("motan2", "127.0.0.1", 0, "com.example.Orders", "g1")
SECRET_BODY = b"card=4111111111111111"


class Backend:
    def __init__(self) -> None:
        self.url = SERVICE
        self.seen: list[Frame] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        self.seen.append(frame)
        respond(response_frame(frame.request_id, {}, b"ok").encode())


async def call(client: RawClient, rid: int, method: str, caller: str | None) -> Frame:
    meta = {M_PATH: SERVICE.path, M_METHOD: method}
    if caller is not None:
        meta[M_SOURCE] = caller
    await client.send(request_frame(rid, meta, SECRET_BODY).encode())
    return await client.read_frame()


async def test_allowed_callers_pass_and_others_are_refused_counted_and_not_logged_in_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = Backend()
    url = SERVICE.with_params(
        filter="auth", **{"auth.allow": "web, mobile", "auth.allow.refund": "billing"}
    )
    provider = with_filters(cast(Provider, backend), url, FilterContext())
    assert isinstance(provider, FilteredProvider)
    server = MotanServer(provider)
    host, port = await server.listen_tcp()
    client = await RawClient.open(f"{host}:{port}")
    try:
        assert (await call(client, 1, "get", "web")).body == b"ok"
        assert (await call(client, 2, "get", "mobile")).body == b"ok"
        assert (await call(client, 3, "refund", "billing")).body == b"ok"
        refused = [
            await call(client, 4, "get", "intruder"),
            await call(client, 5, "refund", "web"),  # the method's list replaces the service's
            await call(client, 6, "get", None),
        ]
        for answer in refused:
            error = parse_exception(answer.metadata["M_e"])
            assert error.errcode == E_AUTH_DENIED
            assert error.errtype == ERRTYPE_BIZ  # not retried, not held against the provider
            assert answer.body == b""
            assert "auth.allow" in error.errmsg
        assert (
            "'intruder' may not call com.example.Orders.get"
            in parse_exception(refused[0].metadata["M_e"]).errmsg
        )
        assert [f.request_id for f in backend.seen] == [1, 2, 3]
        (auth,) = [f for f in provider.filters.endpoint if isinstance(f, AuthFilter)]
        assert auth.denied == 3
        assert auth.info()["denied"] == 3
        assert "refused" in caplog.text
        assert "4111" not in caplog.text
    finally:
        await client.close()
        await server.close(deadline=0)


async def test_without_a_policy_every_call_is_refused() -> None:
    backend = Backend()
    provider = with_filters(
        cast(Provider, backend), SERVICE.with_params(filter="auth"), FilterContext()
    )
    server = MotanServer(provider)
    host, port = await server.listen_tcp()
    client = await RawClient.open(f"{host}:{port}")
    try:
        answer = await call(client, 1, "get", "web")
        assert parse_exception(answer.metadata["M_e"]).errcode == E_AUTH_DENIED
        assert backend.seen == []
    finally:
        await client.close()
        await server.close(deadline=0)


async def test_a_star_allows_every_caller() -> None:
    backend = Backend()
    url = SERVICE.with_params(filter="auth", **{"auth.allow": "*"})
    server = MotanServer(with_filters(cast(Provider, backend), url, FilterContext()))
    host, port = await server.listen_tcp()
    client = await RawClient.open(f"{host}:{port}")
    try:
        assert (await call(client, 1, "get", "anyone")).body == b"ok"
        assert (await call(client, 2, "get", None)).body == b"ok"
    finally:
        await client.close()
        await server.close(deadline=0)


# ---------------------------------------------------------------------------- mTLS identities

#: a test-only metadata key: which identity the connection's (simulated) TLS layer verified
AS = "x-test-identity"


class IdentityFromTls:
    """In front of the filtered provider, sets ``conn.identity`` as the TLS layer does for a
    verified client certificate (here taken from a test metadata key; "" = plaintext)."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        conn.identity = frame.metadata.get(AS, "")
        self.inner(frame, respond, conn)


async def call_as(
    client: RawClient, rid: int, method: str, caller: str | None, identity: str
) -> Frame:
    meta = {M_PATH: SERVICE.path, M_METHOD: method, AS: identity}
    if caller is not None:
        meta[M_SOURCE] = caller
    await client.send(request_frame(rid, meta, SECRET_BODY).encode())
    return await client.read_frame()


def errmsg(answer: Frame) -> str:
    error = parse_exception(answer.metadata["M_e"])
    assert error.errcode == E_AUTH_DENIED
    return error.errmsg


async def test_an_mtls_identity_decides_instead_of_m_s() -> None:
    backend = Backend()
    url = SERVICE.with_params(
        filter="auth",
        **{
            "auth.allow": "web, spiffe://prod.example/app/mobile",
            "auth.allow.refund": "spiffe://prod.example/app/billing",
        },
    )
    provider = with_filters(cast(Provider, backend), url, FilterContext())
    server = MotanServer(cast(Provider, IdentityFromTls(provider)))
    host, port = await server.listen_tcp()
    client = await RawClient.open(f"{host}:{port}")
    try:
        ok = [
            await call_as(client, 1, "get", None, "spiffe://prod.example/app/web"),
            await call_as(client, 2, "get", "intruder", "spiffe://other.example/app/web"),
            await call_as(client, 3, "get", "", "spiffe://prod.example/app/mobile"),
            await call_as(client, 4, "refund", "web", "spiffe://prod.example/app/billing"),
            await call_as(client, 5, "get", "web", ""),  # plaintext: M_s, unauthenticated
        ]
        assert [a.body for a in ok] == [b"ok"] * 5
        # M_s says web, the verified identity says otherwise: refused
        msg = errmsg(await call_as(client, 6, "get", "web", "spiffe://prod.example/app/evil"))
        assert "identity 'spiffe://prod.example/app/evil' may not call" in msg
        assert "identity is not in" in msg
        # a URI entry is exact: another trust domain does not match it
        other = "spiffe://other.example/app/mobile"
        assert "may not call" in errmsg(await call_as(client, 7, "get", "mobile", other))
        # a URI entry never matches M_s alone
        assert "M_s" in errmsg(await call_as(client, 8, "refund", "billing", ""))
        assert [f.request_id for f in backend.seen] == [1, 2, 3, 4, 5]
    finally:
        await client.close()
        await server.close(deadline=0)


async def test_require_identity_refuses_m_s_only_callers() -> None:
    backend = Backend()
    url = SERVICE.with_params(
        filter="auth", **{"auth.allow": "web", "auth.requireIdentity": "true"}
    )
    provider = with_filters(cast(Provider, backend), url, FilterContext())
    server = MotanServer(cast(Provider, IdentityFromTls(provider)))
    host, port = await server.listen_tcp()
    client = await RawClient.open(f"{host}:{port}")
    try:
        msg = errmsg(await call_as(client, 1, "get", "web", ""))
        assert "requires a verified mTLS identity" in msg
        assert (await call_as(client, 2, "get", "", "spiffe://td/app/web")).body == b"ok"
        assert [f.request_id for f in backend.seen] == [2]
    finally:
        await client.close()
        await server.close(deadline=0)


# ---------------------------------------------------------------------------- policy changes


async def test_a_registry_policy_replaces_the_config_one_until_withdrawn() -> None:
    backend = Backend()
    url = SERVICE.with_params(filter="auth", **{"auth.allow": "web"})
    provider = with_filters(cast(Provider, backend), url, FilterContext())
    assert isinstance(provider, FilteredProvider)
    (auth,) = provider.filters.endpoint
    assert isinstance(auth, AuthFilter)
    server = MotanServer(provider)
    host, port = await server.listen_tcp()
    client = await RawClient.open(f"{host}:{port}")
    try:
        assert (await call(client, 1, "get", "web")).body == b"ok"
        auth.use_registry_policy(AuthPolicy.from_json('{"allow": ["ops"]}', "registry zk"))
        assert auth.info()["source"] == "registry zk"
        assert "M_s" in errmsg(await call(client, 2, "get", "web"))
        assert (await call(client, 3, "get", "ops")).body == b"ok"
        auth.use_registry_policy(None)
        assert auth.info()["source"] == "config"
        assert (await call(client, 4, "get", "web")).body == b"ok"
        assert "M_s" in errmsg(await call(client, 5, "get", "ops"))
    finally:
        await client.close()
        await server.close(deadline=0)


async def test_a_bad_config_policy_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    backend = Backend()
    url = SERVICE.with_params(filter="auth", **{"auth.allow": "web mobile"})
    provider = with_filters(cast(Provider, backend), url, FilterContext())
    assert isinstance(provider, FilteredProvider)  # the filter is there, not skipped
    server = MotanServer(provider)
    host, port = await server.listen_tcp()
    client = await RawClient.open(f"{host}:{port}")
    try:
        errmsg(await call(client, 1, "get", "web"))
        errmsg(await call(client, 2, "get", "web mobile"))
        assert backend.seen == []
        (auth,) = provider.filters.endpoint
        assert "application name" in auth.info()["configError"]
        assert "bad policy in the config" in caplog.text
    finally:
        await client.close()
        await server.close(deadline=0)


# ---------------------------------------------------------------------------- counts and logs


async def test_refusals_are_counted_by_method_bounded_and_logged_at_a_bounded_rate(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, "motanmesh.filters.auth")
    now = [1000.0]
    monkeypatch.setattr(auth_module, "monotonic", lambda: now[0])
    backend = Backend()
    context = FilterContext()
    url = SERVICE.with_params(filter="auth", **{"auth.allow": "web"})
    provider = with_filters(cast(Provider, backend), url, context)
    assert isinstance(provider, FilteredProvider)
    server = MotanServer(provider)
    host, port = await server.listen_tcp()
    client = await RawClient.open(f"{host}:{port}")
    try:
        for rid in range(1, 31):
            errmsg(await call(client, rid, "get", "intruder"))
        refusals = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 1  # 30 refusals inside one interval: one line
        now[0] += auth_module.LOG_INTERVAL
        errmsg(await call(client, 31, "get", "intruder"))
        lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(lines) == 2
        assert "(31 refused so far, 29 not logged)" in lines[1]
        # hostile method names do not grow the counts without bound
        for i in range(MAX_COUNTED_METHODS + 20):
            errmsg(await call(client, 100 + i, f"m{i}", "intruder"))
        (auth,) = provider.filters.endpoint
        assert isinstance(auth, AuthFilter)
        counts = auth.denied_by_method
        assert len(counts) == MAX_COUNTED_METHODS + 1
        assert counts["get"] == 31
        assert counts[OTHER_METHODS] == 21
        assert sum(counts.values()) == auth.denied == 31 + MAX_COUNTED_METHODS + 20
        shared = context.services[AUTH_SERVICE]
        assert isinstance(shared, AuthFilters)
        samples = {dict(s.labels)["method"]: s for s in shared.runtime_samples()}
        get = samples["get"]
        assert (get.name, get.kind, get.value) == ("motan_auth_denied_total", "counter", 31)
        assert dict(get.labels) == {"group": "g1", "service": SERVICE.path, "method": "get"}
        assert "4111" not in caplog.text
        provider.filters.close()
        assert shared.filters == []
    finally:
        await client.close()
        await server.close(deadline=0)


async def test_long_hostile_names_are_cut_in_answers_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = Backend()
    url = SERVICE.with_params(filter="auth", **{"auth.allow": "web"})
    server = MotanServer(with_filters(cast(Provider, backend), url, FilterContext()))
    host, port = await server.listen_tcp()
    client = await RawClient.open(f"{host}:{port}")
    try:
        # (metadata cannot carry a newline; a terminal escape is shown escaped)
        msg = errmsg(await call(client, 1, "x" * 5000, "\x1b[31m" + "y" * 5000))
        assert len(msg) < 600
        assert "\\x1b[31m" in msg and "\x1b" not in msg
        (line,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert "\\x1b[31m" in line and "\x1b" not in line
        assert len(line) < 800
    finally:
        await client.close()
        await server.close(deadline=0)
