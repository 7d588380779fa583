"""Security: mutual TLS between agents (:mod:`motanmesh.security.tls`), workload identities
(SPIFFE-style URIs, :mod:`motanmesh.security.identity`) and a small development CA
(:mod:`motanmesh.security.ca`, the ``motanmesh ca`` command)."""
