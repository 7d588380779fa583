"""Mutual TLS between agents: the ``tls.*`` keys of ``motan-agent``, the SSL contexts built
from certificate files (rebuilt when the files change), and the identity checks.

==========================  ===============================================================
key                         meaning (default)
==========================  ===============================================================
``tls.mode``                export ports: ``off``, ``permissive`` (TLS and plain Motan2 on
                            one port) or ``strict`` (TLS only) (``off``)
``tls.cert``, ``tls.key``   this agent's certificate (chain) and key, PEM files; needed
                            by a TLS export port, sent as client certificate to providers
``tls.ca``                  CA certificates (PEM) that peers' certificates must chain to;
                            with it export ports require a client certificate and the client
                            side uses TLS towards providers registered with ``tls=true``
``tls.verifyClient``        export ports require and verify client certificates (``true``
                            when ``tls.ca`` is set)
``tls.trustDomain``         peers must present ``spiffe://<trustDomain>/...`` (any verified
                            certificate when empty) (empty)
``tls.client``              ``auto``: TLS towards providers whose URL has ``tls=true`` (or
                            a refer with ``tls: true``); ``off``: never (``auto``)
``tls.reloadInterval``      ms between checks of the files for changes (5000)
``tls.handshakeTimeout``    ms a TLS handshake may take on an export port (10000)
==========================  ===============================================================
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from motanmesh.security.identity import (
    IdentityError,
    check_trust_domain,
    spiffe_uris,
    trust_domain_of,
)
from motanmesh.transport.tls import TlsRefused

__all__ = [
    "MODES",
    "PREFIX",
    "ClientPolicy",
    "ServerPolicy",
    "TlsConfig",
    "TlsConfigError",
    "TlsMaterial",
]

log = logging.getLogger("motanmesh.security")

PREFIX: Final = "tls."
MODES: Final = ("off", "permissive", "strict")
CLIENT_MODES: Final = ("auto", "off")
_KEYS: Final = frozenset(
    {
        "mode",
        "cert",
        "key",
        "ca",
        "verifyClient",
        "trustDomain",
        "client",
        "reloadInterval",
        "handshakeTimeout",
    }
)
#: seconds between two log lines about failed reloads
RELOAD_LOG_INTERVAL: Final = 60.0


class TlsConfigError(ValueError):
    """A ``tls.*`` key with an unusable value; the message names the key."""


def _bool(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise TlsConfigError(f"{PREFIX}{key}: not a boolean: {raw!r}")


def _ms(key: str, raw: str | None, default: int) -> float:
    if raw is None or not raw.strip():
        return default / 1000
    try:
        value = int(raw.strip())
    except ValueError:
        raise TlsConfigError(f"{PREFIX}{key}: not a number of ms: {raw!r}") from None
    if value <= 0:
        raise TlsConfigError(f"{PREFIX}{key}: must be positive, got {value}")
    return value / 1000


@dataclass(frozen=True)
class TlsConfig:
    """The ``tls.*`` keys, checked."""

    mode: str = "off"
    cert: str = ""
    key: str = ""
    ca: str = ""
    verify_client: bool = False
    trust_domain: str = ""
    client: str = "auto"
    reload_interval: float = 5.0
    handshake_timeout: float = 10.0

    @property
    def server_enabled(self) -> bool:
        return self.mode != "off"

    @property
    def client_enabled(self) -> bool:
        return self.client != "off" and bool(self.ca)

    @property
    def enabled(self) -> bool:
        return self.server_enabled or self.client_enabled

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> TlsConfig:
        """The configuration named by the ``tls.*`` keys of ``params`` (``motan-agent``)."""
        raw = {k[len(PREFIX) :]: str(v) for k, v in params.items() if k.startswith(PREFIX)}
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise TlsConfigError(
                f"{PREFIX}{unknown[0]}: unknown key (known: {', '.join(sorted(_KEYS))})"
            )
        mode = raw.get("mode", "off").strip().lower() or "off"
        if mode not in MODES:
            raise TlsConfigError(f"{PREFIX}mode: one of {', '.join(MODES)}, got {mode!r}")
        client = raw.get("client", "auto").strip().lower() or "auto"
        if client not in CLIENT_MODES:
            raise TlsConfigError(f"{PREFIX}client: one of auto, off, got {client!r}")
        cert, key, ca = (raw.get(k, "").strip() for k in ("cert", "key", "ca"))
        verify = _bool("verifyClient", raw["verifyClient"]) if "verifyClient" in raw else bool(ca)
        domain = raw.get("trustDomain", "").strip()
        if domain:
            try:
                check_trust_domain(domain)
            except IdentityError as e:
                raise TlsConfigError(f"{PREFIX}trustDomain: {e}") from None
        if mode != "off" and not (cert and key):
            raise TlsConfigError(f"{PREFIX}mode {mode} needs {PREFIX}cert and {PREFIX}key")
        if bool(cert) != bool(key):
            raise TlsConfigError(f"{PREFIX}cert and {PREFIX}key go together")
        if verify and not ca:
            raise TlsConfigError(f"{PREFIX}verifyClient needs {PREFIX}ca")
        return cls(
            mode=mode,
            cert=cert,
            key=key,
            ca=ca,
            verify_client=verify,
            trust_domain=domain,
            client=client,
            reload_interval=_ms("reloadInterval", raw.get("reloadInterval"), 5000),
            handshake_timeout=_ms("handshakeTimeout", raw.get("handshakeTimeout"), 10000),
        )


def _file_state(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size, st.st_ino


class TlsMaterial:
    """The SSL contexts built from the configured files, rebuilt when a file changes.

    The files are looked at (``stat``) at most once per ``reload_interval``, when a context
    is asked for (a new connection) or by :meth:`refresh`. A change builds new contexts for
    the connections made from then on; connections already made keep theirs. Files that do
    not load (half written, a key that does not match) leave the current contexts in use:
    the failure is logged and counted, and the load is tried again at the next check.
    """

    def __init__(self, config: TlsConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self.paths = [p for p in (config.cert, config.key, config.ca) if p]
        #: successful rebuilds after the first load, and failed attempts
        self.reloads = 0
        self.reload_errors = 0
        self.last_error = ""
        self._last_logged = -RELOAD_LOG_INTERVAL
        self._checked = clock()
        try:
            self._states = self._read_states()
            self._server, self._client = self._build()
        except (OSError, ssl.SSLError, ValueError) as e:
            raise TlsConfigError(f"{PREFIX}cert/key/ca: cannot load: {e}") from e

    def _read_states(self) -> list[tuple[int, int, int]]:
        return [_file_state(p) for p in self.paths]

    def _build(self) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
        c = self.config
        server: ssl.SSLContext | None = None
        client: ssl.SSLContext | None = None
        if c.cert:
            server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server.minimum_version = ssl.TLSVersion.TLSv1_2
            server.load_cert_chain(c.cert, c.key)
            if c.verify_client:
                server.load_verify_locations(c.ca)
                server.verify_mode = ssl.CERT_REQUIRED
        if c.ca:
            client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client.minimum_version = ssl.TLSVersion.TLSv1_2
            # the peer is identified by its SPIFFE ID (check_server), not by a host name:
            # provider addresses are IPs from the registry
            client.check_hostname = False
            client.verify_mode = ssl.CERT_REQUIRED
            client.load_verify_locations(c.ca)
            if c.cert:
                client.load_cert_chain(c.cert, c.key)
        return server, client

    def refresh(self) -> bool:
        """Look at the files now; rebuild the contexts when one changed. True when new
        contexts are in use."""
        self._checked = self._clock()
        try:
            states = self._read_states()
        except OSError as e:
            self._failed(f"cannot stat: {e}")
            return False
        if states == self._states:
            return False
        try:
            server, client = self._build()
        except (OSError, ssl.SSLError, ValueError) as e:
            self._failed(str(e))
            return False
        self._server, self._client, self._states = server, client, states
        self.reloads += 1
        self.last_error = ""
        log.info("tls: certificates reloaded from %s", ", ".join(self.paths))
        return True

    def _failed(self, error: str) -> None:
        self.reload_errors += 1
        self.last_error = error
        now = self._clock()
        if now - self._last_logged >= RELOAD_LOG_INTERVAL:
            self._last_logged = now
            log.error(
                "tls: reloading %s failed (the previous certificates stay in use): %s",
                ", ".join(self.paths),
                error,
            )

    def _maybe_refresh(self) -> None:
        if self._clock() - self._checked >= self.config.reload_interval:
            self.refresh()

    def server_context(self) -> ssl.SSLContext:
        self._maybe_refresh()
        if self._server is None:
            raise TlsConfigError(f"no {PREFIX}cert for a TLS export port")
        return self._server

    def client_context(self) -> ssl.SSLContext:
        self._maybe_refresh()
        if self._client is None:
            raise TlsConfigError(f"no {PREFIX}ca to verify providers with")
        return self._client

    def info(self) -> dict[str, Any]:
        """For ``/runtime/info``."""
        c = self.config
        out: dict[str, Any] = {
            "mode": c.mode,
            "client": c.client if c.client_enabled else "off",
            "verifyClient": c.verify_client,
            "trustDomain": c.trust_domain,
            "cert": c.cert,
            "ca": c.ca,
            "reloads": self.reloads,
            "reloadErrors": self.reload_errors,
        }
        if self.last_error:
            out["lastReloadError"] = self.last_error
        out.update(describe_certificate(c.cert))
        return out


def describe_certificate(path: str) -> dict[str, Any]:
    """The identity and validity of the certificate in ``path`` (empty when unreadable)."""
    if not path:
        return {}
    try:
        from cryptography import x509  # noqa: PLC0415 - only for the description

        with open(path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    except Exception:
        return {}
    return {
        "identity": next((u for u in uris if u.startswith("spiffe://")), ""),
        "notAfter": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class ServerPolicy:
    """The :class:`~motanmesh.transport.tls.ServerTls` of this agent's export ports."""

    def __init__(self, material: TlsMaterial) -> None:
        self.material = material
        config = material.config
        self.strict = config.mode == "strict"
        self.handshake_timeout = config.handshake_timeout
        self._domain = config.trust_domain

    def context(self) -> ssl.SSLContext:
        return self.material.server_context()

    def identity(self, peercert: dict[str, object] | None) -> str:
        """The caller's SPIFFE ID ("" when it sent no verified certificate)."""
        if not peercert:  # no certificate asked for (verifyClient false)
            return ""
        uris = spiffe_uris(peercert)
        if not uris:  # a certificate of the CA, but not a workload's: no identity to give
            raise TlsRefused("identity", "certificate without a spiffe:// identity")
        domain = self._domain
        if not domain:
            return uris[0]
        for uri in uris:
            if trust_domain_of(uri) == domain:
                return uri
        raise TlsRefused(
            "identity",
            f"certificate without a spiffe://{domain}/ identity ({', '.join(uris) or 'none'})",
        )


class ClientPolicy:
    """The :class:`~motanmesh.transport.tls.ClientTls` of this agent's provider endpoints."""

    def __init__(self, material: TlsMaterial) -> None:
        self.material = material
        self._domain = material.config.trust_domain

    def context(self) -> ssl.SSLContext:
        return self.material.client_context()

    def check_server(self, peercert: dict[str, object] | None) -> None:
        domain = self._domain
        if not domain:
            return
        uris = spiffe_uris(peercert)
        if not any(trust_domain_of(u) == domain for u in uris):
            raise TlsRefused(
                "identity",
                f"server certificate without a spiffe://{domain}/ identity "
                f"({', '.join(uris) or 'none'})",
            )
