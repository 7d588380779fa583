"""TLS on a server port over real loopback sockets (asyncio's loop and uvloop): strict and
permissive modes, identities from client certificates, every refusal counted while the port
keeps serving, the limits before a connection exists, and endpoints connecting with TLS."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from motanmesh.security.ca import issue_certificate, write_pair
from motanmesh.security.tls import ClientPolicy, ServerPolicy, TlsConfig, TlsMaterial
from motanmesh.transport import Endpoint, MotanServer, Responder, ServerConnection
from motanmesh.transport.errors import ConnectError
from motanmesh.transport.limits import ServerLimits
from motanmesh.wire.frame import Frame
from motanmesh.wire.v1 import v1_heartbeat_request
from tests.security.pki import TRUST_DOMAIN, Pki
from tests.transport.support import RawClient, echo, req, until

SERVER_ID = f"spiffe://{TRUST_DOMAIN}/app/server"
CLIENT_ID = f"spiffe://{TRUST_DOMAIN}/app/client"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


class Identities:
    """Echoes, and keeps the identity of the connection of every request."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        self.seen.append(conn.identity)
        echo(frame, respond, conn)


#: servers a test started, closed after it even when it fails (a loop must not be closed with
#: a listener's reader still registered)
_started: list[MotanServer] = []


@pytest.fixture(autouse=True)
async def _close_servers() -> AsyncIterator[None]:
    yield
    while _started:
        await _started.pop().close(deadline=0)


async def tls_server(
    pki: Pki, mode: str = "strict", limits: ServerLimits | None = None, **keys: str
) -> tuple[MotanServer, Identities, str]:
    handler = Identities()
    policy = ServerPolicy(TlsMaterial(pki.config("server", mode=mode, **keys)))
    server = MotanServer(handler, tls=policy, limits=limits)
    _started.append(server)
    host, port = await server.listen_tcp()
    return server, handler, f"{host}:{port}"


def client_context(
    pki: Pki, cert: Path | None, key: Path | None, ca: Path | None = None
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(ca or pki.ca)
    if cert is not None and key is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


async def open_tls(address: str, ctx: ssl.SSLContext) -> RawClient:
    host, _, port = address.rpartition(":")
    r, w = await asyncio.open_connection(host, int(port), ssl=ctx, server_hostname="")
    return RawClient(r, w)


async def call(client: RawClient, rid: int) -> Frame:
    await client.send(req(rid).encode())
    return await client.read_frame()


async def refused(client: RawClient) -> bool:
    """True when the server ends the connection instead of answering a request."""
    try:
        await client.send(req(99).encode())
        return await client.closed_by_peer()
    except (ConnectionError, ssl.SSLError):
        return True


# ---------------------------------------------------------------------------- strict


async def test_strict_port_serves_tls_and_knows_the_callers_identity(pki: Pki) -> None:
    server, handler, address = await tls_server(pki)
    client = await open_tls(address, client_context(pki, *pki.issue("client")))
    peer = client.writer.get_extra_info("ssl_object").getpeercert()
    assert ("URI", SERVER_ID) in peer["subjectAltName"]
    for rid in (1, 2, 3):
        assert (await call(client, rid)).request_id == rid
    assert handler.seen == [CLIENT_ID] * 3
    assert server.tls_connections == {"tls": 1, "plain": 0}
    assert all(v == 0 for v in server.tls_refused.values())
    await client.close()
    await server.close(deadline=0)


async def test_strict_port_refuses_plaintext_counts_it_and_serves_others(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    server, handler, address = await tls_server(pki)
    good = await open_tls(address, client_context(pki, *pki.issue("client")))
    with caplog.at_level(logging.WARNING, "motanmesh.transport"):
        plains = [await RawClient.open(address) for _ in range(3)]
        for plain in plains:
            assert await refused(plain)
        await until(lambda: server.tls_refused["plaintext"] == 3, "three refusals counted")
    lines = [r.getMessage() for r in caplog.records if "plaintext" in r.getMessage()]
    assert len(lines) == 1, lines  # logged once, counted three times
    assert "requires TLS" in lines[0]
    assert (await call(good, 7)).request_id == 7
    assert handler.seen == [CLIENT_ID]
    for c in [good, *plains]:
        await c.close()
    await server.close(deadline=0)


@pytest.mark.parametrize(
    ("who", "reason"),
    [("other-ca", "unknownCa"), ("expired", "expired"), ("none", "noCertificate")],
)
async def test_bad_client_certificates_are_refused_by_reason(
    pki: Pki, who: str, reason: str
) -> None:
    server, handler, address = await tls_server(pki)
    if who == "other-ca":
        ctx = client_context(pki, *pki.issue("rogue", ca="other-ca"))
    elif who == "expired":
        ctx = client_context(pki, *pki.expired("client"))
    else:
        ctx = client_context(pki, None, None)
    try:
        bad = await open_tls(address, ctx)
    except (ssl.SSLError, ConnectionError):
        bad = None  # refused during the handshake (TLS 1.2 would end here)
    if bad is not None:  # TLS 1.3: the client finished first; the server ends it
        assert await refused(bad)
        await bad.close()
    await until(lambda: server.tls_refused[reason] == 1, f"a {reason} refusal")
    assert server.connection_count == 0
    good = await open_tls(address, client_context(pki, *pki.issue("client")))
    assert (await call(good, 1)).request_id == 1
    assert handler.seen == [CLIENT_ID]
    await good.close()
    await server.close(deadline=0)


async def test_a_certificate_from_another_trust_domain_is_refused(pki: Pki) -> None:
    server, handler, address = await tls_server(pki)
    cert, key = pki.issue("client", name="elsewhere", trust_domain="other.example")
    bad = await open_tls(address, client_context(pki, cert, key))
    assert await refused(bad)
    await until(lambda: server.tls_refused["identity"] == 1, "an identity refusal")
    assert handler.seen == []
    await bad.close()
    await server.close(deadline=0)


async def test_a_certificate_without_a_spiffe_id_is_refused(pki: Pki) -> None:
    cert, key = pki.issue("server")
    params = {"tls.mode": "strict", "tls.cert": str(cert), "tls.key": str(key)}
    policy = ServerPolicy(TlsMaterial(TlsConfig.from_params({**params, "tls.ca": str(pki.ca)})))
    server = MotanServer(echo, tls=policy)  # no trust domain: any SPIFFE ID of the CA
    host, port = await server.listen_tcp()
    ca_cert, ca_key = pki.ca_pair()
    plain_cert, plain_key = issue_certificate(ca_cert, ca_key, "urn:example:not-a-workload")
    write_pair(plain_cert, plain_key, pki.dir / "urn.pem", pki.dir / "urn-key.pem")
    bad = await open_tls(
        f"{host}:{port}", client_context(pki, pki.dir / "urn.pem", pki.dir / "urn-key.pem")
    )
    assert await refused(bad)
    await until(lambda: server.tls_refused["identity"] == 1, "an identity refusal")
    good = await open_tls(f"{host}:{port}", client_context(pki, *pki.issue("client")))
    assert (await call(good, 1)).request_id == 1
    for c in (bad, good):
        await c.close()
    await server.close(deadline=0)


async def test_garbage_after_a_handshake_byte_is_refused_as_a_handshake(pki: Pki) -> None:
    server, _handler, address = await tls_server(pki)
    raw = await RawClient.open(address)
    await raw.send(b"\x16\x03\x01\x00\x05hello-not-tls" * 4)
    assert await raw.closed_by_peer()
    await until(lambda: server.tls_refused["handshake"] == 1, "a handshake refusal")
    await raw.close()
    await server.close(deadline=0)


# ---------------------------------------------------------------------------- permissive


async def test_permissive_port_serves_plain_motan2_and_tls_side_by_side(pki: Pki) -> None:
    server, handler, address = await tls_server(pki, mode="permissive")
    plain = await RawClient.open(address)
    secure = await open_tls(address, client_context(pki, *pki.issue("client")))
    assert (await call(plain, 1)).request_id == 1
    assert (await call(secure, 2)).request_id == 2
    assert (await call(plain, 3)).request_id == 3
    assert handler.seen == ["", CLIENT_ID, ""]
    assert server.tls_connections == {"tls": 1, "plain": 1}
    # a Motan v1 heartbeat (magic 0xF0F0) is plaintext too
    v1 = await RawClient.open(address)
    await v1.send(v1_heartbeat_request(5))
    assert len(await v1.read_v1()) > 16
    for c in (plain, secure, v1):
        await c.close()
    await server.close(deadline=0)


async def test_one_way_tls_gives_no_identity(pki: Pki) -> None:
    server, handler, address = await tls_server(pki, verifyClient="false")
    client = await open_tls(address, client_context(pki, None, None))
    assert (await call(client, 1)).request_id == 1
    assert handler.seen == [""]
    await client.close()
    await server.close(deadline=0)


# ---------------------------------------------------------------------------- limits


async def test_a_client_that_never_sends_a_first_byte_is_closed_by_the_read_timeout(
    pki: Pki,
) -> None:
    server, _handler, address = await tls_server(pki, limits=ServerLimits(read_timeout=0.2))
    silent = await RawClient.open(address)
    assert await silent.closed_by_peer()
    assert server.limit_hits["readTimeout"] == 1
    assert server.tls_waiting == 0
    await silent.close()
    await server.close(deadline=0)


async def test_permissive_port_serves_a_quiet_plain_client_after_the_read_timeout(
    pki: Pki,
) -> None:
    limits = ServerLimits(read_timeout=0.1)
    server, handler, address = await tls_server(pki, mode="permissive", limits=limits)
    quiet = await RawClient.open(address)  # a Motan2 pool connection, idle at first
    # connection_made runs before connect_accepted_socket returns: wait for both
    await until(
        lambda: server.tls_connections["plain"] == 1 and server.tls_waiting == 0,
        "made a plain connection",
    )
    assert (await call(quiet, 4)).request_id == 4
    assert handler.seen == [""]
    assert server.limit_hits["readTimeout"] == 0
    await quiet.close()
    await server.close(deadline=0)


async def test_sockets_waiting_for_a_first_byte_count_towards_max_connections(pki: Pki) -> None:
    server, _handler, address = await tls_server(
        pki, mode="permissive", limits=ServerLimits(max_connections=2)
    )
    silent = [await RawClient.open(address) for _ in range(2)]
    await until(lambda: server.tls_waiting == 2, "two sockets waiting")
    extra = await RawClient.open(address)
    assert await extra.closed_by_peer()
    assert server.limit_hits["connectionsRefused"] == 1
    await silent[0].close()
    await until(lambda: server.tls_waiting == 1, "a closed socket forgotten")
    again = await RawClient.open(address)
    assert (await call(again, 1)).request_id == 1
    for c in [*silent, extra, again]:
        await c.close()
    await server.close(deadline=0)
    assert server.tls_waiting == 0


async def test_a_stalled_handshake_is_refused_after_the_handshake_timeout(pki: Pki) -> None:
    server, _handler, address = await tls_server(pki, handshakeTimeout="200")
    raw = await RawClient.open(address)
    await raw.send(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
    assert await raw.closed_by_peer()
    await until(lambda: server.tls_refused["handshakeTimeout"] == 1, "a handshake timeout")
    await raw.close()
    await server.close(deadline=0)


# ---------------------------------------------------------------------------- endpoints


async def test_an_endpoint_connects_with_tls_and_checks_the_trust_domain(pki: Pki) -> None:
    server, handler, address = await tls_server(pki)
    policy = ClientPolicy(TlsMaterial(pki.config("client")))
    endpoint = Endpoint(address, connections=1, tls=policy)
    await endpoint.connect()
    response = await endpoint.call(req(5))
    assert response.request_id == 5
    assert handler.seen == [CLIENT_ID]
    await endpoint.close()
    # a client expecting another trust domain does not use this server
    cert, key = pki.issue("client")
    other = TlsConfig.from_params(
        {
            "tls.cert": str(cert),
            "tls.key": str(key),
            "tls.ca": str(pki.ca),
            "tls.trustDomain": "x.y",
        }
    )
    wary = Endpoint(address, connections=1, tls=ClientPolicy(TlsMaterial(other)))
    await wary.connect()
    assert not wary.available
    with pytest.raises(ConnectError, match=r"spiffe://x\.y/"):
        await wary.call(req(6))
    await wary.close()
    await server.close(deadline=0)


# ---------------------------------------------------------------------------- reload


async def test_renewed_certificates_serve_new_connections_and_leave_open_ones_alone(
    pki: Pki,
) -> None:
    config = pki.config("renewed", mode="strict", reloadInterval="50")
    material = TlsMaterial(config)
    server = MotanServer(echo, tls=ServerPolicy(material))
    host, port = await server.listen_tcp()
    address = f"{host}:{port}"
    ctx = client_context(pki, *pki.issue("client"))
    before = await open_tls(address, ctx)
    old = before.writer.get_extra_info("ssl_object").getpeercert()
    assert (await call(before, 1)).request_id == 1
    # the certificate is renewed on disk: new key, new serial, same paths
    pki.issue("renewed")
    await until(lambda: material.refresh() or material.reloads == 1, "the new files loaded")
    after = await open_tls(address, ctx)
    new = after.writer.get_extra_info("ssl_object").getpeercert()
    assert new["serialNumber"] != old["serialNumber"]
    assert ("URI", f"spiffe://{TRUST_DOMAIN}/app/renewed") in new["subjectAltName"]
    # the connection made before keeps working on its own session
    assert (await call(before, 2)).request_id == 2
    assert (await call(after, 3)).request_id == 3
    assert server.tls_connections["tls"] == 2
    for c in (before, after):
        await c.close()
    await server.close(deadline=0)


EMFILE_SCRIPT = """
import asyncio, os, resource, socket, sys
from motanmesh.security.tls import ServerPolicy, TlsConfig, TlsMaterial
from motanmesh.transport import MotanServer
from tests.transport.support import RawClient, echo, req

async def main():
    policy = ServerPolicy(TlsMaterial(TlsConfig.from_params(dict(
        a.split("=", 1) for a in sys.argv[1:]))))
    server = MotanServer(echo, tls=policy)
    host, port = await server.listen_tcp()
    used = len(os.listdir("/proc/self/fd"))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (used + 8, hard))
    clients = []
    try:
        while True:  # connect until this process has no descriptor left
            s = socket.socket()
            s.setblocking(False)
            clients.append(s)
            try:
                s.connect((host, port))
            except BlockingIOError:
                pass
    except OSError:
        pass
    for _ in range(100):  # the server cannot accept them all; it must not spin
        await asyncio.sleep(0.01)
        if server.limit_hits.get("acceptFailed"):
            break
    for s in clients:
        s.close()
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    c = await RawClient.open(f"{host}:{port}")
    await c.send(req(3).encode())
    frame = await c.read_frame()
    print(server.limit_hits.get("acceptFailed", 0), frame.request_id)
    await c.close()
    await server.close(deadline=0)

asyncio.run(main())
"""


def test_out_of_descriptors_pauses_accepting_and_it_resumes(pki: Pki) -> None:
    cert, key = pki.issue("fd-server")
    keys = ["tls.mode=permissive", f"tls.cert={cert}", f"tls.key={key}"]
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", EMFILE_SCRIPT, *keys],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    failed, rid = done.stdout.split()
    # counted, and not retried in a loop while descriptors are short (once a second)
    assert 1 <= int(failed) <= 3, done.stderr
    assert rid == "3"
