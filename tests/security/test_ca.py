"""``motanmesh ca``: a CA directory, agent certificates with SPIFFE URIs that verify against
it, and clear errors."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from motanmesh.cli import main
from motanmesh.security.identity import (
    IdentityError,
    app_identity,
    application_of,
    spiffe_uris,
    trust_domain_of,
)


def test_init_and_issue_make_a_certificate_that_verifies_against_the_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "ca"
    assert main(["ca", "init", "--dir", str(d), "--trust-domain", "example.org"]) == 0
    assert main(["ca", "issue", "--dir", str(d), "--app", "orders", "--days", "7"]) == 0
    out = capsys.readouterr().out
    assert "spiffe://example.org/app/orders" in out
    for key in ("ca-key.pem", "orders-key.pem"):
        assert stat.S_IMODE((d / key).stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((d / "orders.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://example.org/app/orders"
    ]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert days == 7
    # OpenSSL accepts it as a client and as a server certificate of this CA
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(d / "orders.pem", d / "orders-key.pem")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(d / "ca.pem")
    ctx.load_cert_chain(d / "orders.pem", d / "orders-key.pem")


def test_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "ca"
    assert main(["ca", "issue", "--dir", str(d), "--app", "x"]) == 1
    assert "no CA in" in capsys.readouterr().err
    assert main(["ca", "init", "--dir", str(d)]) == 0
    first = (d / "ca.pem").read_bytes()
    assert main(["ca", "init", "--dir", str(d)]) == 1
    assert "--force" in capsys.readouterr().err
    assert (d / "ca.pem").read_bytes() == first
    assert main(["ca", "init", "--dir", str(d), "--force"]) == 0
    assert (d / "ca.pem").read_bytes() != first
    assert main(["ca", "issue", "--dir", str(d), "--app", "bad/name"]) == 1
    assert "application" in capsys.readouterr().err
    assert main(["ca", "issue", "--dir", str(d), "--app", "x", "--days", "0"]) == 1
    assert main(["ca"]) == 2


def test_identity_helpers() -> None:
    uri = app_identity("motanmesh.local", "demo-client")
    assert uri == "spiffe://motanmesh.local/app/demo-client"
    assert trust_domain_of(uri) == "motanmesh.local"
    assert application_of(uri) == "demo-client"
    assert application_of("spiffe://d/ns/x") == ""
    assert trust_domain_of("https://x") == ""
    cert = {"subjectAltName": (("DNS", "localhost"), ("URI", uri), ("URI", "urn:x"))}
    assert spiffe_uris(cert) == [uri]
    assert spiffe_uris(None) == []
    with pytest.raises(IdentityError):
        app_identity("Upper.Case", "x")
