"""A small development CA: one self-signed root, agent certificates with a SPIFFE URI SAN.

Files in the CA directory (PEM; keys written with mode 0600):

* ``ca.pem`` / ``ca-key.pem``: the root (``CN=motanmesh dev CA``, URI SAN
  ``spiffe://<trust-domain>``, which ``issue`` reads the trust domain from);
* ``<app>.pem`` / ``<app>-key.pem``: an agent certificate for application ``<app>`` with the
  URI SAN ``spiffe://<trust-domain>/app/<app>``, the DNS SAN ``localhost`` and the IP SANs
  127.0.0.1 and ::1 (plus any ``hosts`` given), usable for both server and client
  authentication.

Keys are ECDSA P-256 (small, fast handshakes). Meant for development, tests and the demo:
a production mesh issues certificates from its own PKI (SPIRE, cert-manager, Vault...) in the
same shape (see docs/security.md).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from motanmesh.security.identity import SCHEME, app_identity, check_trust_domain, trust_domain_of

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "DEFAULT_HOSTS",
    "DEFAULT_TRUST_DOMAIN",
    "CaError",
    "IssuedFiles",
    "init_ca",
    "issue",
    "issue_certificate",
    "load_ca",
    "new_ca",
    "write_pair",
]

CA_CERT: Final = "ca.pem"
CA_KEY: Final = "ca-key.pem"
DEFAULT_TRUST_DOMAIN: Final = "motanmesh.local"
DEFAULT_HOSTS: Final = ("localhost", "127.0.0.1", "::1")
CA_DAYS: Final = 3650
AGENT_DAYS: Final = 90


class CaError(Exception):
    """The CA directory cannot be used (missing, already there, unreadable); the message says
    what to do."""


@dataclass(frozen=True)
class IssuedFiles:
    cert: Path
    key: Path
    uri: str
    not_after: dt.datetime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_ca(
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    *,
    days: int = CA_DAYS,
    common_name: str = "motanmesh dev CA",
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed root certificate and its key (in memory)."""
    check_trust_domain(trust_domain)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(SCHEME + trust_domain)]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue_certificate(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    uri: str,
    *,
    days: int = AGENT_DAYS,
    not_before: dt.datetime | None = None,
    hosts: Sequence[str] = DEFAULT_HOSTS,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf certificate for ``uri`` (and ``hosts``: DNS names or IP addresses) signed by the
    CA, valid from ``not_before`` (now) for ``days`` days, for server and client auth."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or (_now() - dt.timedelta(minutes=5))
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    cn = uri.rsplit("/", 1)[-1] or uri
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def write_pair(
    cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, cert_path: Path, key_path: Path
) -> None:
    """Write the certificate and its key (the key readable by the owner only). The key is
    written first, each file through a temporary file and a rename, so that an agent that
    polls the certificate sees whole files."""
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomic(key_path, key_pem, 0o600)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def init_ca(
    directory: Path,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    *,
    days: int = CA_DAYS,
    force: bool = False,
) -> Path:
    """Create ``ca.pem`` and ``ca-key.pem`` in ``directory``; returns the certificate path.
    An existing CA is kept unless ``force`` (a new CA invalidates every issued certificate)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if cert_path.exists() and not force:
        raise CaError(f"{cert_path} exists; pass --force to replace the CA")
    cert, key = new_ca(trust_domain, days=days)
    write_pair(cert, key, cert_path, key_path)
    return cert_path


def load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA of ``directory`` (written by :func:`init_ca`)."""
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError as e:
        raise CaError(f"no CA in {directory} ({e.filename}); run: motanmesh ca init") from e
    except (OSError, ValueError) as e:
        raise CaError(f"cannot read the CA in {directory}: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CaError(f"{key_path}: not an EC key written by motanmesh ca init")
    return cert, key


def ca_trust_domain(cert: x509.Certificate) -> str:
    """The trust domain named by the CA's ``spiffe://`` URI SAN ("" when it has none)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ""
    for uri in san.value.get_values_for_type(x509.UniformResourceIdentifier):
        domain = trust_domain_of(uri)
        if domain:
            return domain
    return ""


def issue(
    directory: Path,
    application: str,
    *,
    days: int = AGENT_DAYS,
    trust_domain: str | None = None,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    out_dir: Path | None = None,
) -> IssuedFiles:
    """Issue ``<application>.pem`` and ``<application>-key.pem`` (in ``out_dir``, default the
    CA directory) for ``spiffe://<trust-domain>/app/<application>``; the trust domain is the
    CA's unless given."""
    if days <= 0:
        raise CaError(f"--days must be positive, got {days}")
    ca_cert, ca_key = load_ca(directory)
    domain = trust_domain or ca_trust_domain(ca_cert) or DEFAULT_TRUST_DOMAIN
    uri = app_identity(domain, application)
    cert, key = issue_certificate(ca_cert, ca_key, uri, days=days, hosts=hosts)
    target = out_dir or directory
    target.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = target / f"{application}.pem", target / f"{application}-key.pem"
    write_pair(cert, key, cert_path, key_path)
    return IssuedFiles(cert_path, key_path, uri, cert.not_valid_after_utc)
