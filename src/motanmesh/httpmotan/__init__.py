"""HTTP-over-Motan: what the HTTP forward proxy (client side) and the ``http`` provider's
transparent mode (server side) share: the ``http-locations`` matcher with its rewrite rules,
and the raw HTTP heads carried as the first argument and the first value."""
