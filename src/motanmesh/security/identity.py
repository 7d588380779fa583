"""Workload identities: SPIFFE-style URIs carried as URI subject alternative names.

An agent's identity is ``spiffe://<trust-domain>/app/<application>``: the trust domain names
the mesh (one CA, one domain), the path names the application the agent runs for (the
``application`` of ``motan-agent``). A certificate may carry other SANs (DNS names, IPs);
only the first ``spiffe://`` URI counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

__all__ = [
    "SCHEME",
    "IdentityError",
    "app_identity",
    "application_of",
    "check_trust_domain",
    "spiffe_uris",
    "trust_domain_of",
]

SCHEME: Final = "spiffe://"
#: a trust domain: lower-case letters, digits, dots, dashes and underscores (SPIFFE ID spec)
_TRUST_DOMAIN: Final = re.compile(r"[a-z0-9._-]+")
#: one path segment of an application name
_SEGMENT: Final = re.compile(r"[A-Za-z0-9._-]+")


class IdentityError(ValueError):
    """A trust domain or application that cannot be part of a SPIFFE ID."""


def check_trust_domain(domain: str) -> str:
    """``domain`` when it is a valid trust domain, else :class:`IdentityError`."""
    if not _TRUST_DOMAIN.fullmatch(domain):
        raise IdentityError(
            f"trust domain {domain!r}: use lower-case letters, digits, '.', '-' and '_'"
        )
    return domain


def app_identity(trust_domain: str, application: str) -> str:
    """``spiffe://<trust_domain>/app/<application>``."""
    check_trust_domain(trust_domain)
    if not application or not _SEGMENT.fullmatch(application):
        raise IdentityError(
            f"application {application!r}: use letters, digits, '.', '-' and '_' only"
        )
    return f"{SCHEME}{trust_domain}/app/{application}"


def trust_domain_of(uri: str) -> str:
    """The trust domain of a SPIFFE URI ("" when ``uri`` is not one)."""
    if not uri.startswith(SCHEME):
        return ""
    return uri[len(SCHEME) :].split("/", 1)[0]


def application_of(uri: str) -> str:
    """The application of ``spiffe://<domain>/app/<application>`` ("" for any other URI)."""
    if not uri.startswith(SCHEME):
        return ""
    parts = uri[len(SCHEME) :].split("/")
    return parts[2] if len(parts) == 3 and parts[1] == "app" else ""


def spiffe_uris(peercert: dict[str, Any] | None) -> list[str]:
    """The ``spiffe://`` URI SANs of a certificate as ``SSLObject.getpeercert()`` gives it."""
    if not peercert:
        return []
    sans: Iterable[tuple[str, str]] = peercert.get("subjectAltName", ())
    return [value for kind, value in sans if kind == "URI" and value.startswith(SCHEME)]
