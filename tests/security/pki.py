"""A throw-away PKI for the TLS tests: a CA, a second (untrusted) CA, and agent certificates
with SPIFFE URIs, written with :mod:`motanmesh.security.ca` into a test directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from motanmesh.security.ca import issue_certificate, new_ca, write_pair
from motanmesh.security.identity import app_identity
from motanmesh.security.tls import TlsConfig

TRUST_DOMAIN = "motanmesh.test"


class Pki:
    """``ca.pem`` (trusted) and ``other-ca.pem`` (a CA nobody trusts) in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._cas: dict[str, tuple[x509.Certificate, ec.EllipticCurvePrivateKey]] = {}
        for name in ("ca", "other-ca"):
            cert, key = new_ca(TRUST_DOMAIN, common_name=f"test {name}")
            self._cas[name] = (cert, key)
            write_pair(cert, key, directory / f"{name}.pem", directory / f"{name}-key.pem")
        self.ca = directory / "ca.pem"

    def issue(
        self,
        app: str,
        *,
        name: str | None = None,
        ca: str = "ca",
        days: int = 30,
        not_before: dt.datetime | None = None,
        trust_domain: str = TRUST_DOMAIN,
    ) -> tuple[Path, Path]:
        """Write ``<name>.pem`` / ``<name>-key.pem`` (``name`` defaults to ``app``) for
        ``spiffe://<trust_domain>/app/<app>``, signed by ``ca``; returns (cert, key)."""
        ca_cert, ca_key = self._cas[ca]
        cert, key = issue_certificate(
            ca_cert, ca_key, app_identity(trust_domain, app), days=days, not_before=not_before
        )
        stem = name or app
        paths = (self.dir / f"{stem}.pem", self.dir / f"{stem}-key.pem")
        write_pair(cert, key, *paths)
        return paths

    def ca_pair(self, ca: str = "ca") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """The certificate and key of ``ca``."""
        return self._cas[ca]

    def expired(self, app: str) -> tuple[Path, Path]:
        """A certificate that expired yesterday."""
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=11)
        return self.issue(app, name=f"{app}-expired", days=10, not_before=start)

    def config(self, app: str, **keys: str) -> TlsConfig:
        """A ``TlsConfig`` for ``app`` (its certificate issued now) plus ``keys``."""
        cert, key = self.issue(app)
        params = {
            "tls.cert": str(cert),
            "tls.key": str(key),
            "tls.ca": str(self.ca),
            "tls.trustDomain": TRUST_DOMAIN,
        }
        params.update({f"tls.{k}": v for k, v in keys.items()})
        return TlsConfig.from_params(params)
