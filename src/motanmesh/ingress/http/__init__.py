"""The HTTP forward proxy of the client agent (see :mod:`motanmesh.ingress.http.server`)."""

from motanmesh.ingress.http.domains import HttpDomain, HttpDomains
from motanmesh.ingress.http.server import HttpProxyServer

__all__ = ["HttpDomain", "HttpDomains", "HttpProxyServer"]
